"""Target images, offline: bundled emoji, any emoji (rendered from Noto Color Emoji), or a PNG.

A target is ``[H, W, 4]`` float32, colour premultiplied by alpha, scaled so its longer
side is ``size`` (antialiased thumbnail, as the article's ``load_emoji``) and padded by
``padding`` cells of transparency on every side (the article: 40 and 16 -> 72x72).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import NCAError

ASSETS = Path(__file__).parent / "assets" / "targets"

# The ten emoji of the article (name -> character), rendered by scripts/render_targets.py.
EMOJI = {
    "lizard": "\U0001F98E",
    "butterfly": "\U0001F98B",
    "lady_beetle": "\U0001F41E",
    "tropical_fish": "\U0001F420",
    "eye": "\U0001F441",
    "collision": "\U0001F4A5",
    "spider_web": "\U0001F578",
    "grinning_face": "\U0001F600",
    "pretzel": "\U0001F968",
    "christmas_tree": "\U0001F384",
}
# The 2020 drawings the published models learned (today's Noto draws them differently).
EXTRA = ("lizard-2020", "butterfly-2020")
BUNDLED = tuple(EMOJI) + EXTRA

NOTO_PATHS = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
    "/usr/local/share/fonts/NotoColorEmoji.ttf",
    "/System/Library/Fonts/Apple Color Emoji.ttc",
)
NOTO_SIZE = 109  # the only bitmap strike size of Noto Color Emoji (CBDT)
FONT_HINT = (
    "install the Noto Color Emoji font (Debian/Ubuntu: apt-get install fonts-noto-color-emoji)"
    " or set NCA_EMOJI_FONT to a colour-emoji .ttf"
)


def find_emoji_font() -> str | None:
    env = os.environ.get("NCA_EMOJI_FONT")
    if env:
        return env if Path(env).is_file() else None
    return next((p for p in NOTO_PATHS if Path(p).is_file()), None)


# Code points that join or modify an emoji rather than start a new one: variation
# selectors, zero-width joiner, keycap, skin tones, tag characters (Unicode TR51, "emoji
# sequences"). A ZWJ also glues the next character to the current emoji.
_ZWJ = "\u200d"


def _is_modifier(ch: str) -> bool:
    o = ord(ch)
    return (o in (0xFE0E, 0xFE0F, 0x20E3, 0x200D) or 0x1F3FB <= o <= 0x1F3FF or 0xE0020 <= o <= 0xE007F)


def emoji_count(text: str) -> int:
    """How many emoji ``text`` spells (TR51 sequences: a base character with its modifiers,
    ZWJ-joined characters and regional-indicator pairs count once each)."""
    n, prev_zwj, open_flag = 0, False, False
    for ch in text:
        o = ord(ch)
        if _is_modifier(ch):
            prev_zwj = ch == _ZWJ
            continue
        if prev_zwj:  # joined to the previous emoji
            prev_zwj = False
            continue
        if 0x1F1E6 <= o <= 0x1F1FF:  # regional indicators pair up into one flag
            if open_flag:
                open_flag = False
                continue
            open_flag = True
        else:
            open_flag = False
        n += 1
    return n


def _draw(font, text: str) -> Image.Image:
    from PIL import ImageDraw

    canvas = Image.new("RGBA", (NOTO_SIZE * 2 * max(1, len(text)), NOTO_SIZE * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((NOTO_SIZE // 4, NOTO_SIZE // 4), text, font=font, embedded_color=True)
    return canvas


# Code points no font draws (Unicode noncharacters): the font's "missing glyph" (.notdef
# box), to compare a rendered emoji with.
_NEVER_DRAWN = ("\U000FFFFE", "\U0010FFFE")


def render_emoji(char: str, font_path: str | None = None) -> Image.Image:
    """Draw one emoji in colour with Pillow, cropped to its ink. Needs a colour emoji font.

    Refused (NCAError): text that is several emoji, and an emoji the font lacks (it would
    draw its "missing glyph" box, which a model would then learn to grow).
    """
    from PIL import ImageFont

    count = emoji_count(char)
    if count != 1:
        raise NCAError(f"target {char!r} is {count} emoji; give exactly one")
    font_path = font_path or find_emoji_font()
    if font_path is None:
        raise NCAError(f"cannot render emoji {char!r}: no colour emoji font found; {FONT_HINT}")
    try:
        font = ImageFont.truetype(font_path, NOTO_SIZE)
    except OSError as e:
        raise NCAError(f"cannot load emoji font {font_path}: {e}; {FONT_HINT}") from None
    canvas = _draw(font, char)
    box = canvas.getbbox()
    if box is None:
        raise NCAError(f"the font {font_path} drew nothing for {char!r}; is it an emoji?")
    missing = [_draw(font, c).tobytes() for c in _NEVER_DRAWN]
    glyphs = [c for c in char if not _is_modifier(c)]
    if canvas.tobytes() in missing or any(_draw(font, c).tobytes() in missing for c in glyphs):
        raise NCAError(f"the font {font_path} has no glyph for {char!r} (it draws its missing-glyph box); "
                       f"{FONT_HINT}")
    ink = canvas.crop(box)
    if ink.size[0] > 1.6 * ink.size[1] and len(glyphs) > 1:  # a sequence the font draws as several
        raise NCAError(f"the font {font_path} draws {char!r} as {len(glyphs)} separate glyphs, not one "
                       "emoji; give a single emoji")
    side = max(ink.size)  # centre the ink on a square canvas, like the article's 128x128 PNGs
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(ink, ((side - ink.size[0]) // 2, (side - ink.size[1]) // 2))
    return square


def _open_png(path: Path) -> Image.Image:
    if path.is_dir():
        raise NCAError(f"target {path} is a folder, not an image file")
    if not path.is_file():
        raise NCAError(f"target file not found: {path}")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise NCAError(f"cannot read target image {path}: {e.strerror or e}") from None
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except Image.UnidentifiedImageError:  # its message names the BytesIO, not the file
        raise NCAError(f"cannot read target image {path}: not an image file Pillow can read") from None
    except Exception as e:  # PIL raises many types for corrupt files
        raise NCAError(f"cannot read target image {path}: {type(e).__name__}: "
                       f"{str(e).replace(repr(io.BytesIO), '').strip() or 'corrupt image'}") from None
    return img


def target_image(spec: str) -> Image.Image:
    """The full-resolution RGBA image for a target spec: a bundled name, an emoji, or a path."""
    name = spec.strip()
    if name in BUNDLED:
        return _open_png(ASSETS / f"{name}.png").convert("RGBA")
    by_char = {c: n for n, c in EMOJI.items()}
    if name.rstrip("\ufe0f") in by_char:
        return _open_png(ASSETS / f"{by_char[name.rstrip(chr(0xFE0F))]}.png").convert("RGBA")
    if name.lower().endswith((".png", ".jpg", ".jpeg", ".gif", ".webp")) or os.sep in name:
        return _open_png(Path(name)).convert("RGBA")
    if name and all(ord(ch) > 0x2000 for ch in name):
        if emoji_count(name) != 1:
            raise NCAError(f"target {spec!r} is {emoji_count(name)} emoji; give exactly one")
        return render_emoji(name)
    raise NCAError(
        f"unknown target {spec!r}: use a bundled name ({', '.join(BUNDLED)}), an emoji "
        "character, or a path to a .png"
    )


BACKGROUNDS = ("none", "white")
# A pixel is "white" when each of R, G, B is at least this (240/255): JPEG noise and light
# antialiasing against white stay background, a light colour in the drawing does not.
WHITE_MIN = 240 / 255


class OpaqueTargetWarning(UserWarning):
    """A target image with no transparent pixel: its background is part of what is learned."""


def white_to_transparent(img: Image.Image) -> Image.Image:
    """``img`` (RGBA) with its white background made transparent: the near-white pixels
    (every channel >= ``WHITE_MIN``) connected to the image's border (4-connectivity), as a
    flood fill from the edges would find them. White inside the drawing (an eye's white,
    enclosed by ink) is kept."""
    from scipy import ndimage

    a = np.array(img.convert("RGBA"))
    white = (a[..., :3] >= round(WHITE_MIN * 255)).all(-1)
    labels, _ = ndimage.label(white)  # 4-connectivity (the default structure)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, edge[edge > 0])
    a[background] = 0
    return Image.fromarray(a, "RGBA")


def load_target(spec: str, size: int = 40, padding: int = 16, background: str = "none") -> np.ndarray:
    """Target as ``[size + 2*padding, size + 2*padding, 4]`` float32, colour premultiplied.

    The image is scaled (down or up, Lanczos) so its longer side is ``size`` and centred
    on a square canvas. background: "none" (the image's own alpha), or "white" (its white
    background made transparent first: ``white_to_transparent``). An image without a single
    transparent pixel (a PNG or JPEG on a white background) would teach the CA to grow the
    background too: with background "none" it warns (``OpaqueTargetWarning``).
    """
    if size < 1 or padding < 0:
        raise NCAError(f"target size must be >= 1 and padding >= 0 (got size={size}, padding={padding})")
    if background not in BACKGROUNDS:
        raise NCAError(f"target_background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    img = target_image(spec)
    if background == "white":
        img = white_to_transparent(img)
    elif img.getextrema()[3][0] == 255:  # every pixel opaque
        import warnings

        warnings.warn(f"target {spec!r} has no transparent pixel: its background will be learned as part of the "
                      "body; give a PNG with transparency, or --target-background white to make a white "
                      "background transparent", OpaqueTargetWarning)  # once per process and target (stacklevel 1)
    if max(img.size) > size:
        img.thumbnail((size, size), Image.LANCZOS)  # antialiased, keeps the aspect ratio
    elif max(img.size) < size:  # a small image is scaled up to the requested size too
        w, h = img.size
        new = (size, max(1, round(h * size / w))) if w >= h else (max(1, round(w * size / h)), size)
        img = img.resize(new, Image.LANCZOS)
    a = np.asarray(img, np.float32) / 255.0
    if a[..., 3].max() <= 0.0:
        raise NCAError(f"target {spec!r} has an empty alpha channel: nothing to grow")
    a[..., :3] *= a[..., 3:]
    h, w = a.shape[:2]
    rows, cols = padding + (size - h) // 2, padding + (size - w) // 2
    return np.pad(a, ((rows, size + 2 * padding - h - rows), (cols, size + 2 * padding - w - cols), (0, 0)))

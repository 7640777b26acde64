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


def render_emoji(char: str, font_path: str | None = None) -> Image.Image:
    """Draw one emoji in colour with Pillow, cropped to its ink. Needs a colour emoji font."""
    from PIL import ImageDraw, ImageFont

    font_path = font_path or find_emoji_font()
    if font_path is None:
        raise NCAError(f"cannot render emoji {char!r}: no colour emoji font found; {FONT_HINT}")
    try:
        font = ImageFont.truetype(font_path, NOTO_SIZE)
    except OSError as e:
        raise NCAError(f"cannot load emoji font {font_path}: {e}; {FONT_HINT}") from None
    canvas = Image.new("RGBA", (NOTO_SIZE * 2, NOTO_SIZE * 2), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((NOTO_SIZE // 4, NOTO_SIZE // 4), char, font=font, embedded_color=True)
    box = canvas.getbbox()
    if box is None:
        raise NCAError(f"the font {font_path} drew nothing for {char!r}; is it an emoji?")
    ink = canvas.crop(box)
    side = max(ink.size)  # centre the ink on a square canvas, like the article's 128x128 PNGs
    square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    square.paste(ink, ((side - ink.size[0]) // 2, (side - ink.size[1]) // 2))
    return square


def _open_png(path: Path) -> Image.Image:
    if not path.is_file():
        raise NCAError(f"target file not found: {path}")
    try:
        with open(path, "rb") as f:
            img = Image.open(io.BytesIO(f.read()))
            img.load()
    except Exception as e:  # PIL raises many types for corrupt files
        raise NCAError(f"cannot read target image {path}: {e}") from None
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
        return render_emoji(name)
    raise NCAError(
        f"unknown target {spec!r}: use a bundled name ({', '.join(BUNDLED)}), an emoji "
        "character, or a path to a .png"
    )


def load_target(spec: str, size: int = 40, padding: int = 16) -> np.ndarray:
    """Target as ``[size + 2*padding, size + 2*padding, 4]`` float32, colour premultiplied.

    The image is scaled so its longer side is ``size`` and centred on a square canvas.
    """
    if size < 1 or padding < 0:
        raise NCAError(f"target size must be >= 1 and padding >= 0 (got size={size}, padding={padding})")
    img = target_image(spec)
    img.thumbnail((size, size), Image.LANCZOS)  # antialiased, keeps the aspect ratio
    a = np.asarray(img, np.float32) / 255.0
    if a[..., 3].max() <= 0.0:
        raise NCAError(f"target {spec!r} has an empty alpha channel: nothing to grow")
    a[..., :3] *= a[..., 3:]
    h, w = a.shape[:2]
    rows, cols = padding + (size - h) // 2, padding + (size - w) // 2
    return np.pad(a, ((rows, size + 2 * padding - h - rows), (cols, size + 2 * padding - w - cols), (0, 0)))

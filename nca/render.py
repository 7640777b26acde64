"""Turn CA states into animation frames: panels, tiles, captions, legends, step counter.

Pure host-side functions (numpy + Pillow); nothing here touches disk.

A **panel** is the extension point: any object with a ``title`` (str), a ``legend``
(``Legend`` or None) and ``__call__(state [H, W, C]) -> RGB [H, W, 3]`` floats in [0, 1].
Built in: ``RGBAPanel`` (the organism as the article shows it) and ``ChannelPanel`` (one
channel, colour-mapped, with a legend of its range). A principal-component map is one more
class with the same three members; register it in ``PANEL_KINDS`` to make it available to
``scripts/animate.py --panels`` (see docs/animate.md).

A ``Layout`` places ``len(sources) x len(panels)`` tiles on a grid, pre-draws the static
parts (captions, legends) once, and per frame only pastes the upscaled tiles and the
counter: ``layout.render(t, states) -> uint8 [height, width, 3]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Protocol, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import NCAError
from .model import to_rgb

BACKGROUNDS = ("white", "checker")
CHECK_CELLS = 4  # side of a checkerboard square, in grid cells
CHECK_SHADES = (1.0, 0.8)
DIVERGING_CMAP = "RdBu_r"  # white at 0: dead cells (all channels 0) look like the background


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] -> uint8 (clipped, rounded)."""
    return (np.clip(rgb, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour integer upscaling, so cells stay crisp squares. [H, W, K] -> [H*s, W*s, K]."""
    if scale == 1:
        return img
    h, w, k = img.shape
    return np.broadcast_to(img[:, None, :, None, :], (h, scale, w, scale, k)).reshape(h * scale, w * scale, k)


def background_image(height: int, width: int, kind: str = "white") -> np.ndarray:
    """Grey level behind the organism, [H, W, 1] in [0, 1]: white, or a checkerboard whose
    squares are ``CHECK_CELLS`` cells wide (shows what is transparent)."""
    if kind == "white":
        return np.ones((height, width, 1), np.float32)
    if kind == "checker":
        yy, xx = np.mgrid[:height, :width] // CHECK_CELLS
        shade = np.where((yy + xx) % 2 == 0, *CHECK_SHADES)
        return shade[..., None].astype(np.float32)
    raise NCAError(f"unknown background {kind!r}: choose from {', '.join(BACKGROUNDS)}")


# --------------------------------------------------------------------------- panels


@dataclass(frozen=True)
class Legend:
    """A colour bar drawn under a tile: ``cmap`` from ``lo`` to ``hi``."""

    lo: float
    hi: float
    cmap: str = DIVERGING_CMAP


class Panel(Protocol):
    """What a tile shows of one state. ``state: [H, W, C]`` -> RGB ``[H, W, 3]`` in [0, 1]."""

    title: str
    legend: Legend | None

    def __call__(self, state: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class RGBAPanel:
    """The visible organism: premultiplied RGB composited over ``background``."""

    background: str = "white"
    title: str = "RGBA"
    legend: Legend | None = None

    def __call__(self, state: np.ndarray) -> np.ndarray:
        bg = background_image(state.shape[-3], state.shape[-2], self.background)
        return np.asarray(to_rgb(state, bg))


@lru_cache(maxsize=8)
def colormap_lut(name: str) -> np.ndarray:
    """[256, 3] float32 RGB table of a matplotlib colormap."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise NCAError(f"unknown colormap {name!r} (any matplotlib colormap name)") from None
    return cmap(np.linspace(0.0, 1.0, 256))[:, :3].astype(np.float32)


def apply_colormap(values: np.ndarray, lo: float, hi: float, cmap: str = DIVERGING_CMAP) -> np.ndarray:
    """[...] values -> [..., 3] RGB; ``lo`` maps to the first colour, ``hi`` to the last
    (values outside are clipped)."""
    span = hi - lo if hi > lo else 1.0
    idx = np.clip((values - lo) / span * 255.0 + 0.5, 0, 255).astype(np.int32)
    return colormap_lut(cmap)[idx]


@dataclass(frozen=True)
class ChannelPanel:
    """One state channel colour-mapped over the fixed range ``[-vmax, vmax]`` (fixed for the
    whole animation, so colours mean the same value in every frame)."""

    channel: int
    vmax: float
    cmap: str = DIVERGING_CMAP

    @property
    def title(self) -> str:
        return f"ch {self.channel}"

    @property
    def legend(self) -> Legend:
        return Legend(-self.vmax, self.vmax, self.cmap)

    def __call__(self, state: np.ndarray) -> np.ndarray:
        return apply_colormap(state[..., self.channel], -self.vmax, self.vmax, self.cmap)


# Panel kinds the CLI knows by name: ``--panels rgba,4,5``. An integer is a ChannelPanel of
# that state channel. Factories take (name, context) where context is a dict with
# "background" and "ranges" ({channel: vmax}) plus what ``make_panels`` gets as context;
# add entries here for new panel kinds (``analysis.representation.panels.register`` adds pc1..pc6).
PanelFactory = Callable[[str, dict], Panel]
PANEL_KINDS: dict[str, PanelFactory] = {
    "rgba": lambda name, ctx: RGBAPanel(ctx["background"]),
}


def parse_panels(spec: str, channels: int) -> tuple[str, ...]:
    """``"rgba,4,5"`` -> ("rgba", "4", "5"), validated against the known kinds and the
    model's channel count."""
    items = tuple(s.strip() for s in spec.split(",") if s.strip())
    if not items:
        raise NCAError("panels is empty: give e.g. 'rgba' or 'rgba,4,5' (channel numbers)")
    for item in items:
        if item in PANEL_KINDS:
            continue
        if not item.isdigit():
            raise NCAError(f"panels: unknown panel {item!r}; use {', '.join(PANEL_KINDS)} or a "
                           f"channel number 0..{channels - 1} (4.. are the hidden channels)")
        if int(item) >= channels:
            raise NCAError(f"panels: channel {item} does not exist; the model has channels 0..{channels - 1}")
    return items


def channel_items(items: Sequence[str]) -> list[int]:
    """The channel numbers among parsed panel items."""
    return [int(i) for i in items if i.isdigit()]


def make_panels(items: Sequence[str], background: str, ranges: dict[int, float],
                context: dict | None = None) -> list[Panel]:
    """Panel objects for parsed items; ``ranges[channel]`` is the vmax of a channel panel.
    context: extra entries for panel factories (``export`` passes "models", "size",
    "steps", "seed": what a panel fitted to the animated model needs)."""
    ctx = {"background": background, "ranges": ranges, **(context or {})}
    return [ChannelPanel(int(i), ranges[int(i)]) if i.isdigit() else PANEL_KINDS[i](i, ctx) for i in items]


# --------------------------------------------------------------------------- layout


@lru_cache(maxsize=4)
def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit(text: str, fnt, width: int) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` pixels."""
    if fnt.getlength(text) <= width:
        return text
    while text and fnt.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _fmt(v: float) -> str:
    return f"{v:+.3g}"


@dataclass(frozen=True)
class Layout:
    """Where every tile goes. Build with ``make_layout``; ``render`` draws a frame.

    tiles: one (source index, panel index, top, left) per tile; cell: (H, W) of a state.
    """

    panels: tuple
    tiles: tuple[tuple[int, int, int, int], ...]
    cell: tuple[int, int]
    scale: int
    height: int
    width: int
    counter: bool
    text_px: int
    template: np.ndarray  # uint8 [height, width, 3]: background, captions, legends

    def render(self, t: int, states: Sequence[np.ndarray]) -> np.ndarray:
        """One frame. states: one ``[H, W, C]`` per source -> uint8 ``[height, width, 3]``."""
        frame = self.template.copy()
        h, w = self.cell[0] * self.scale, self.cell[1] * self.scale
        for s, p, top, left in self.tiles:
            frame[top:top + h, left:left + w] = upscale(to_uint8(self.panels[p](states[s])), self.scale)
        if self.counter:
            img = Image.fromarray(frame)
            ImageDraw.Draw(img).text((3, 1), f"step {t}", fill=(0, 0, 0), font=font(self.text_px))
            frame = np.asarray(img)
        return frame


def make_layout(
    n_sources: int,
    panels: Sequence[Panel],
    labels: Sequence[str],
    cell: tuple[int, int],
    scale: int,
    cols: int | None = None,
    counter: bool = True,
) -> Layout:
    """Tiles row-major, each source's panels next to each other; ``cols`` tiles per row
    (default: one row per source when there are several panels, else all in one row). A caption band sits above a row when there is more than one
    tile; a legend band below it when a panel has a legend; a counter band on top."""
    n_panels = len(panels)
    n_tiles = n_sources * n_panels
    cols = min(cols or (n_panels if n_panels > 1 else n_tiles), n_tiles)
    rows = -(-n_tiles // cols)
    th, tw = cell[0] * scale, cell[1] * scale
    text_px = 11 if tw >= 96 else 9
    band = text_px + 4
    captions = n_tiles > 1
    legends = any(p.legend is not None for p in panels)
    gap = 0 if n_tiles == 1 else (10 if legends else 4)  # room between two legends' numbers
    cap_h = band if captions else 0
    leg_h = 2 * band if legends else 0
    row_h = cap_h + th + leg_h
    top0 = band if counter else 0
    height = top0 + rows * row_h + (rows - 1) * gap
    width = cols * tw + (cols - 1) * gap

    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    fnt = font(text_px)
    tiles = []
    for i in range(n_tiles):
        s, p = divmod(i, n_panels)
        r, c = divmod(i, cols)
        top = top0 + r * (row_h + gap) + cap_h
        left = c * (tw + gap)
        tiles.append((s, p, top, left))
        if captions:
            text = labels[s] if n_panels == 1 else (f"{labels[s]} · {panels[p].title}" if labels[s] else panels[p].title)
            draw.text((left + 1, top - cap_h + 1), _fit(text, fnt, tw - 2), fill=(0, 0, 0), font=fnt)
        legend = panels[p].legend
        if legend is not None:
            bar = apply_colormap(np.linspace(legend.lo, legend.hi, tw), legend.lo, legend.hi, legend.cmap)
            bar_img = Image.fromarray(to_uint8(np.broadcast_to(bar[None], (band - 4, tw, 3))))
            canvas.paste(bar_img, (left, top + th + 2))
            y = top + th + band
            draw.text((left, y), _fmt(legend.lo), fill=(0, 0, 0), font=fnt)
            hi = _fmt(legend.hi)
            draw.text((left + tw - fnt.getlength(hi), y), hi, fill=(0, 0, 0), font=fnt)
    return Layout(tuple(panels), tuple(tiles), tuple(cell), scale, height, width, counter, text_px,
                  np.asarray(canvas, np.uint8))

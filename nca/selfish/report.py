"""Pictures and the self-contained HTML page of the selfish-cells comparison.

Frames colour each living cell by its lineage (``lineage_frame``); GIFs are written with
imageio; plots with matplotlib (Agg) embedded as base64 PNGs, so the page is one file.
Functions return bytes/strings; the script writes them.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from ..model import to_rgb

# tab10: lineage 0 blue, 1 red (the mutant in an invasion), 2 green, ...
PALETTE = np.array([[0.12, 0.47, 0.71], [0.84, 0.15, 0.16], [0.17, 0.63, 0.17], [1.0, 0.50, 0.05],
                    [0.58, 0.40, 0.74], [0.55, 0.34, 0.29], [0.89, 0.47, 0.76], [0.50, 0.50, 0.50]])


def lineage_frame(state: np.ndarray, ids: np.ndarray, tint: float = 0.5, scale: int = 1) -> np.ndarray:
    """state [H, W, C] + ids [H, W] -> uint8 RGB [H*scale, W*scale, 3]: the cells' colour
    on white, living cells blended ``tint`` of the way to their lineage's palette colour."""
    rgb = np.asarray(to_rgb(np.asarray(state, np.float32)))
    ids = np.asarray(ids)
    colour = PALETTE[np.clip(ids, 0, None) % len(PALETTE)]
    rgb = np.where((ids >= 0)[..., None], (1 - tint) * rgb + tint * colour, rgb)
    img = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    return img.repeat(scale, 0).repeat(scale, 1)


def animation_gif(states: np.ndarray, ids: np.ndarray, scale: int = 4, fps: int = 15) -> bytes:
    """GIF bytes of states [F, H, W, C] coloured by ids [F, H, W] (loops forever)."""
    import imageio.v3 as iio

    frames = np.stack([lineage_frame(s, i, scale=scale) for s, i in zip(states, ids)])
    return iio.imwrite("<bytes>", frames, extension=".gif", duration=int(1000 / fps), loop=0)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def figure_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return data_uri(buf.getvalue(), "image/png")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves_figure(panels: list[tuple[str, dict[str, list[tuple[np.ndarray, np.ndarray]]]]], ylabel: str,
                  log: bool = False, xlabel: str = "CA step"):
    """One subplot per panel (title, {label: [(x, y) per seed]}): a thin line per seed, a
    thick one for the mean over seeds."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), squeeze=False)
    for ax, (title, series) in zip(axes[0], panels):
        for j, (label, runs) in enumerate(series.items()):
            c = PALETTE[j % len(PALETTE)]
            for x, y in runs:
                ax.plot(x, y, color=c, alpha=0.35, lw=0.8)
            ax.plot(runs[0][0], np.mean([y for _, y in runs], axis=0), color=c, lw=2, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def image_grid_figure(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], cmap=None, vmin=None, vmax=None):
    """rows: (row label, [(column title, image)]) -> one figure; RGB images or scalar maps
    (with ``cmap``, a shared colour scale and a colour bar)."""
    plt = _plt()
    ncol = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.9 * ncol, 1.9 * len(rows)), squeeze=False)
    im = None
    for r, (label, cells) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            title, img = cells[c]
            im = ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    if cmap is not None and im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6)
    return fig


def fmt(s: dict, digits: int = 4) -> str:
    """A ``spread`` dict as 'mean ± std (n)'."""
    if s["mean"] is None:
        return "n/a"
    n = sum(v is not None for v in s["values"])
    return f"{s['mean']:.{digits}g} ± {s['std']:.2g} (n={n})"


def table(header: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{html.escape(c)}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def img(uri: str, alt: str = "", width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}"{w}>'


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """A self-contained HTML page from (heading, html body) sections."""
    style = ("body{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:13px}th{background:#eee}img{margin:4px;image-rendering:pixelated}"
             "p.note{color:#555;font-size:13px}")
    body = "".join(f"<h2>{html.escape(h)}</h2>\n{b}\n" for h, b in sections)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>\n{body}</body></html>")

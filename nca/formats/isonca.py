"""The isotropic NCA demo's model file (Mordvintsev, Randazzo & Fouts 2022, "Growing Isotropic
Neural Cellular Automata", arXiv 2205.01681; demo: isonca/demo/ in google-research/self-organising-systems).

File: ``{"w1": {"shape": [hidden, 2C], "data64": ...}, "b1": {"shape": [hidden]},
"w2": {"shape": [hidden, C]}}``, each ``data64`` the base64 of little-endian float32 in
row-major order. w1 is stored ``[out, in]`` (the demo's shader reads ``w1(i, h)`` for input
i of hidden unit h); w2 ``[hidden, C]`` as ours; there is no output bias.

The demo's rule (our reading of its shader, docs/importing.md), expressed as a ModelConfig:

- a hexagonal grid in axial coordinates on a square torus (``topology="hex"``,
  ``padding="circular"``): a cell's neighbours are (0, +-1), (+-1, 0), (-1, -1), (+1, +1);
- perception ``[x, lap]`` with ``lap = 2 * sum(6 neighbours) - 12 * x``: our
  ``HEX_LAPLACIAN`` is that / 16, so the Laplacian rows of w1 are scaled by 16 here;
- a cell fires with probability 0.5; a firing cell whose own and 6 neighbours' alpha are all
  below 0.1 is zeroed (``life="fired-pre"``), otherwise it adds the MLP's update and is
  clipped to [-2, 2] (``clamp=2``); a cell that does not fire is unchanged;
- the seed is one cell with channels 3.. = 1 (ours).

The demo stores states as float16 textures (rgba16f); we compute in float32.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from ..checkpoint import read_json
from ..errors import NCAError
from ..model import ModelConfig

ASSET = Path(__file__).resolve().parent.parent / "assets" / "isonca" / "cadata.json"
ISONCA_NAME = "isonca:lizard"


def is_isonca(obj) -> bool:
    return isinstance(obj, dict) and {"w1", "b1", "w2"} <= set(obj) and all(
        isinstance(obj[k], dict) and "data64" in obj[k] for k in ("w1", "b1", "w2"))


def _array(obj: dict, key: str, path) -> np.ndarray:
    try:
        shape = tuple(int(s) for s in obj[key]["shape"])
        a = np.frombuffer(base64.b64decode(obj[key]["data64"]), "<f4")
        return a.reshape(shape).astype(np.float32)
    except Exception as e:
        raise NCAError(f"{path}: {key} is not a shape + base64 float32 array ({type(e).__name__}: {e})") from None


def read_isonca(path: Path = ASSET):
    """The demo model at ``path`` -> (ModelConfig, params as NumPy arrays, provenance)."""
    obj = read_json(path, is_isonca, "is not an isotropic NCA demo file (w1, b1, w2 with data64)")
    w1, b1, w2 = (_array(obj, k, path) for k in ("w1", "b1", "w2"))
    hidden, channels = w2.shape if w2.ndim == 2 else (None, None)
    if w1.ndim != 2 or hidden is None or w1.shape != (hidden, 2 * channels) or b1.shape != (hidden,):
        raise NCAError(f"{path}: shapes w1 {w1.shape}, b1 {b1.shape}, w2 {w2.shape} disagree "
                       "(expected [hidden, 2C], [hidden], [hidden, C])")
    w = w1.T.copy()  # [2C, hidden]: rows [state (C), Laplacian (C)]
    w[channels:] *= 16.0  # the demo's Laplacian is 16 x our HEX_LAPLACIAN
    cfg = ModelConfig(channels=channels, hidden=hidden, fire_rate=0.5, perception="laplacian",
                      padding="circular", life="fired-pre", topology="hex", clamp=2.0)
    params = {"w1": w, "b1": b1, "w2": w2.copy(), "b2": np.zeros(channels, np.float32)}
    return cfg, params, {"format": "isonca-demo-json", "source": str(path), "float16_states_in_source": True}


SQRT3_2 = float(np.sqrt(3.0) / 2.0)


def hex_to_square(state: np.ndarray, size: int, scale: float = 1.0, center: tuple[float, float] | None = None) -> np.ndarray:
    """Resample a hex-grid state to a square image, as the demo draws it.

    state: [..., H, W, C] on the axial hex grid (``topology="hex"``); cell (row i, col j) sits at
    world ``(x, y) = (j - i / 2, i * sqrt(3) / 2)`` (the demo's ``cell2wld``; y up, so image
    rows run against y -- the body is drawn as the demo shows it, not mirrored). Returns
    ``[..., size, size, C]``: each pixel (``scale`` world units wide) takes its nearest cell
    (``square_index``). center: the world point at the image centre (default the grid's centre).
    """
    s = np.asarray(state)
    bi, bj = square_index(s.shape[-3], s.shape[-2], size, scale, center)
    return s[..., bi, bj, :]


def grid_center(h: int, w: int) -> tuple[float, float]:
    """The world point (x, y) at the centre of an [h, w] hex grid: ``hex_to_square``'s default
    image centre."""
    return (w - 1) / 2 - (h - 1) / 4, (h - 1) / 2 * SQRT3_2


def square_index(h: int, w: int, size: int, scale: float = 1.0,
                 center: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols), each [size, size] int: the hex cell nearest each pixel of the square image
    of ``hex_to_square`` (the torus wraps: indices are taken mod H and W)."""
    cx, cy = center if center is not None else grid_center(h, w)
    r = (np.arange(size) - (size - 1) / 2) * scale
    X, Y = np.meshgrid(cx + r, cy - r)  # image rows go down, world y goes up
    i = Y / SQRT3_2
    j = X + i / 2
    # nearest lattice point of the sheared grid: test the 4 corners of the axial cell
    best, bi, bj = None, None, None
    for di in (0, 1):
        for dj in (0, 1):
            ii, jj = np.floor(i) + di, np.floor(j) + dj
            d = (jj - ii / 2 - X) ** 2 + (ii * SQRT3_2 - Y) ** 2
            if best is None:
                best, bi, bj = d, ii, jj
            else:
                closer = d < best
                best, bi, bj = np.where(closer, d, best), np.where(closer, ii, bi), np.where(closer, jj, bj)
    return bi.astype(int) % h, bj.astype(int) % w


def body_center(state: np.ndarray, threshold: float = 0.1) -> tuple[float, float]:
    """World coordinates of the alpha-weighted centroid of the live cells (alpha > threshold).
    state: [H, W, C] on the hex grid; assumes the body does not wrap around the torus."""
    a = np.asarray(state)[..., 3]
    a = np.where(a > threshold, a, 0.0)
    i, j = np.nonzero(a)
    wts = a[i, j]
    x, y = j - i / 2.0, i * SQRT3_2
    return float(np.average(x, weights=wts)), float(np.average(y, weights=wts))

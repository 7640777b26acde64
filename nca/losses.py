"""Training losses: the article's L2, and the isotropic NCA's rotation(-reflection)-invariant loss.

``"l2"``: the mean squared error of RGBA against the target (Mordvintsev et al., Distill 2020),
in one fixed orientation.

``"rotation"`` and ``"rotation-reflection"``: the invariant loss of "Growing Isotropic Neural Cellular
Automata" (Mordvintsev, Randazzo & Fouts, ALIFE 2022, arXiv 2205.01681;
https://google-research.github.io/self-organising-systems/isonca/). A rotation-invariant rule
started from one symmetric cell cannot grow the body in a pose chosen in advance: the fire
noise chooses it (docs/importing.md measures this on the article's demo model), so the loss
must not care which pose it chose. As the article's training code does, both the state and the
target are sharpened (``x + 2 (x - blur(x))``, a 5-tap Gaussian of sd 1), resampled on a polar
grid about the grid's centre (``size // 2`` rings out to the grid's edge, one angle every
``2 / size`` radians), and compared at every rotation at once by a circular
cross-correlation along the angle (FFT); the loss is the smallest over the rotations (and,
with reflection, over the mirrored target's too). Where the article's code sums over the
angles, this takes their mean: a constant factor, removed by the per-variable gradient
normalisation, that keeps the loss in the units of an MSE.

Our own implementation of the article's description and its published training code's
semantics; the polar resampling is bilinear with zeros outside the grid (PyTorch's
``grid_sample`` defaults, ``align_corners=False``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.ndimage import map_coordinates

from .errors import NCAError

Array = jax.Array

LOSSES = ("l2", "rotation", "rotation-reflection")


def check_loss(name: str) -> str:
    """``name`` if it is one of ``LOSSES``, else one NCAError naming them."""
    if name not in LOSSES:
        raise NCAError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    return name


def l2_losses(x: Array, target: Array) -> Array:
    """MSE of RGBA against the target, per sample. x: [B, H, W, C], target: [H, W, 4] -> [B]."""
    return jnp.mean(jnp.square(x[..., :4] - target), axis=(-3, -2, -1))


def _gauss5() -> np.ndarray:
    t = np.arange(-2, 3, dtype=np.float64)
    k = np.exp(-0.5 * t * t)  # sd 1
    return (k / k.sum()).astype(np.float32)


def sharpen(img: Array) -> Array:
    """``img + 2 (img - blur(img))``, blur a separable 5-tap Gaussian of sd 1 with
    reflected edges (torchvision's ``gaussian_blur``, as the isotropic NCA's loss uses).
    img: [..., H, W, C] -> same shape."""
    k = jnp.asarray(_gauss5())
    nd = img.ndim
    pad = [(0, 0)] * nd
    pad[nd - 3] = pad[nd - 2] = (2, 2)
    p = jnp.pad(img, pad, mode="reflect")
    h, w = img.shape[-3], img.shape[-2]
    rows = sum(k[i] * p[..., i:i + h, :, :] for i in range(5))
    blur = sum(k[i] * rows[..., :, i:i + w, :] for i in range(5))
    return img + 2.0 * (img - blur)


@lru_cache(maxsize=16)
def polar_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (rows, cols), each [R, A], of the polar samples: R = width // 2
    radii from 0.5 / width to 1 (1 = the grid's edge, in ``grid_sample``'s [-1, 1] units),
    A = floor(width * pi) + 1 angles 2 / width apart, counter-clockwise in (x right, y down)."""
    r = np.linspace(0.5 / width, 1.0, width // 2)[:, None]
    a = np.arange(0, math.floor(width * math.pi) + 1, dtype=np.float64) / (width / 2)
    gx, gy = r * np.cos(a), r * np.sin(a)
    # grid_sample, align_corners=False: -1 and 1 are the outer edges of the edge pixels.
    cols = ((gx + 1.0) * width - 1.0) / 2.0
    rows = ((gy + 1.0) * height - 1.0) / 2.0
    return rows.astype(np.float32), cols.astype(np.float32)


def to_polar(img: Array) -> Array:
    """img: [B, H, W, C] -> [B, C, R, A], bilinear, zeros outside the grid (``polar_grid``)."""
    rows, cols = polar_grid(img.shape[-3], img.shape[-2])
    coords = (jnp.asarray(rows), jnp.asarray(cols))

    def one(channel):  # [H, W] -> [R, A]
        return map_coordinates(channel, coords, order=1, mode="constant", cval=0.0)

    return jax.vmap(jax.vmap(one, in_axes=-1))(img)


def rotation_losses(x: Array, target: Array, reflection: bool) -> Array:
    """The mean squared difference of the sharpened, polar-resampled RGBA from the target's
    at every rotation. x: [B, H, W, C], target: [H, W, 4] -> [B, S]: S = A rotations (A =
    ``polar_grid``'s angles), then, with ``reflection``, A more of the mirrored target."""
    px = to_polar(sharpen(x[..., :4]))  # [B, 4, R, A]
    pt = to_polar(sharpen(target[None]))[0]  # [4, R, A]
    n = px.shape[-1]
    fx, ft = jnp.fft.rfft(px, axis=-1), jnp.fft.rfft(pt, axis=-1)
    xy = [jnp.fft.irfft(fx * jnp.conj(ft), n, axis=-1)]  # sum_j x[j + s] t[j]: rotations
    if reflection:
        xy.append(jnp.fft.irfft(fx * ft, n, axis=-1))  # sum_j x[s - j] t[j]: the mirrored target
    xy = jnp.concatenate(xy, axis=-1)
    xx = jnp.sum(jnp.square(px), axis=-1, keepdims=True)
    tt = jnp.sum(jnp.square(pt), axis=-1, keepdims=True)
    return jnp.mean(xx + tt - 2.0 * xy, axis=(1, 2)) / n


def per_sample_losses(kind: str, x: Array, target: Array) -> Array:
    """The training loss ``kind`` (``LOSSES``) of each sample. x: [B, H, W, C], target:
    [H, W, 4] -> [B]; the invariant losses take the smallest over rotations (and reflections)."""
    if check_loss(kind) == "l2":
        return l2_losses(x, target)
    return jnp.min(rotation_losses(x, target, reflection=kind == "rotation-reflection"), axis=-1)

"""Growing the rollouts the analyses consume, through the core API only (``nca.grow``).

The only module of ``analysis`` that runs the model. Arrays come back as NumPy.
Step convention: ``states[t]`` is the state after ``t`` CA steps (``states[0]`` is the seed).
"""

from __future__ import annotations


import jax
import numpy as np

import nca
from nca.api import LoadedModel
from nca.damage import circle_masks
from nca.errors import NCAError
from nca.model import lattice_points, to_device


def euclidean(x: np.ndarray, cfg) -> np.ndarray:
    """Per-cell arrays in a frame where distances and angles are the body's own.

    x: [..., H, W, F] on the model's grid (states, features, maps). The square grid is returned
    as is. The hex grid (``topology="hex"``, the isotropic NCA) stores cells in axial
    coordinates, where the array's columns and rows meet at 60 degrees: measured there, body
    axes, directions and distances are sheared. It is resampled to the square image the demo
    draws (``nca.formats.isonca.hex_to_square``: nearest cell, pixels sqrt(3)/2 world units
    wide so the image spans the grid's height) -> [..., H, H, F]. Analyse, never roll out,
    what comes back.
    """
    if cfg.topology != "hex":
        return x
    from nca.formats.isonca import SQRT3_2, hex_to_square

    return hex_to_square(x, x.shape[-3], scale=SQRT3_2)


def image_positions(shape: tuple[int, int], cfg) -> tuple[np.ndarray, np.ndarray]:
    """Where each cell of an [H, W] grid is drawn, in the pixels (row, col) of the image
    ``euclidean`` draws: its array index on the square grid; on the hex grid the pixel at its
    lattice point (the demo's view: rows of the array run up the image, one cell spacing is
    2 / sqrt(3) px). Frames, regions and discs placed with these positions are the drawn body's,
    and the same as the states ``euclidean`` resamples. -> (rows [H, W], cols [H, W]) float64."""
    h, w = shape
    ii, jj = np.mgrid[:h, :w].astype(np.float64)
    if cfg.topology != "hex":
        return ii, jj
    from nca.formats.isonca import SQRT3_2, grid_center

    x, y = np.moveaxis(cell_positions(ii, jj, cfg), -1, 0)  # world, as hex_to_square reads the array (y up)
    cx0, cy0 = grid_center(h, w)  # the image's centre
    half = (h - 1) / 2
    return half + (cy0 - y) / SQRT3_2, half + (x - cx0) / SQRT3_2


def image_shift(d_rows: float, d_cols: float, cfg) -> tuple[int, int]:
    """The array shift (rows, cols) of the lattice translation nearest a displacement
    (d_rows, d_cols) in ``image_positions``' pixels (on the hex grid a row up the image is one
    array row, a pixel across is sqrt(3)/2 spacings)."""
    if cfg.topology != "hex":
        return int(round(d_rows)), int(round(d_cols))
    from nca.formats.isonca import SQRT3_2

    di = -d_rows
    return int(round(di)), int(round(d_cols * SQRT3_2 + di / 2.0))


def cell_positions(rows, cols, cfg) -> np.ndarray:
    """Where cells sit, in cell spacings, image convention ((x, y) with y down): (col, row)
    on the square grid; on the hex grid (``topology="hex"``, axial coordinates) the lattice
    point ``(col - row / 2, row * sqrt(3) / 2)``, where every one of a cell's 6 neighbours is
    at distance 1 (the demo's ``cell2wld`` with y down). rows, cols: [n] -> [n, 2] float64."""
    return lattice_points(rows, cols, cfg.topology)


HEX_ARRAY_GEOMETRY = ("hex grid: positions, distances, directions and cuts are measured on the axial array, whose "
                      "rows and columns meet at 60 degrees (sheared), not in the body's Euclidean frame; the PCA "
                      "report resamples first (analysis.rollouts.euclidean) and the atlas uses the lattice points "
                      "(analysis.rollouts.cell_positions)")


def geometry_caveat(models, note: str = HEX_ARRAY_GEOMETRY) -> dict:
    """{"geometry": note} for a report's conventions when any of ``models`` runs on the hex
    grid (default note: the report measures on the array as stored); {} otherwise."""
    return {"geometry": note} if any(m.model_config.topology == "hex" for m in models) else {}


def grow_states(model: LoadedModel, steps: int, key: jax.Array, seeds: int = 1,
                size: int | None = None, x0: np.ndarray | None = None, t0: int = 0, every: int = 1) -> np.ndarray:
    """The states of one rollout, the start state included.

    Returns [steps // every + 1, seeds, H, W, C] float32: index i is the state after
    ``i * every`` steps (from ``x0`` if given, [seeds, H, W, C], else from the seed); with
    ``every`` 1 (the default), index t is the state after t steps. ``seeds`` rollouts share
    the key but draw independent fire masks (one batched rollout). A larger ``every`` keeps
    only what an analysis reads (the same states: step keys are ``fold_in(key, t)``).
    """
    if every < 1 or steps % every:
        raise NCAError(f"steps ({steps}) must be a multiple of every ({every}) and every >= 1")
    if x0 is None:
        size = size or model.grid_size
        if size < 3:
            raise NCAError(f"grid size must be >= 3, got {size}")
        x0 = np.asarray(nca.seed_state(size, size, model.model_config, batch=seeds))
    x0 = np.asarray(x0, np.float32)
    out = np.empty((steps // every + 1,) + x0.shape, np.float32)
    out[0] = x0
    if steps:
        _, traj = nca.grow(model, steps, key, x0=to_device(x0), t0=t0, every=every)
        out[1:] = traj.states
    return out


def activations(model: LoadedModel, states: np.ndarray, features: str) -> np.ndarray:
    """Perception or MLP hidden-layer activations the update rule computes *from* each state.

    states: [..., H, W, C] -> [..., H, W, 48] ("perception") or [..., H, W, 128] ("mlp").
    Runs one recorded step per state (batched); the fire mask does not affect these.
    """
    field = {"perception": "perception", "mlp": "hidden"}.get(features)
    if field is None:
        raise NCAError(f"{features!r} is not an activation feature set")
    states = np.asarray(states, np.float32)
    flat = states.reshape((-1,) + states.shape[-3:])
    _, traj = nca.grow(model, 1, jax.random.key(0), x0=to_device(flat), record=(field,))
    acts = np.asarray(getattr(traj, field)[0])
    return acts.reshape(states.shape[:-1] + acts.shape[-1:])


def disc_damage(key: jax.Array, shape: tuple[int, int]) -> np.ndarray:
    """One of the article's training damage discs (``nca.damage.circle_masks``): [H, W] with
    1 where cells are erased."""
    return np.asarray(circle_masks(key, 1, shape[0], shape[1])[0])


"""Cheater invasion: a trained host body with some cells switched to a mutant rule.

The host is lineage 0, the mutant lineage 1 of a two-rule stack (``nca.selfish.lineages``
gives the rules: mutants spread only through cells they bring to life). Ways in
(``plant_ids``): ``patch`` (the alive cells within ``size`` px of the alive cell nearest
the body's centroid), ``cell`` (that one cell), ``fraction`` (each alive cell
independently with probability ``size``).

Measures over time (``invasion_curves``): mutant and host cell counts, mutant share of the
alive cells, harm = visible MSE to the target minus that of the uninvaded control run (same
fire masks), and cells alive outside the target's body (overgrowth).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..errors import NCAError
from ..model import ModelConfig, Params
from .fitness import visible_mse
from .lineages import alive_cells, lineage_rollout, stack_params

Array = jax.Array

PLANT_MODES = ("patch", "cell", "fraction")


def perturb_params(params: Params, key: Array, scale: float) -> Params:
    """A mutated copy: each leaf plus ``scale * std(leaf) * N(0, 1)`` noise (a leaf with
    zero spread, e.g. an untrained bias, gets ``scale * mean |w|`` of its rule instead)."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    ref = jnp.mean(jnp.stack([jnp.mean(jnp.abs(leaf)) for leaf in leaves]))
    out = []
    for leaf, k in zip(leaves, keys):
        spread = jnp.std(leaf)
        spread = jnp.where(spread > 0, spread, ref)
        out.append(leaf + scale * spread * jax.random.normal(k, leaf.shape, leaf.dtype))
    return jax.tree.unflatten(tree, out)


def centre_cell(x: Array, threshold: float = 0.1) -> Array:
    """The alive cell nearest the centroid of the alive cells. x: [H, W, C] -> (y, x) int32 [2]."""
    alive = alive_cells(x, threshold)
    h, w = alive.shape
    yy, xx = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    n = jnp.maximum(jnp.sum(alive), 1)
    cy, cx = jnp.sum(yy * alive) / n, jnp.sum(xx * alive) / n
    d = jnp.where(alive, (yy - cy) ** 2 + (xx - cx) ** 2, jnp.inf)
    i = jnp.argmin(d)
    return jnp.stack([i // w, i % w]).astype(jnp.int32)


def random_alive_cell(x: Array, key: Array, threshold: float = 0.1) -> Array:
    """A uniformly random alive cell (the grid centre if none). x: [H, W, C] -> (y, x) [2]."""
    alive = alive_cells(x, threshold)
    h, w = alive.shape
    logits = jnp.where(alive.reshape(-1), 0.0, -jnp.inf)
    logits = jnp.where(jnp.any(alive), logits, 0.0)
    i = jax.random.categorical(key, logits)
    return jnp.stack([i // w, i % w]).astype(jnp.int32)


def plant_mutant(x: Array, centre: Array, radius: float, threshold: float = 0.1) -> Array:
    """Ids for a disc of mutants: 1 for alive cells within ``radius`` px of ``centre``
    (y, x), 0 for the other alive cells, -1 for the rest. x: [H, W, C] -> [H, W] int32."""
    alive = alive_cells(x, threshold)
    h, w = alive.shape
    yy, xx = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    disc = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    return jnp.where(alive, disc.astype(jnp.int32), -1)


def plant_ids(x: Array, mode: str, size: float, key: Array, threshold: float = 0.1) -> Array:
    """Initial ids of an invasion (see module docstring). x: [H, W, C] -> [H, W] int32."""
    if mode == "patch":
        return plant_mutant(x, centre_cell(x, threshold), size, threshold)
    if mode == "cell":
        return plant_mutant(x, centre_cell(x, threshold), 0.0, threshold)
    if mode == "fraction":
        alive = alive_cells(x, threshold)
        pick = jax.random.uniform(key, alive.shape) < size
        return jnp.where(alive, pick.astype(jnp.int32), -1)
    raise NCAError(f"unknown plant mode {mode!r}; choose one of {PLANT_MODES}")


def invade(host: Params, mutant: Params, x0: Array, ids0: Array, key: Array, steps: int,
           cfg: ModelConfig, t0: int = 0, every: int = 1):
    """Roll out host (lineage 0) and mutant (lineage 1) from (x0, ids0).
    Returns LineageTrajectory (states [T, H, W, C], ids [T, H, W])."""
    return lineage_rollout(stack_params([host, mutant]), x0, ids0, key, steps, cfg, t0=t0, every=every)[2]


def invasion_curves(ids: Array, states: Array, control_states: Array, target: Array,
                    threshold: float = 0.1) -> dict[str, Array]:
    """Invasion measures over time. ids: [T, H, W]; states, control_states: [T, H, W, C].

    Returns {"mutant_cells", "host_cells", "mutant_share", "harm", "overgrowth"}, each [T]:
    harm = visible MSE(states) - visible MSE(control_states) against the target
    (``visible_mse``: clipped RGBA, finite even when a rule explodes);
    overgrowth = alive cells where the target's alpha <= threshold.
    """
    mutant = jnp.sum(ids == 1, axis=(-2, -1))
    host = jnp.sum(ids == 0, axis=(-2, -1))
    mse, mse_control = visible_mse(states, target), visible_mse(control_states, target)
    outside = alive_cells(states, threshold) & (target[..., 3] <= threshold)
    return {
        "mutant_cells": mutant,
        "host_cells": host,
        "mutant_share": mutant / jnp.maximum(mutant + host, 1),
        "harm": mse - mse_control,
        "overgrowth": jnp.sum(outside, axis=(-2, -1)),
    }

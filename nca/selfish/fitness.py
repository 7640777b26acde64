"""Per-cell fitness, the quantity selfish cells optimise.

The default fitness of cell ``i`` is the negative squared RGBA error of its own pixel::

    fitness_i = -sum_{c in RGBA} (x_i[c] - target_i[c])**2

(on the raw state, unclipped, exactly like ``nca.train.per_sample_loss``). Its mean over
cells is ``-4 * MSE``: ``per_sample_loss(x, target) == -mean_HW(fitness) / 4``, so
cooperative and selfish variants are measured on the same scale (tests check it).

Documented alternatives (``kind``):

- ``"gain"``: the improvement over being an empty cell, ``|target_i|**2 - error_i``. It is
  the default plus a per-cell constant, so its gradient is the same; it differs when
  fitness is *summed over the cells someone owns* (lineages, invaders): an owned cell
  that matches the target earns ``+|target_i|**2`` (the body is worth having), a living
  cell where the target is empty costs ``-|x_i|**2``. With the default a lineage would do
  best owning nothing, since every term is <= 0.
- ``"territory"``: ``clip(alpha_i, 0, 1)`` -- reward for simply being alive, whatever the
  colour (the tumour objective used for the adversary invader).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..errors import NCAError
from ..model import to_rgba

Array = jax.Array

FITNESS_KINDS = ("pixel", "gain", "territory")


def cell_error(states: Array, target: Array) -> Array:
    """Squared RGBA error of every cell. states: [..., H, W, C], target: [H, W, 4] -> [..., H, W]."""
    return jnp.sum(jnp.square(states[..., :4] - target), axis=-1)


def cell_fitness(states: Array, target: Array, kind: str = "pixel") -> Array:
    """Per-cell fitness map. states: [T, H, W, C] (any leading axes), target: [H, W, 4].

    Returns ``[T, H, W]`` (the leading axes of ``states``). ``kind``: one of
    ``FITNESS_KINDS``, see the module docstring.
    """
    if kind == "pixel":
        return -cell_error(states, target)
    if kind == "gain":
        return jnp.sum(jnp.square(target), axis=-1) - cell_error(states, target)
    if kind == "territory":
        return jnp.clip(states[..., 3], 0.0, 1.0)
    raise NCAError(f"unknown fitness kind {kind!r}; choose one of {FITNESS_KINDS}")


def fitness_loss(x: Array, target: Array) -> Array:
    """The usual training loss written through per-cell fitness: x [B, H, W, C] -> [B].

    Equals ``nca.train.per_sample_loss`` (the RGBA MSE).
    """
    return -jnp.mean(cell_fitness(x, target), axis=(-2, -1)) / 4.0


def visible_mse(states: Array, target: Array) -> Array:
    """MSE of what one sees: RGBA clipped to [0, 1] (NaN as 0) against the target.
    states: [..., H, W, C] -> [...]. Equals the loss while states stay in [0, 1]; unlike
    the raw loss it stays finite and comparable when a rule explodes over long rollouts."""
    return jnp.mean(jnp.square(to_rgba(jnp.nan_to_num(states)) - target), axis=(-3, -2, -1))

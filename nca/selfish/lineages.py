"""Competing lineages: K parameter sets (genotypes) sharing one grid.

Every cell carries a lineage id (int32, ``-1`` = none). The rules:

- **who owns a cell**: a cell is *alive* when its own alpha > ``alive_threshold``; every
  alive cell has the id of its lineage, every other cell has ``-1``.
- **whose rule updates a cell** (its *controller*): an alive cell runs its own lineage's
  rule. A cell that is not alive but lies next to an alive cell (the core's life mask lets
  it update and possibly come alive) runs the rule of its *parent*: the alive neighbour
  with the largest alpha in its 3x3 neighbourhood; exact ties go to the first in raster
  order (dy, dx) = (-1,-1), (-1,0), (-1,1), (0,-1), (0,1), (1,-1), (1,0), (1,1).
- **inheritance**: a cell that comes alive (not alive before the step, alive after) takes
  the lineage of the parent whose rule made it -- "the neighbour that brought it to life".
  A cell alive before and after keeps its id; a cell whose alpha drops to the threshold or
  below loses it (``-1``). Ids never change in any other way, so an alive cell cannot be
  taken over directly: an invader spreads only by killing cells and re-growing them.

The forward pass is the core ``step`` for every rule (same fire mask, same life mask);
the K updates are computed everywhere and selected per cell by controller (K is small).
With all K rules equal this is exactly the core rollout (tested).

Parameter stacks: leaves ``[K, ...]`` (``stack_params``). Ids and the controller are
discrete (comparisons, argmax): no gradient flows through them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import NCAError
from ..model import ModelConfig, Params, alive_mask, perceive, seed_state, step, step_key, wrap_step

Array = jax.Array

# Raster order of the 8 neighbours; the tie-break order of ``parent_lineage``.
NEIGHBOUR_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def stack_params(params_list: list[Params]) -> Params:
    """K param dicts of equal shapes -> one dict with leaves [K, ...]."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *params_list)


def lineage_params(params: Params, k: int) -> Params:
    """The k-th rule of a stack (leaves [K, ...] -> [...])."""
    return jax.tree.map(lambda leaf: leaf[k], params)


def num_lineages(params: Params) -> int:
    return int(params["b2"].shape[0])


def pad_hidden(params: Params, hidden: int) -> Params:
    """Zero-pad a rule's hidden layer to ``hidden`` units: the same function exactly
    (an extra unit has zero weights in and out, relu(0) = 0). Lets rules of different
    widths share a stack."""
    h = params["b1"].shape[-1]
    if h > hidden:
        raise NCAError(f"cannot pad {h} hidden units down to {hidden}")
    extra = hidden - h
    return {
        "w1": jnp.pad(params["w1"], ((0, 0), (0, extra))),
        "b1": jnp.pad(params["b1"], (0, extra)),
        "w2": jnp.pad(params["w2"], ((0, extra), (0, 0))),
        "b2": params["b2"],
    }


def alive_cells(x: Array, threshold: float = 0.1) -> Array:
    """Cells whose own alpha exceeds the threshold. x: [..., H, W, C] -> bool [..., H, W]."""
    return x[..., 3] > threshold


def owned_ids(x: Array, ids: Array, threshold: float = 0.1) -> Array:
    """Enforce the ownership invariant: ids where alive, -1 elsewhere. -> [..., H, W]."""
    return jnp.where(alive_cells(x, threshold), ids, -1).astype(jnp.int32)


def _shift(a: Array, dy: int, dx: int, fill) -> Array:
    """out[y, x] = a[y + dy, x + dx] (``fill`` outside the grid). a: [..., H, W]."""
    pad = [(0, 0)] * (a.ndim - 2) + [(1, 1), (1, 1)]
    p = jnp.pad(a, pad, constant_values=fill)
    h, w = a.shape[-2:]
    return p[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def parent_lineage(x: Array, ids: Array, threshold: float = 0.1) -> Array:
    """Lineage of each cell's parent: its alive 3x3 neighbour with the largest alpha
    (ties: first in ``NEIGHBOUR_OFFSETS``), or -1 when no neighbour is alive.

    x: [..., H, W, C]; ids: [..., H, W] int -> [..., H, W] int32.
    """
    alpha = x[..., 3]
    ids = owned_ids(x, ids, threshold)
    alphas = jnp.stack([_shift(jnp.where(ids >= 0, alpha, -jnp.inf), dy, dx, -jnp.inf)
                        for dy, dx in NEIGHBOUR_OFFSETS])
    nids = jnp.stack([_shift(ids, dy, dx, -1) for dy, dx in NEIGHBOUR_OFFSETS])
    best = jnp.argmax(alphas, axis=0)  # first maximum wins: the documented tie-break
    parent = jnp.take_along_axis(nids, best[None], axis=0)[0]
    has_parent = jnp.max(alphas, axis=0) > threshold
    return jnp.where(has_parent, parent, -1).astype(jnp.int32)


def controller(x: Array, ids: Array, threshold: float = 0.1) -> Array:
    """Whose rule updates each cell: its own lineage if alive, else its parent's, else -1.
    x: [..., H, W, C]; ids: [..., H, W] -> [..., H, W] int32."""
    own = owned_ids(x, ids, threshold)
    return jnp.where(own >= 0, own, parent_lineage(x, own, threshold))


def _step(params: Params, x: Array, ids: Array, key: Array, cfg: ModelConfig, t, prev_ctrl: Array | None,
          isolate: bool) -> tuple[Array, Array, Array]:
    """lineage_step returning also this step's controller [..., H, W]."""
    k_rules = num_lineages(params)
    ctrl = controller(x, ids, cfg.alive_threshold)
    hooks = None
    if isolate:
        if prev_ctrl is not None:
            # A cell whose controller changed starts a new history: nothing of its past
            # (grown under another lineage's rule) is credited to the new one.
            x = jnp.where((ctrl != prev_ctrl)[..., None], jax.lax.stop_gradient(x), x)
        p = None
        for k in range(k_rules):
            mine = (ctrl == k)[..., None]
            p_k = perceive(jnp.where(mine, x, jax.lax.stop_gradient(x)), cfg.angle_deg, cfg.neighbour_gradients)
            p = p_k if p is None else jnp.where(mine, p_k, p)
        hooks = {"perception": lambda _, t: p}
    caches = [step(lineage_params(params, k), x, key, cfg, t, hooks)[1] for k in range(k_rules)]
    dx = caches[0]["update"]
    for k in range(1, k_rules):
        dx = jnp.where((ctrl == k)[..., None], caches[k]["update"], dx)
    pre = alive_mask(x, cfg.alive_threshold)
    x_next = x + dx * caches[0]["fire"]
    life = (pre & alive_mask(x_next, cfg.alive_threshold)).astype(x.dtype)
    x_next = x_next * life
    # Alive after the step: keep the controller's id (own id if it was alive, the parent's
    # if it was just born).
    ids_next = jnp.where(alive_cells(x_next, cfg.alive_threshold), ctrl, -1).astype(jnp.int32)
    return x_next, ids_next, ctrl


def lineage_step(params: Params, x: Array, ids: Array, key: Array, cfg: ModelConfig = ModelConfig(),
                 t: Array | int = 0, prev_ctrl: Array | None = None, isolate: bool = False) -> tuple[Array, Array]:
    """One CA step with K rules. params: leaves [K, ...]; x: [..., H, W, C]; ids: [..., H, W].

    Returns (x_next, ids_next). Each cell gets the update of its controller's rule; fire
    mask and life mask exactly as in ``nca.model.step``. isolate: lineage-isolated
    gradients (same values): stopped where a cell reads a neighbour of another lineage and,
    given the previous step's controller ``prev_ctrl``, along a cell's own history where
    its controller changed -- then no gradient path leads from one rule to another
    lineage's cells (see ``nca.selfish.training``).
    """
    return _step(params, x, ids, key, cfg, t, prev_ctrl, isolate)[:2]


class LineageTrajectory(NamedTuple):
    """states: [T, ..., H, W, C]; ids: [T, ..., H, W] int32 (after each recorded step)."""

    states: Array | None
    ids: Array | None


def lineage_rollout(params: Params, x0: Array, ids0: Array, key: Array, steps: int,
                    cfg: ModelConfig = ModelConfig(), record: bool = True, t0: int | Array = 0,
                    every: int = 1, remat: bool = False, active_steps: Array | None = None,
                    isolate: bool = False) -> tuple[Array, Array, LineageTrajectory]:
    """``steps`` lineage steps with ``lax.scan``; fire keys ``step_key(key, t0 + i)`` as in
    ``nca.model.rollout`` (so equal rules reproduce it). Records every ``every``-th step
    (T = steps // every) when ``record``. active_steps: run only the first n steps
    (traced), the rest are the identity (variable-length training rollouts). isolate:
    lineage-isolated gradients (``lineage_step``).

    Returns (x_final, ids_final, LineageTrajectory).
    """
    x, ids, _, traj = lineage_rollout_owned(params, x0, ids0, key, steps, cfg, record, t0, every, remat,
                                            active_steps, isolate)
    return x, ids, traj


def lineage_rollout_owned(params: Params, x0: Array, ids0: Array, key: Array, steps: int,
                          cfg: ModelConfig = ModelConfig(), record: bool = True, t0: int | Array = 0,
                          every: int = 1, remat: bool = False, active_steps: Array | None = None,
                          isolate: bool = False) -> tuple[Array, Array, Array, LineageTrajectory]:
    """``lineage_rollout`` that also returns each cell's *owner*: the controller of the last
    step run (int32 [..., H, W]), i.e. the lineage whose rule made the cell's last update
    (``controller(x0, ids0)`` when no step ran).

    This is who a cell's final error must be charged to for isolated credit (issue 16): the
    controller computed from the *final* state can differ (a frontier cell whose strongest
    neighbour changed, or a cell that died, in the last step), and charging it would credit
    a lineage for a state another lineage's rule made.

    Returns (x_final, ids_final, owner, LineageTrajectory).
    """
    if steps % every:
        raise NCAError(f"steps={steps} is not a multiple of every={every}")
    t0 = jnp.asarray(t0, jnp.int32)

    def one(carry, t):
        x, ids, prev = carry
        return _step(params, x, ids, step_key(key, t), cfg, t, prev, isolate)

    one = wrap_step(one, t0, remat, active_steps)

    def inner(carry, t):
        carry = one(carry, t)
        return carry, (carry[:2] if record else None)

    ids0 = owned_ids(x0, ids0, cfg.alive_threshold)
    carry0 = (x0, ids0, controller(x0, ids0, cfg.alive_threshold))
    if every == 1:
        (x, ids, owner), rec = jax.lax.scan(inner, carry0, t0 + jnp.arange(steps, dtype=jnp.int32))
    else:

        def outer(carry, ts):
            carry, recs = jax.lax.scan(inner, carry, ts)
            return carry, (jax.tree.map(lambda r: r[-1], recs) if record else None)

        ts = t0 + jnp.arange(steps, dtype=jnp.int32).reshape(steps // every, every)
        (x, ids, owner), rec = jax.lax.scan(outer, carry0, ts)
    if not record:
        return x, ids, owner, LineageTrajectory(None, None)
    return x, ids, owner, LineageTrajectory(*rec)


def seed_positions(height: int, width: int, k: int, radius: int = 2) -> list[tuple[int, int]]:
    """K seed cells on a circle of ``radius`` px around the centre (H//2, W//2); one cell,
    the centre, when k == 1. Positions are (y, x), lineage k at angle 2*pi*k/K."""
    cy, cx = height // 2, width // 2
    if k == 1:
        return [(cy, cx)]
    pos = [(cy + int(np.round(radius * np.sin(2 * np.pi * i / k))),
            cx + int(np.round(radius * np.cos(2 * np.pi * i / k)))) for i in range(k)]
    if len(set(pos)) != k:
        raise NCAError(f"{k} seeds do not fit on a circle of radius {radius}; use a larger radius")
    return pos


def lineage_seed(height: int, width: int, cfg: ModelConfig, k: int, radius: int = 2,
                 batch: int | None = None) -> tuple[Array, Array]:
    """The article's seed cell, once per lineage (``seed_positions``).

    Returns (x [H, W, C], ids [H, W]) or with a leading ``batch`` axis.
    """
    one = seed_state(height, width, cfg)
    x = jnp.zeros_like(one)
    ids = jnp.full((height, width), -1, jnp.int32)
    for lineage, (y, xx) in enumerate(seed_positions(height, width, k, radius)):
        x = x.at[y, xx].set(one[height // 2, width // 2])
        ids = ids.at[y, xx].set(lineage)
    if batch is not None:
        x = jnp.broadcast_to(x, (batch,) + x.shape)
        ids = jnp.broadcast_to(ids, (batch,) + ids.shape)
    return x, ids


def lineage_counts(ids: Array, k: int) -> Array:
    """Alive cells per lineage. ids: [..., H, W] -> [..., K] int32."""
    return jnp.stack([jnp.sum(ids == i, axis=(-2, -1)) for i in range(k)], axis=-1).astype(jnp.int32)


def lineage_shares(ids: Array, k: int) -> Array:
    """Fraction of the alive cells in each lineage (0 where nothing is alive). -> [..., K]."""
    counts = lineage_counts(ids, k).astype(jnp.float32)
    total = jnp.sum(counts, axis=-1, keepdims=True)
    return jnp.where(total > 0, counts / jnp.maximum(total, 1.0), 0.0)

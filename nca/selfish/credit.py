"""How selfish is "selfish credit"? The selfish gradient vs a private copy of the rule.

Selfish credit (``ModelConfig(neighbour_gradients=False)``) gives cell i the gradient of
its own fitness through its own state history only: d fitness_i / d theta with every
read of a neighbour stopped. A cell that could really defect would own a *private copy*
theta_i of the rule, used by it alone, and follow d fitness_i / d theta_i with nothing
stopped: its own updates plus the loop through its neighbours (they read its state and it
reads theirs back). The two differ by that loop only. When they are close, selfish credit
is **myopic credit**, not selfishness: all cells share the rule and the target, their
interests are aligned, and no cell could gain by deviating from what the shared gradient
already asks of it (issue 16).

``private_gap`` measures, for sampled cells i of a grown body:

- ``g_selfish_i`` = d fitness_i(T) / d theta, selfish credit (neighbour reads stopped);
- ``g_private_i`` = d fitness_i(T) / d theta_i at theta_i = theta, full gradients, where
  only cell i runs theta_i (``private_step``);

and returns the relative differences ``|g_selfish - g_private| / |g_private|`` per cell and
of the sums over the sampled cells (the direction the population would move).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..model import ModelConfig, Params, alive_mask, fire_mask, perceive, step, step_key
from .fitness import cell_fitness

Array = jax.Array

CELL_STREAM = 0x63656C  # "cel": which cells are sampled


def _mlp(params: Params, p: Array) -> Array:
    return jax.nn.relu(p @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def private_step(params: Params, private: Params, mine: Array, x: Array, key: Array, cfg: ModelConfig) -> Array:
    """``nca.model.step`` where the cells ``mine`` (bool [H, W]) run the rule ``private``
    and every other cell runs ``params``. x: [H, W, C] -> x_next. With private = params
    it is the core step exactly (tested)."""
    pre = alive_mask(x, cfg.alive_threshold)
    p = perceive(x, cfg.angle_deg, cfg.neighbour_gradients)
    dx = jnp.where(mine[..., None], _mlp(private, p), _mlp(params, p))
    fire = fire_mask(key, x.shape, cfg.fire_rate).astype(x.dtype)
    x = x + dx * fire
    life = (pre & alive_mask(x, cfg.alive_threshold)).astype(x.dtype)
    return x * life


def _flat(tree) -> Array:
    return jnp.concatenate([jnp.ravel(v) for v in jax.tree.leaves(tree)])


def private_gap(params: Params, cfg: ModelConfig, x0: Array, target: Array, key: Array, steps: int,
                n_cells: int = 16) -> dict:
    """Selfish vs private-copy gradients of ``n_cells`` cells sampled (stream
    ``CELL_STREAM``) among those alive after ``steps`` steps from x0 [H, W, C].

    Returns {"per_cell": [n] relative differences, "sum": relative difference of the sums,
    "cosine": cosine of the summed gradients, "cells": [n, 2] (y, x)}.
    """
    import dataclasses

    selfish_cfg = dataclasses.replace(cfg, neighbour_gradients=False)
    full_cfg = dataclasses.replace(cfg, neighbour_gradients=True)
    h, w = x0.shape[:2]

    def roll(step_fn, x):
        def body(x, t):
            return step_fn(x, step_key(key, t)), None

        return jax.lax.scan(body, x, jnp.arange(steps, dtype=jnp.int32))[0]

    xT = jax.jit(lambda: roll(lambda x, k: step(params, x, k, full_cfg)[0], x0))()
    alive = np.asarray(xT[..., 3] > cfg.alive_threshold).reshape(-1)
    if alive.sum() == 0:
        from ..errors import NCAError

        raise NCAError("the model grows no body to measure credit on")
    idx = np.asarray(jax.random.choice(jax.random.fold_in(key, CELL_STREAM), np.nonzero(alive)[0],
                                       (min(n_cells, int(alive.sum())),), replace=False))

    def g_selfish(i):
        def f(q):
            x = roll(lambda x, k: step(q, x, k, selfish_cfg)[0], x0)
            return cell_fitness(x, target).reshape(-1)[i]

        return _flat(jax.grad(f)(params))

    def g_private(i):
        mine = (jnp.arange(h * w) == i).reshape(h, w)

        def f(q):
            x = roll(lambda x, k: private_step(params, q, mine, x, k, full_cfg), x0)
            return cell_fitness(x, target).reshape(-1)[i]

        return _flat(jax.grad(f)(params))

    gs = jax.jit(jax.vmap(g_selfish))(jnp.asarray(idx))
    gp = jax.jit(jax.vmap(g_private))(jnp.asarray(idx))
    gs, gp = np.asarray(gs, np.float64), np.asarray(gp, np.float64)
    per = np.linalg.norm(gs - gp, axis=1) / np.maximum(np.linalg.norm(gp, axis=1), 1e-30)
    ss, sp = gs.sum(0), gp.sum(0)
    return {"per_cell": per, "sum": float(np.linalg.norm(ss - sp) / max(np.linalg.norm(sp), 1e-30)),
            "cosine": float(ss @ sp / max(np.linalg.norm(ss) * np.linalg.norm(sp), 1e-30)),
            "cells": np.stack([idx // w, idx % w], 1)}

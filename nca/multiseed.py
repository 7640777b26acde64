"""Many seeds at once: K independent training runs in one compiled program.

``nca.train.train_step`` is pure, so ``jax.vmap`` over a stacked ``TrainState`` (params,
optimiser state, pool, key, step: a leading axis of K) trains K models with one
compilation and one dispatch per step. Seed ``i`` is ``cfg.seed + i``: its state is
exactly ``init_train_state(replace(cfg, seed=cfg.seed + i))`` and it draws its own batch,
rollout length and fire masks from its own key (the rollout length is per seed; under
vmap the rollout's ``lax.cond`` becomes a select, which computes both branches and keeps
the same values). So a vmapped seed equals the same seed trained alone, up to float
rounding (tested).

Output: ``out_dir/seed_<s>/`` for each seed, each a normal run directory (config.json with
that seed, checkpoint.msgpack, metrics.csv, preview.png, kept checkpoints): load one with
``nca.load_model``, continue one alone with ``python scripts/train.py --resume DIR``.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from . import checkpoint as ckpt
from .config import Config, save_config
from .errors import NCAError
from .targets import load_target
from .train import (TrainState, _all_finite, _training_ui, _write_metrics, init_train_state, metric_row,
                    save_preview, train_step)


def seed_configs(cfg: Config, k: int) -> list[Config]:
    """The K configs: ``cfg`` with seeds ``cfg.seed .. cfg.seed + k - 1``."""
    if k < 1:
        raise NCAError(f"--seeds must be >= 1, got {k}")
    return [replace(cfg, seed=cfg.seed + i) for i in range(k)]


def stack_states(states: list[TrainState]) -> TrainState:
    """K TrainStates -> one with a leading axis K on every leaf."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


def unstack_state(states: TrainState, i: int) -> TrainState:
    """Seed i of a stacked TrainState."""
    return jax.tree.map(lambda x: x[i], states)


def init_stacked(cfg: Config, k: int) -> TrainState:
    return stack_states([init_train_state(c) for c in seed_configs(cfg, k)])


def compiled_multi_step(cfg: Config):
    """``train_step`` vmapped over the stacked state (the target is shared), jitted, state
    donated: (stacked state, target [H, W, 4]) -> (stacked state, losses [K])."""
    return jax.jit(jax.vmap(partial(train_step, cfg), in_axes=(0, None)), donate_argnums=(0,))


def seed_dir(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}"


def train_seeds(cfg: Config, out_dir: Path, k: int, progress: bool = True, stop_at: int | None = None,
                log=print) -> TrainState:
    """Train K seeds of ``cfg`` at once into ``out_dir/seed_<s>/``. Returns the stacked state.

    stop_at: stop (and checkpoint every seed) after this step. Ctrl-C does the same.
    """
    out_dir = Path(out_dir)
    cfgs = seed_configs(cfg, k)
    dirs = [seed_dir(out_dir, c.seed) for c in cfgs]
    taken = [str(d) for d in dirs if (d / ckpt.CHECKPOINT).exists() or (d / ckpt.CONFIG).exists()]
    if taken:
        raise NCAError(f"{', '.join(taken)} already hold runs; choose another --out (nothing was overwritten)")
    target_np = load_target(cfg.target, cfg.target_size, cfg.target_padding)
    target = jnp.asarray(target_np)
    states = init_stacked(cfg, k)
    rows = [[] for _ in range(k)]
    elapsed = 0.0
    keep = set(ckpt.kept_steps(cfg.keep_checkpoints, cfg.train_steps))

    def save(states):
        if not bool(_all_finite(states.params)):
            raise NCAError(f"parameters became non-finite by step {int(states.step[0])}; the last good "
                           f"checkpoints are kept in {out_dir}; try a lower --lr")
        for i, d in enumerate(dirs):
            ckpt.save_checkpoint(d / ckpt.CHECKPOINT, {"train": unstack_state(states, i), "elapsed": np.float64(elapsed)})
            _write_metrics(d / ckpt.METRICS, rows[i])

    for c, d in zip(cfgs, dirs):
        d.mkdir(parents=True, exist_ok=True)
        save_config(c, d / ckpt.CONFIG)
    save(states)
    if 0 in keep:
        for i, d in enumerate(dirs):
            ckpt.save_kept(d, 0, unstack_state(states, i).params)

    step_fn = compiled_multi_step(cfg)
    end = cfg.train_steps if stop_at is None else min(stop_at, cfg.train_steps)
    t_last = time.perf_counter()
    interrupted = False
    with _training_ui(progress, end, 0, f"train {k} seeds") as (bar, flag):
        for done in range(1, end + 1):
            states, loss = step_fn(states, target)
            losses = np.asarray(loss, np.float64)
            now = time.perf_counter()
            elapsed += now - t_last
            t_last = now
            bad = [cfgs[i].seed for i in range(k) if not math.isfinite(losses[i])]
            if bad:
                raise NCAError(f"loss became non-finite at step {done} for seed(s) {bad}; the last good "
                               f"checkpoints are kept in {out_dir}; try a lower --lr")
            for i in range(k):
                rows[i].append(metric_row(cfg, done, float(losses[i]), elapsed))
            if done in keep:
                for i, d in enumerate(dirs):
                    ckpt.save_kept(d, done, unstack_state(states, i).params)
            if done % cfg.checkpoint_every == 0 or done == end or flag.stop:
                save(states)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses.mean():.4g}")
            if flag.stop:
                interrupted = True
                break
    if interrupted:
        log(f"interrupted; checkpoints saved. Continue a seed alone with: python scripts/train.py --resume {dirs[0]}")
        return states
    if end == cfg.train_steps:
        for i, (c, d) in enumerate(zip(cfgs, dirs)):
            mse = save_preview(d / ckpt.PREVIEW, c, unstack_state(states, i).params, target_np)
            log(f"seed {c.seed}: preview in {d / ckpt.PREVIEW} (MSE {mse:.4f} to the target)")
    return states

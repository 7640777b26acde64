"""Many seeds at once: K independent training runs, one compiled program.

``nca.train.train_step`` is pure, so ``jax.vmap`` over a stacked ``TrainState`` (params,
optimiser state, pool, key, step: a leading axis of K) trains K models with one
compilation and one dispatch per step. Seed ``i`` is ``cfg.seed + i``: its state is
exactly ``init_train_state(replace(cfg, seed=cfg.seed + i))`` and it draws its own batch,
rollout length and fire masks from its own key. So a vmapped seed equals the same seed
trained alone, up to float rounding (tested).

With several devices (GPUs, or CPU cores exposed as devices by
``nca.parallel.use_cpu_cores``, which ``scripts/train.py --seeds K`` calls) the seeds are
split into one group per device and each step dispatches every group before waiting for
any, so the groups run at the same time. On a 2-core CPU this is ~1.5x faster than one
vmapped program on one device (``bench/run.py``: ``seeds8_cores`` vs ``seeds8``), because
one program leaves the second core mostly idle. (``nca.parallel.population_train_step``,
the same split as one SPMD program, was slower than one device on CPU.)

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
from .parallel import stack_states
from .targets import load_target
from .train import (TrainState, _all_finite, _training_ui, _write_metrics, init_train_state, metric_row,
                    save_preview, train_step)


def seed_configs(cfg: Config, k: int) -> list[Config]:
    """The K configs: ``cfg`` with seeds ``cfg.seed .. cfg.seed + k - 1``."""
    if k < 1:
        raise NCAError(f"--seeds must be >= 1, got {k}")
    return [replace(cfg, seed=cfg.seed + i) for i in range(k)]


def unstack_state(states: TrainState, i: int) -> TrainState:
    """Seed i of a stacked TrainState."""
    return jax.tree.map(lambda x: x[i], states)


def seed_groups(k: int, n_devices: int) -> list[range]:
    """Seed indices 0..k-1 in at most ``n_devices`` contiguous groups whose sizes differ by
    at most one (one group per device)."""
    n = max(1, min(k, n_devices))
    size, extra = divmod(k, n)
    bounds = np.cumsum([0] + [size + (g < extra) for g in range(n)])
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:])]


def compiled_multi_step(cfg: Config):
    """``train_step`` vmapped over the stacked state (the target is shared), jitted, state
    donated: (stacked state, target [H, W, 4]) -> (stacked state, losses [K])."""
    return jax.jit(jax.vmap(partial(train_step, cfg), in_axes=(0, None)), donate_argnums=(0,))


def seed_dir(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}"


def train_seeds(cfg: Config, out_dir: Path, k: int, progress: bool = True, stop_at: int | None = None,
                log=print, devices=None) -> TrainState:
    """Train K seeds of ``cfg`` at once into ``out_dir/seed_<s>/``. Returns the stacked state.

    devices: where the groups of seeds run (default ``jax.local_devices()``, see the module
    docstring). stop_at: stop (and checkpoint every seed) after this step. Ctrl-C does the same.
    """
    out_dir = Path(out_dir)
    cfgs = seed_configs(cfg, k)
    dirs = [seed_dir(out_dir, c.seed) for c in cfgs]
    taken = [str(d) for d in dirs if (d / ckpt.CHECKPOINT).exists() or (d / ckpt.CONFIG).exists()]
    if taken:
        raise NCAError(f"{', '.join(taken)} already hold runs; choose another --out (nothing was overwritten)")
    target_np = load_target(cfg.target, cfg.target_size, cfg.target_padding)
    devices = jax.local_devices() if devices is None else list(devices)
    groups = seed_groups(k, len(devices))
    devices = devices[:len(groups)]
    targets = [jax.device_put(jnp.asarray(target_np), d) for d in devices]
    # One stacked state per group, on its device; seed i is member i - g.start of its group.
    states = [jax.device_put(stack_states([init_train_state(cfgs[i]) for i in g]), d) for g, d in zip(groups, devices)]
    member = [(gi, i - g.start) for gi, g in enumerate(groups) for i in g]
    rows = [[] for _ in range(k)]
    elapsed = 0.0
    keep = set(ckpt.kept_steps(cfg.keep_checkpoints, cfg.train_steps))

    def seed_state(states, i):
        gi, j = member[i]
        return unstack_state(states[gi], j)

    def save(states):
        if not all(bool(_all_finite(s.params)) for s in states):
            raise NCAError(f"parameters became non-finite by step {int(states[0].step[0])}; the last good "
                           f"checkpoints are kept in {out_dir}; try a lower --lr")
        for i, d in enumerate(dirs):
            ckpt.save_checkpoint(d / ckpt.CHECKPOINT, {"train": seed_state(states, i), "elapsed": np.float64(elapsed)})
            _write_metrics(d / ckpt.METRICS, rows[i])

    for c, d in zip(cfgs, dirs):
        d.mkdir(parents=True, exist_ok=True)
        save_config(c, d / ckpt.CONFIG)
    save(states)
    if 0 in keep:
        for i, d in enumerate(dirs):
            ckpt.save_kept(d, 0, seed_state(states, i).params)

    step_fn = compiled_multi_step(cfg)
    end = cfg.train_steps if stop_at is None else min(stop_at, cfg.train_steps)
    t_last = time.perf_counter()
    interrupted = False
    with _training_ui(progress, end, 0, f"train {k} seeds") as (bar, flag):
        for done in range(1, end + 1):
            outs = [step_fn(s, t) for s, t in zip(states, targets)]  # every group dispatched before any is read
            states = [o[0] for o in outs]
            losses = np.concatenate([np.asarray(o[1], np.float64) for o in outs])
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
                    ckpt.save_kept(d, done, seed_state(states, i).params)
            if done % cfg.checkpoint_every == 0 or done == end or flag.stop:
                save(states)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses.mean():.4g}")
            if flag.stop:
                interrupted = True
                break
    stacked = stack_states([jax.device_put(seed_state(states, i), devices[0]) for i in range(k)])
    if interrupted:
        log(f"interrupted; checkpoints saved. Continue a seed alone with: python scripts/train.py --resume {dirs[0]}")
        return stacked
    if end == cfg.train_steps:
        for i, (c, d) in enumerate(zip(cfgs, dirs)):
            mse = save_preview(d / ckpt.PREVIEW, c, seed_state(states, i).params, target_np)
            log(f"seed {c.seed}: preview in {d / ckpt.PREVIEW} (MSE {mse:.4f} to the target)")
    return stacked

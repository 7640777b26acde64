"""Many seeds at once: K independent training runs, one compiled program.

``nca.train.train_step`` is pure, so ``jax.vmap`` over a stacked ``TrainState`` (params,
optimiser state, pool, key, step: a leading axis of K) trains K models with one
compilation and one dispatch per step. Seed ``i`` is ``cfg.seed + i``: its state is
exactly ``init_train_state(replace(cfg, seed=cfg.seed + i))`` and it draws its own batch,
rollout length and fire masks from its own key. So a vmapped seed equals the same seed
trained alone, up to float rounding (tested).

The program is ``nca.parallel.population_train_step``: the seeds are split over the
devices (GPUs, or CPU cores exposed as devices by ``nca.parallel.use_cpu_cores``, which
``scripts/train.py --seeds K`` calls), each device vmapping its share. On a 2-core CPU
8 seeds cost ~5.5-6.5x one seed this way, against ~8x as one vmap on one device
(``bench/run.py``: ``seeds8_cores`` vs ``seeds8``), because a single small program
leaves the second core mostly idle. When the devices do not divide K, the last seed is
repeated to fill the shares (``pad_population``) and the copies are dropped.

Output: ``out_dir/seed_<s>/`` for each seed, each a normal run directory (config.json with
that seed, checkpoint.msgpack, metrics.csv, preview.png, kept checkpoints): load one with
``nca.load_model``, continue one alone with ``python scripts/train.py --resume DIR``.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from . import checkpoint as ckpt
from .config import Config, save_config
from .errors import NCAError
from .parallel import make_mesh, pad_population, population_train_step, shard_population, stack_states
from .targets import load_target
from .train import (TrainState, _all_finite, _training_ui, _write_metrics, init_train_state, metric_row,
                    save_preview)


def seed_configs(cfg: Config, k: int) -> list[Config]:
    """The K configs: ``cfg`` with seeds ``cfg.seed .. cfg.seed + k - 1``."""
    if k < 1:
        raise NCAError(f"--seeds must be >= 1, got {k}")
    return [replace(cfg, seed=cfg.seed + i) for i in range(k)]


def unstack_state(states: TrainState, i: int) -> TrainState:
    """Seed i of a stacked TrainState."""
    return jax.tree.map(lambda x: x[i], states)


def seed_dir(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}"


def train_seeds(cfg: Config, out_dir: Path, k: int, progress: bool = True, stop_at: int | None = None,
                log=print, devices=None) -> TrainState:
    """Train K seeds of ``cfg`` at once into ``out_dir/seed_<s>/``. Returns the stacked state.

    devices: what the seeds are split over (default ``jax.local_devices()``, see the module
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
    mesh = make_mesh(devices[:min(k, len(devices))])
    step_fn = population_train_step(cfg, mesh)
    target = jax.device_put(jnp.asarray(target_np), NamedSharding(mesh, P()))
    stacked = stack_states([init_train_state(c) for c in cfgs])
    states = shard_population(pad_population(stacked, mesh.devices.size), mesh)  # [K + copies, ...]
    del stacked
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

    end = cfg.train_steps if stop_at is None else min(stop_at, cfg.train_steps)
    t_last = time.perf_counter()
    interrupted = False
    with _training_ui(progress, end, 0, f"train {k} seeds") as (bar, flag):
        for done in range(1, end + 1):
            states, losses = step_fn(states, target)
            losses = np.asarray(losses, np.float64)[:k]
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
    stacked = jax.tree.map(lambda x: x[:k], states)
    if interrupted:
        log(f"interrupted; checkpoints saved. Continue a seed alone with: python scripts/train.py --resume {dirs[0]}")
        return stacked
    if end == cfg.train_steps:
        for i, (c, d) in enumerate(zip(cfgs, dirs)):
            mse = save_preview(d / ckpt.PREVIEW, c, unstack_state(states, i).params, target_np)
            log(f"seed {c.seed}: preview in {d / ckpt.PREVIEW} (MSE {mse:.4f} to the target)")
    return stacked

"""Many seeds at once: K independent training runs, one compiled program.

``nca.train.train_step`` is pure, so ``jax.vmap`` over a stacked ``TrainState`` (params,
optimiser state, pool, key, step: a leading axis of K) trains K models with one
compilation and one dispatch per step. Each seed ``s`` of the list: its state is
exactly ``init_train_state(replace(cfg, seed=s))`` and it draws its own batch,
rollout length and fire masks from its own key. So a vmapped seed equals the same seed
trained alone, up to float rounding (tested).

The program is ``nca.parallel.population_train_step``: the seeds are split over the
devices (GPUs, or CPU cores exposed as devices by ``nca.parallel.use_cpu_cores``, which
``scripts/train.py --seeds 0,1,2`` calls), each device vmapping its share. On a 2-core CPU
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
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from . import checkpoint as ckpt
from .config import Config, save_config
from .errors import NCAError, check_fits
from .loop import LoopSpec, all_finite, drive
from .parallel import make_mesh, pad_population, population_train_step, shard_population, stack_states
from .targets import load_target
from .train import (TrainState, _write_metrics, check_new_run_dir, clean_run_dir, init_train_state, metric_row,
                    save_preview, training_bytes)


def seed_configs(cfg: Config, seeds: int | Sequence[int]) -> list[Config]:
    """The configs of the seeds: ``cfg`` with each seed of the list ``seeds``, or with
    ``cfg.seed .. cfg.seed + k - 1`` when ``seeds`` is a count k."""
    if isinstance(seeds, (int, np.integer)):
        if seeds < 1:
            raise NCAError(f"the number of seeds must be >= 1, got {seeds}")
        seeds = range(cfg.seed, cfg.seed + int(seeds))
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise NCAError("the list of seeds is empty")
    if len(set(seeds)) != len(seeds):
        raise NCAError(f"seeds repeat in {seeds}; each seed trains once")
    return [Config.from_dict({**cfg.to_dict(), "seed": s}) for s in seeds]


def unstack_state(states: TrainState, i: int) -> TrainState:
    """Seed i of a stacked TrainState."""
    return jax.tree.map(lambda x: x[i], states)


def seed_dir(out_dir: Path, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}"


def _check_population_dir(out_dir: Path) -> None:
    """The top folder may hold only seed folders (ours) and our lock."""
    others = sorted(p.name for p in out_dir.iterdir() if p.name != ckpt.LOCK and not
                    (p.is_dir() and p.name.startswith("seed_")))
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise NCAError(f"{out_dir} holds files that are not training runs ({shown}); choose a new or "
                       "empty output folder (nothing was overwritten)")


def train_seeds(cfg: Config, out_dir: Path, k: int | Sequence[int], progress: bool = True, stop_at: int | None = None,
                log=print, devices=None) -> TrainState:
    """Train K seeds of ``cfg`` at once into ``out_dir/seed_<s>/``. Returns the stacked state.

    k: the seeds, a list (``[0, 1, 2]``), or a count (``cfg.seed .. cfg.seed + k - 1``).

    devices: what the seeds are split over (default ``jax.local_devices()``, see the module
    docstring). stop_at: stop (and checkpoint every seed) after this step. Ctrl-C does the same.
    The top folder and every seed folder are claimed (``nca.checkpoint.claim_run_dir``) and
    checked like a single run's (``nca.train.check_new_run_dir``) before anything is written.
    """
    out_dir = Path(out_dir)
    cfgs = seed_configs(cfg, k)
    if stop_at is not None and stop_at < 0:
        raise NCAError(f"stop_at must be >= 0, got {stop_at}")
    dirs = [seed_dir(out_dir, c.seed) for c in cfgs]
    taken = [str(d) for d in dirs if (d / ckpt.CONFIG).exists()]
    if taken:
        raise NCAError(f"{', '.join(taken)} already hold runs; choose another output folder (nothing was overwritten)")
    with ExitStack() as claims:
        claims.enter_context(ckpt.claim_run_dir(out_dir))
        _check_population_dir(out_dir)
        for d in dirs:
            claims.enter_context(ckpt.claim_run_dir(d))
            clean_run_dir(d)
            check_new_run_dir(d)
        return _train_seeds_claimed(cfg, cfgs, dirs, out_dir, progress, stop_at, log, devices)


def _train_seeds_claimed(cfg, cfgs, dirs, out_dir, progress, stop_at, log, devices) -> TrainState:
    k = len(cfgs)
    check_fits(training_bytes(cfg, k), f"training {k} seeds on a {cfg.grid_size}x{cfg.grid_size} grid",
               "train fewer seeds at once, or lower pool_size, batch_size, target_size or rollout_max")
    target_np = load_target(cfg.target, cfg.target_size, cfg.target_padding, cfg.target_background)
    devices = jax.local_devices() if devices is None else list(devices)
    mesh = make_mesh(devices[:min(k, len(devices))])
    step_fn = population_train_step(cfg, mesh)
    target = jax.device_put(jnp.asarray(target_np), NamedSharding(mesh, P()))
    stacked = stack_states([init_train_state(c) for c in cfgs])
    states = shard_population(pad_population(stacked, mesh.devices.size), mesh)  # [K + copies, ...]
    del stacked
    rows = [[] for _ in range(k)]
    config_written = False

    def step():
        nonlocal states
        states, losses = step_fn(states, target)
        return losses

    def record(s, losses, elapsed):
        for i in range(k):
            rows[i].append(metric_row(cfg, s, float(losses[i]), elapsed))
        return f"loss={losses[:k].mean():.4g}"

    def nonfinite(s, losses):
        bad = [cfgs[i].seed for i in range(k) if not math.isfinite(losses[i])]
        return f"loss became non-finite at step {s} for the seeds {bad}"

    def save(s, elapsed):
        nonlocal config_written
        for i, d in enumerate(dirs):
            ckpt.save_checkpoint(d / ckpt.CHECKPOINT, {"train": unstack_state(states, i), "elapsed": np.float64(elapsed)})
            _write_metrics(d / ckpt.METRICS, rows[i])
        if not config_written:  # last: a folder with a config.json always holds a usable run
            for c, d in zip(cfgs, dirs):
                save_config(c, d / ckpt.CONFIG)
            config_written = True

    def save_kept(s):
        for i, d in enumerate(dirs):
            ckpt.save_kept(d, s, unstack_state(states, i).params)

    end = cfg.train_steps if stop_at is None else min(stop_at, cfg.train_steps)
    spec = LoopSpec(start=0, end=end, total=end, checkpoint_every=cfg.checkpoint_every,
                    keep=frozenset(ckpt.kept_steps(cfg.keep_checkpoints, cfg.train_steps)), where=out_dir,
                    save_at_start=True, progress=progress, desc=f"train {k} seeds")
    # the padding copies repeat a real seed: checking them adds nothing, and they are finite iff it is
    result = drive(spec, step=step, record=record, save=save, save_kept=save_kept,
                   params_finite=lambda: all_finite(states.params), nonfinite_loss=nonfinite)
    stacked = jax.tree.map(lambda x: x[:k], states)
    if result.interrupted:
        log(f"interrupted; checkpoints saved. Continue a seed alone by resuming {dirs[0]}")
        return stacked
    if end == cfg.train_steps:
        for i, (c, d) in enumerate(zip(cfgs, dirs)):
            mse = save_preview(d / ckpt.PREVIEW, c, unstack_state(states, i).params, target_np)
            log(f"seed {c.seed}: preview in {d / ckpt.PREVIEW} (MSE {mse:.4f} to the target)")
    return stacked

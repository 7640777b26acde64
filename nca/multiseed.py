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

import csv
import io
import math
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import replace
from functools import lru_cache, partial
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
from .distributed import SINGLE, Job, agree, gather, post_result, share
from .parallel import make_mesh, pad_population, population_train_step, shard_population, stack_states
from .targets import load_target
from .train import (TrainState, _NOT_IN_STEP, _read_metrics, _write_metrics, check_new_run_dir, clean_run_dir,
                    hyper_of, init_train_state, metric_row, save_preview, training_bytes,
                    without_hyper)


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


SUMMARY = "summary.csv"
SUMMARY_FIELDS = ("run", "seed", "process", "step", "train_steps", "final_loss", "preview_mse")


def _check_population_dir(out_dir: Path, subdirs=lambda p: p.name.startswith("seed_")) -> None:
    """The top folder may hold only run folders (ours), our summary and our lock."""
    others = sorted(p.name for p in out_dir.iterdir() if p.name not in (ckpt.LOCK, SUMMARY) and
                    not p.name.endswith(ckpt.TEMP_SUFFIX) and not (p.is_dir() and subdirs(p)))
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise NCAError(f"{out_dir} holds files that are not training runs ({shown}); choose a new or "
                       "empty output folder (nothing was overwritten)")


def group_key(cfg: Config) -> Config:
    """Runs whose configs have equal keys train as one vmapped program: they may differ
    in the seed (it lives in the state's key), the target image (an argument of the step,
    one per model) and the hyperparameters that change no shape -- lr, its decay factor,
    the fire rate (``nca.train.Hyper``, traced values, one per model). Everything else --
    hidden width, batch size, rollout lengths, damage -- is static in the compiled step."""
    return replace(without_hyper(cfg), seed=0, target="")


def train_seeds(cfg: Config, out_dir: Path, k: int | Sequence[int], progress: bool = True, stop_at: int | None = None,
                log=print, devices=None, job: Job = SINGLE) -> TrainState:
    """Train K seeds of ``cfg`` at once into ``out_dir/seed_<s>/``. Returns the stacked state
    of this process's seeds (all of them in a single process).

    k: the seeds, a list (``[0, 1, 2]``), or a count (``cfg.seed .. cfg.seed + k - 1``).

    devices: what the seeds are split over (default ``jax.local_devices()``, see the module
    docstring). stop_at: stop (and checkpoint every seed) after this step. Ctrl-C does the same.
    job: this process's place in a multi-process job (``nca.distributed``): it trains its
    share of the seeds; process 0 writes ``summary.csv``. The top folder (process 0) and every
    seed folder are claimed (``nca.checkpoint.claim_run_dir``) and checked like a single
    run's (``nca.train.check_new_run_dir``) before anything is written.
    """
    cfgs = seed_configs(cfg, k)
    states, _ = train_runs(cfgs, out_dir, [f"seed_{c.seed}" for c in cfgs], progress=progress, stop_at=stop_at,
                           log=log, devices=devices, job=job)
    return states[0] if len(states) == 1 else states


def train_runs(cfgs: Sequence[Config], out_dir: Path, names: Sequence[str], *, progress: bool = True,
               stop_at: int | None = None, log=print, devices=None, job: Job = SINGLE,
               resume: bool = False) -> tuple[list[TrainState], list[dict]]:
    """Train (or, ``resume``, continue) the runs ``out_dir/<name>/`` of ``cfgs``.

    This process trains its share (``nca.distributed.share``) of the runs; runs whose
    configs share a ``group_key`` (and, resumed, a step) train as one vmapped program split
    over ``devices``. Process 0 claims ``out_dir``, writes ``job.json`` (names and configs,
    what ``resume_runs`` reads), gathers every process's results and writes ``summary.csv``.
    Returns (the stacked states of this process's groups, the results: every run's on
    process 0, this process's own elsewhere; one dict per run, ``SUMMARY_FIELDS``).
    """
    out_dir = Path(out_dir)
    cfgs, names = list(cfgs), [str(n) for n in names]
    if stop_at is not None and stop_at < 0:
        raise NCAError(f"stop_at must be >= 0, got {stop_at}")
    if len(cfgs) != len(names) or not cfgs:
        raise NCAError(f"need one name per config, got {len(names)} names for {len(cfgs)} configs")
    if len(set(names)) != len(names):
        raise NCAError(f"run names repeat in {names}; each run needs its own folder")
    # every process must be training the same job: caught here rather than as two processes
    # silently writing different runs into one folder
    def names_of(p):  # what process p trains, for messages
        return ", ".join(names[i] for i in share(list(range(len(names))), Job(p, job.count)))

    agree(job, "job", {"processes": job.count, "names": names, "configs": [c.to_dict() for c in cfgs],
                       "resume": resume}, names_of=names_of)
    dirs = [out_dir / n for n in names]
    mine = share(list(range(len(cfgs))), job)
    if not resume:
        taken = [str(dirs[i]) for i in mine if (dirs[i] / ckpt.CONFIG).exists()]
        if taken:
            raise NCAError(f"{', '.join(taken)} already hold runs; choose another output folder "
                           "(nothing was overwritten)")
    tops = {n.split("/")[0] for n in names}
    with ExitStack() as claims:
        if job.is_main:
            claims.enter_context(ckpt.claim_run_dir(out_dir))
            ckpt.clean_stale_temps(out_dir, (SUMMARY, JOB))
            if not resume:
                if (out_dir / JOB).exists():
                    raise NCAError(f"{out_dir} already holds a job ({JOB}); resume it (--resume) or choose "
                                   "another output folder (nothing was overwritten)")
                _check_population_dir(out_dir, lambda p: p.name.startswith("seed_") or p.name in tops)
                _write_job(out_dir, names, cfgs)
        # the others write nothing until process 0 has claimed and checked OUT (if it refused,
        # it is gone, and JAX ends them: no half-made run folders of a refused job)
        agree(job, "out-checked", True, names_of=names_of)
        for i in mine:
            claims.enter_context(ckpt.claim_run_dir(dirs[i]))
            clean_run_dir(dirs[i])
            if not resume:
                check_new_run_dir(dirs[i])
        states, results = _train_share([cfgs[i] for i in mine], [dirs[i] for i in mine], [names[i] for i in mine],
                                       resume, progress, stop_at, log, devices, job)
        post_result(job, results)
        everyone = gather(job, results, names_of)
        if job.is_main:
            results = sorted((r for rs in everyone for r in rs), key=lambda r: names.index(r["run"]))
            write_summary(out_dir / SUMMARY, results)
    return states, results


JOB = "job.json"


def _write_job(out_dir: Path, names: list[str], cfgs: list[Config]) -> None:
    import json

    doc = {"runs": [{"name": n, "config": c.to_dict()} for n, c in zip(names, cfgs)]}
    ckpt.atomic_write_bytes(out_dir / JOB, (json.dumps(doc, indent=1) + "\n").encode())


def read_job(out_dir: Path) -> tuple[list[str], list[Config]]:
    """The runs of a population or sweep folder: its ``job.json``, or (a folder written
    before job.json existed) every ``seed_*/config.json`` in it. -> (names, configs)."""
    import json

    out_dir = Path(out_dir)
    path = out_dir / JOB
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
            runs = [(str(r["name"]), Config.from_dict(r["config"])) for r in doc["runs"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise NCAError(f"cannot read {path}: {e}") from None
    else:
        from .config import load_config

        found = sorted((p.parent for p in out_dir.glob("seed_*/config.json")), key=lambda p: _seed_order(p.name))
        runs = [(p.name, load_config(p / ckpt.CONFIG)) for p in found]
    if not runs:
        raise NCAError(f"{out_dir} holds no {JOB} and no seed_*/config.json: there are no runs to resume")
    return [n for n, _ in runs], [c for _, c in runs]


def _seed_order(name: str):
    tail = name.split("_", 1)[-1]
    return (0, int(tail), name) if tail.isdigit() else (1, 0, name)


def resume_runs(out_dir: Path, *, progress: bool = True, stop_at: int | None = None, log=print, devices=None,
                job: Job = SINGLE) -> tuple[list[TrainState], list[dict]]:
    """Continue every unfinished run of a population or sweep folder (``read_job``) with the
    same share of runs per process as the original job (so the same vmapped groups, the
    same programs): finished runs are only reported. A run killed before its first
    checkpoint starts again from step 0."""
    names, cfgs = read_job(out_dir)
    return train_runs(cfgs, out_dir, names, progress=progress, stop_at=stop_at, log=log, devices=devices,
                      job=job, resume=True)


def is_population_dir(path: Path) -> bool:
    """Whether ``path`` holds several runs (``job.json`` or ``seed_*/config.json``) rather
    than being one run folder."""
    path = Path(path)
    return not (path / ckpt.CONFIG).exists() and ((path / JOB).is_file() or any(path.glob("seed_*/config.json")))


def write_summary(path: Path, results: list[dict]) -> None:
    """``summary.csv``: one row per run (``SUMMARY_FIELDS``), written atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, SUMMARY_FIELDS)
    w.writeheader()
    for r in results:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in SUMMARY_FIELDS})
    ckpt.atomic_write_bytes(Path(path), buf.getvalue().encode())


class _Run:
    """One run of this process's share as it enters training."""

    def __init__(self, cfg, folder, name, state, elapsed, rows, fresh):
        self.cfg, self.dir, self.name, self.state = cfg, folder, name, state
        self.elapsed, self.rows, self.fresh = elapsed, rows, fresh
        self.start = int(state.step)


def _load_run(cfg: Config, folder: Path, name: str, resume: bool, log) -> _Run:
    path = folder / ckpt.CHECKPOINT
    if resume and path.exists() and (folder / ckpt.CONFIG).exists():
        from .config import load_config

        saved = load_config(folder / ckpt.CONFIG)
        if saved != cfg:
            raise NCAError(f"{folder / ckpt.CONFIG} differs from the job's config of {name} "
                           f"({folder.parent / JOB}); was the folder edited?")
        template = {"train": jax.eval_shape(partial(init_train_state, cfg)), "elapsed": np.float64(0)}
        got = ckpt.load_checkpoint(path, template)
        state = got["train"]
        return _Run(cfg, folder, name, state, float(got["elapsed"]), _read_metrics(folder / ckpt.METRICS,
                                                                                     int(state.step)), False)
    if resume:
        log(f"{folder} was stopped before its first checkpoint: starting it from step 0")
        check_new_run_dir(folder)
    return _Run(cfg, folder, name, init_train_state(cfg), 0.0, [], True)


def _result(run: _Run, job: Job, step: int, preview_mse) -> dict:
    loss = float(run.rows[-1]["loss"]) if run.rows else None
    return {"run": run.name, "seed": run.cfg.seed, "process": job.index, "step": step,
            "train_steps": run.cfg.train_steps, "final_loss": loss, "preview_mse": preview_mse}


def _train_share(cfgs, dirs, names, resume, progress, stop_at, log, devices, job):
    runs = [_load_run(c, d, n, resume, log) for c, d, n in zip(cfgs, dirs, names)]
    groups: dict = defaultdict(list)
    for r in runs:
        groups[(group_key(r.cfg), r.start)].append(r)
    states, results, interrupted = [], {}, False
    for (_, start), group in groups.items():  # in order of first appearance: deterministic
        if start >= group[0].cfg.train_steps:  # finished: report it (the preview redrawn: a kill may
            for r in group:  # have come before it, and its MSE goes in the summary)
                target = load_target(r.cfg.target, r.cfg.target_size, r.cfg.target_padding, r.cfg.target_background)
                mse = save_preview(r.dir / ckpt.PREVIEW, r.cfg, r.state.params, target)
                results[r.name] = _result(r, job, start, mse)
            states.append(stack_states([r.state for r in group]))
            continue
        if interrupted:  # Ctrl-C stops the groups not started yet too
            for r in group:
                results[r.name] = _result(r, job, start, None)
            continue
        stacked, group_results, interrupted = _train_group(group, progress, stop_at, log, devices, job)
        states.append(stacked)
        results.update(group_results)
    if interrupted:
        log("interrupted; checkpoints saved. Continue with --resume on the output folder")
    return states, [results[n] for n in names]


@lru_cache(maxsize=8)
def _population_step(cfg: Config, mesh, per_model: bool):
    """One compiled program per step-relevant config and mesh (the ``Hyper`` fields are
    arguments): a resumed population, or a second group of a sweep with the same key, reuses it."""
    return population_train_step(cfg, mesh, per_model_target=per_model, per_model_hyper=True)


def _train_group(runs: list[_Run], progress, stop_at, log, devices, job):
    cfg, k = runs[0].cfg, len(runs)
    check_fits(training_bytes(cfg, k), f"training {k} models on a {cfg.grid_size}x{cfg.grid_size} grid",
               "train fewer seeds at once, or lower pool_size, batch_size, target_size or rollout_max")
    targets_np = [load_target(r.cfg.target, r.cfg.target_size, r.cfg.target_padding, r.cfg.target_background)
                  for r in runs]
    per_model = len({(r.cfg.target, r.cfg.target_background) for r in runs}) > 1
    devices = jax.local_devices() if devices is None else list(devices)
    mesh = make_mesh(devices[:min(k, len(devices))])
    step_fn = _population_step(replace(without_hyper(cfg), **_NOT_IN_STEP), mesh, per_model)
    hyper = shard_population(pad_population(stack_states([hyper_of(r.cfg) for r in runs]), mesh.devices.size), mesh)
    if per_model:
        target = shard_population(pad_population(jnp.stack([jnp.asarray(t) for t in targets_np]),
                                                 mesh.devices.size), mesh)
    else:
        target = jax.device_put(jnp.asarray(targets_np[0]), NamedSharding(mesh, P()))
    stacked = stack_states([r.state for r in runs])
    for r in runs:
        r.state = None  # the stacked copy is the one trained: no second pool in memory
    states = shard_population(pad_population(stacked, mesh.devices.size), mesh)  # [K + copies, ...]
    del stacked
    start = runs[0].start
    config_written = not runs[0].fresh
    where = runs[0].dir.parent

    def step():
        nonlocal states
        states, losses = step_fn(states, target, hyper)
        return losses

    def record(s, losses, elapsed):
        for i, r in enumerate(runs):
            r.rows.append(metric_row(r.cfg, s, float(losses[i]), r.elapsed + elapsed))
        return f"loss={losses[:k].mean():.4g}"

    def nonfinite(s, losses):
        bad = [runs[i].name for i in range(k) if not math.isfinite(losses[i])]
        return f"loss became non-finite at step {s} for {', '.join(bad)}"

    def save(s, elapsed):
        nonlocal config_written
        for i, r in enumerate(runs):
            ckpt.save_checkpoint(r.dir / ckpt.CHECKPOINT,
                                 {"train": unstack_state(states, i), "elapsed": np.float64(r.elapsed + elapsed)})
            _write_metrics(r.dir / ckpt.METRICS, r.rows)
        if not config_written:  # last: a folder with a config.json always holds a usable run
            for r in runs:
                save_config(r.cfg, r.dir / ckpt.CONFIG)
            config_written = True

    def save_kept(s):
        for i, r in enumerate(runs):
            ckpt.save_kept(r.dir, s, unstack_state(states, i).params)

    end = cfg.train_steps if stop_at is None else max(start, min(stop_at, cfg.train_steps))
    spec = LoopSpec(start=start, end=end, total=cfg.train_steps, checkpoint_every=cfg.checkpoint_every,
                    keep=frozenset(ckpt.kept_steps(cfg.keep_checkpoints, cfg.train_steps)), where=where,
                    save_at_start=runs[0].fresh, progress=progress,
                    desc=f"train {k} models" + (f" (process {job.index})" if job.distributed else ""))
    # the padding copies repeat a real run: checking them adds nothing, and they are finite iff it is
    result = drive(spec, step=step, record=record, save=save, save_kept=save_kept,
                   params_finite=lambda: all_finite(states.params), nonfinite_loss=nonfinite)
    stacked = jax.tree.map(lambda x: x[:k], states)
    results = {}
    for i, r in enumerate(runs):
        mse = None
        if not result.interrupted and end == cfg.train_steps:
            mse = save_preview(r.dir / ckpt.PREVIEW, r.cfg, unstack_state(stacked, i).params, targets_np[i])
            log(f"{r.name}: preview in {r.dir / ckpt.PREVIEW} (MSE {mse:.4f} to the target)")
        results[r.name] = _result(r, job, result.step, mse)
    return stacked, results, result.interrupted

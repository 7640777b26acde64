"""Training: the three experiments of the article (growing, persistent, regenerating).

Functional core: ``init_train_state``, ``train_step`` (pure, jitted once per config).
Imperative shell: ``train`` runs the loop, shows progress, writes the run directory.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from functools import lru_cache, partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import checkpoint as ckpt
from .config import Config, load_config, save_config
from .damage import circle_masks  # the training damage (also importable from here, as before)
from .errors import NCAError, check_fits, out_of_memory_as_error
from .losses import l2_losses, per_sample_losses
from .loop import LoopSpec, StopFlag, all_finite, drive, training_ui
from .model import fire_masks, init_params, jit_rollout, rollout, seed_state, step_key, to_rgba
from .targets import load_target

Array = jax.Array


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree; saved whole in checkpoints).

    params: model parameters; opt_state: optax state; pool: [pool_size, H, W, C] (a
    placeholder [1, H, W, C] in the growing experiment); key: the run's base PRNG key
    (step t uses ``fold_in(key, t)``, so a resumed run draws the same numbers); step: int32.
    """

    params: dict
    opt_state: optax.OptState
    pool: Array
    key: Array
    step: Array


# --------------------------------------------------------------------------- pure core


def normalise_gradients(eps: float = 1e-8) -> optax.GradientTransformation:
    """The article's per-variable normalisation ``g / (|g| + eps)`` (every leaf gets norm ~1)."""
    return optax.stateless(lambda g, _: jax.tree.map(lambda v: v / (jnp.linalg.norm(v) + eps), g))


class Hyper(NamedTuple):
    """The hyperparameters that change no shape, as traced values: runs that differ only in
    them (and the seed and target) train as one vmapped program (``nca.multiseed.group_key``).
    Each field a float32 scalar, or [K] for K stacked runs. ``hyper_of`` builds one."""

    lr: Array
    lr_decay_factor: Array
    fire_rate: Array


def hyper_of(cfg: Config) -> Hyper:
    """``cfg``'s shape-free hyperparameters as float32 scalars."""
    return Hyper(*(jnp.float32(v) for v in (cfg.lr, cfg.lr_decay_factor, cfg.model.fire_rate)))


def without_hyper(cfg: Config) -> Config:
    """``cfg`` with the ``Hyper`` fields set to the defaults: the compiled program of a step
    that takes them as arguments depends on the rest only."""
    d = Config()
    return replace(cfg, lr=d.lr, lr_decay_factor=d.lr_decay_factor,
                   model=replace(cfg.model, fire_rate=d.model.fire_rate))


def make_optimizer(cfg: Config, hyper: Hyper | None = None) -> optax.GradientTransformation:
    """Per-variable gradient normalisation, then Adam with the article's piecewise-constant
    learning rate (lr, then lr*factor after ``lr_decay_step``). hyper: lr and factor as
    traced values instead of ``cfg``'s (the optimiser state is the same either way)."""
    lr, factor = (cfg.lr, cfg.lr_decay_factor) if hyper is None else (hyper.lr, hyper.lr_decay_factor)

    def schedule(count):  # optax.piecewise_constant_schedule's arithmetic, which refuses a traced factor
        indicator = jnp.maximum(0.0, jnp.sign(cfg.lr_decay_step - count))
        return lr * indicator + (1 - indicator) * factor * lr

    return optax.chain(normalise_gradients(cfg.grad_norm_eps), optax.adam(schedule))


def learning_rate(cfg: Config, step: int) -> float:
    return cfg.lr * (cfg.lr_decay_factor if step > cfg.lr_decay_step else 1.0)


per_sample_loss = l2_losses  # the article's loss, per sample: x [B, H, W, C], target [H, W, 4] -> [B]


def init_train_state(cfg: Config) -> TrainState:
    key = jax.random.key(cfg.seed)
    k_init, k_train = jax.random.split(key)
    params = init_params(k_init, cfg.model)
    g = cfg.grid_size
    # Built by one compiled call: eager broadcast-then-copy held the 340 MB pool twice.
    pool = jax.jit(seed_state, static_argnums=(0, 1, 2, 3))(g, g, cfg.model, cfg.pool_size if cfg.uses_pool else 1)
    return TrainState(params, make_optimizer(cfg).init(params), pool, k_train, jnp.zeros((), jnp.int32))


def sample_batch(cfg: Config, pool: Array, target: Array, key: Array) -> tuple[Array, Array]:
    """The article's pool step: sample, sort by loss (worst first), reseed the worst,
    damage the best ``damage_n`` (regenerating). -> (indices [B], batch [B, H, W, C])."""
    g = cfg.grid_size
    seed = seed_state(g, g, cfg.model)
    if not cfg.uses_pool:
        return jnp.zeros((cfg.batch_size,), jnp.int32), jnp.broadcast_to(seed, (cfg.batch_size,) + seed.shape)
    k_idx, k_dmg = jax.random.split(key)
    idx = jax.random.choice(k_idx, cfg.pool_size, (cfg.batch_size,), replace=False)
    batch = pool[idx]
    order = jnp.argsort(-per_sample_losses(cfg.loss, batch, target))
    idx, batch = idx[order], batch[order]
    batch = batch.at[0].set(seed)
    n = cfg.damaged_per_batch
    if n:
        keep = 1.0 - circle_masks(k_dmg, n, g, g)[..., None]
        batch = batch.at[-n:].multiply(keep)
    return idx, batch


def default_fast() -> bool:
    """Whether training uses ``nca.model.fast_step``: on CPU yes (it skips the MLP where
    it cannot matter, several times faster); on GPU/TPU the dense reference step wins."""
    return jax.default_backend() == "cpu"


def train_step(cfg: Config, state: TrainState, target: Array, fast: bool | None = None,
               batch_sharding=None, hyper: Hyper | None = None, split=None) -> tuple[TrainState, Array]:
    """One optimisation step (pure). target: [H, W, 4]. Returns (new state, loss).

    fast: roll out with ``fast_step`` (equal to the reference step to float rounding);
    None = ``default_fast()``. batch_sharding: optional ``jax.sharding.Sharding`` for the
    sampled batch [B, H, W, C] (data parallelism, see ``nca.parallel``). hyper: lr, its
    decay factor and the fire rate as traced scalars (``Hyper``) instead of ``cfg``'s.
    split: how to take the rollout loss's value and gradient over the batch, as
    ``nca.parallel.split_value_and_grad(mesh)`` does (each device its rows, its own fast-path
    loops); None = one ``jax.value_and_grad`` of the whole batch. Equal to float rounding.
    """
    fast = default_fast() if fast is None else fast
    key = step_key(state.key, state.step)
    k_batch, k_len, k_roll = jax.random.split(key, 3)
    idx, x0 = sample_batch(cfg, state.pool, target, k_batch)
    if batch_sharding is not None:
        x0 = jax.lax.with_sharding_constraint(x0, batch_sharding)
    n_steps = jax.random.randint(k_len, (), cfg.rollout_min, cfg.rollout_max)
    steps = cfg.rollout_max - 1

    def loss_fn(params, x0, fires, k_roll, n_steps, target):
        x, _ = rollout(params, x0, k_roll, steps, cfg.model, record=(), remat=cfg.remat, active_steps=n_steps,
                       fast=fast, fire_rate=None if hyper is None else hyper.fire_rate, fires=fires)
        return jnp.mean(per_sample_losses(cfg.loss, x, target)), x

    if split is None:
        (loss, x), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, x0, None, k_roll, n_steps, target)
    else:  # the whole batch's masks, so that each device's rows see the masks they would see unsplit
        rate = cfg.model.fire_rate if hyper is None else hyper.fire_rate
        fires = fire_masks(k_roll, jnp.arange(steps, dtype=jnp.int32), x0.shape, rate)
        (loss, x), grads = split(loss_fn, state.params, x0, fires, (k_roll, n_steps, target))
    updates, opt_state = make_optimizer(cfg, hyper).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    pool = state.pool.at[idx].set(x) if cfg.uses_pool else state.pool
    return TrainState(params, opt_state, pool, state.key, state.step + 1), loss


# The split step draws a training step's fire masks for all its CA steps at once (each device
# its rows; the generator's temporaries are ~12 bytes a cell-step): up to 64 Mi cell-steps per
# device, ~0.8 GB. The canonical step needs 95 x 4 x 72 x 72 = 2 Mi; a 1024 x 1024 grid 380 Mi.
SPLIT_FIRE_CELLS = 1 << 26


def cores_mesh(cfg: Config):
    """Where ``train`` splits each batch: a mesh over the CPU cores exposed as devices
    (``nca.parallel.use_cpu_cores``, which ``scripts/train.py`` calls), or None to train on
    one device. Only for the fast step on a CPU in a single process; the most devices that
    divide the batch and the pool. The split step is ~1.3x faster on 2 cores and equal to
    one device's step to float rounding (docs/performance.md, tests/test_parallel.py). None
    too where a device's share of the step's fire masks, drawn at once for the split, would
    exceed ``SPLIT_FIRE_CELLS`` cell-steps: one device draws them in blocks instead."""
    devices = jax.local_devices()
    if not default_fast() or jax.process_count() > 1 or len(devices) < 2:
        return None
    n = max(d for d in range(1, len(devices) + 1)
            if cfg.batch_size % d == 0 and (not cfg.uses_pool or cfg.pool_size % d == 0))
    if n < 2 or (cfg.rollout_max - 1) * cfg.batch_size // n * cfg.grid_size ** 2 > SPLIT_FIRE_CELLS:
        return None
    from .parallel import make_mesh  # (nca.parallel builds on this module)

    return make_mesh(devices[:n])


# Config fields the step never reads (the seed lives in the state's key, the target is an
# argument): set to one value before compiling, so runs differing only in them share a program.
_NOT_IN_STEP = dict(train_steps=1, checkpoint_every=1, keep_checkpoints="none", seed=0, target="")


def step_config(cfg: Config) -> Config:
    """``cfg`` with the fields a training step never reads (length, checkpoints, seed, target
    name) set to fixed values: runs that differ only in them share one compiled step."""
    return replace(cfg, **_NOT_IN_STEP)


def compiled_train_step(cfg: Config, fast: bool | None = None):
    """``train_step`` jitted with the config static and the state donated. One program per
    step-relevant config: a resumed, extended or reseeded run in the same process reuses it."""
    return _compiled_train_step(step_config(cfg), fast)


@lru_cache(maxsize=8)
def _compiled_train_step(cfg: Config, fast: bool | None):
    return jax.jit(partial(train_step, cfg, fast=fast), donate_argnums=(0,))


# --------------------------------------------------------------------------- imperative shell


METRIC_FIELDS = ("step", "loss", "lr", "elapsed_s")


def _read_metrics(path: Path, upto_step: int) -> list[dict]:
    """The rows of a run's ``metrics.csv`` up to ``upto_step`` (a resumed run rewrites the
    file from them). An unreadable file is an NCAError, never silently dropped."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and set(METRIC_FIELDS) - set(rows[0]):
            raise ValueError(f"columns {sorted(rows[0])}, expected {', '.join(METRIC_FIELDS)}")
        return [r for r in rows if int(r["step"]) <= upto_step]
    except (OSError, ValueError, TypeError, csv.Error, UnicodeDecodeError) as e:
        raise NCAError(f"cannot read {path} ({e}); move it aside to resume without the earlier rows") from None


def _write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, METRIC_FIELDS)
    w.writeheader()
    w.writerows(rows)
    ckpt.atomic_write_bytes(path, buf.getvalue().encode())


def save_preview(path: Path, cfg: Config, params: dict, target: np.ndarray, steps: int | None = None) -> float:
    """Grow from the seed and save [target | grown] on white, 4x. Returns the grown MSE."""
    from PIL import Image

    g = cfg.grid_size
    steps = steps or cfg.rollout_max
    # one program per (steps, model config), kept across the run's checkpoints (nca.model.jit_rollout)
    x, _ = jit_rollout(params, seed_state(g, g, cfg.model), jax.random.key(cfg.seed), steps, cfg.model, record=())
    grown = np.asarray(to_rgba(x))
    mse = float(np.mean((grown - target) ** 2))

    def on_white(rgba):
        return np.clip(rgba[..., :3] + 1.0 - rgba[..., 3:4], 0, 1)

    pic = np.concatenate([on_white(target), np.ones((g, 2, 3)), on_white(grown)], axis=1)
    img = Image.fromarray((pic * 255).round().astype(np.uint8)).resize((pic.shape[1] * 4, g * 4), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    ckpt.atomic_write_bytes(Path(path), buf.getvalue())
    return mse


# The loop's shell lives in nca.loop (one driver for every trainer); these names stay
# importable from here for older code.
_all_finite = all_finite
_StopFlag = StopFlag
_training_ui = training_ui


def metric_row(cfg: Config, step: int, loss: float, elapsed: float) -> dict:
    """One ``metrics.csv`` row (the columns of ``METRIC_FIELDS``)."""
    return {"step": step, "loss": f"{loss:.6g}", "lr": f"{learning_rate(cfg, step):.3g}",
            "elapsed_s": f"{elapsed:.2f}"}


RUN_FILES = (ckpt.CONFIG, ckpt.CHECKPOINT, ckpt.METRICS, ckpt.PREVIEW, ckpt.KEPT_DIR, ckpt.LOCK)


def clean_run_dir(out_dir: Path) -> None:
    """Remove temporary files that a killed write left in a run folder (hold its claim)."""
    ckpt.clean_stale_temps(out_dir, RUN_FILES[:4])
    ckpt.clean_stale_temps(Path(out_dir) / ckpt.KEPT_DIR, ("step_*.msgpack",))


def check_new_run_dir(out_dir: Path) -> None:
    """Refuse (NCAError) to start a new run in ``out_dir`` if it holds a run (its
    ``config.json``, written last when a run starts) or anything that is not ours.

    Our files without a ``config.json`` are what a run killed in its first moments leaves
    (a lock, a step-0 checkpoint, temporary files): nothing was trained, so a new run
    takes the folder over (its leftover kept checkpoints are removed).
    """
    out_dir = Path(out_dir)
    if (out_dir / ckpt.CONFIG).exists():
        raise NCAError(f"{out_dir} already holds a run; resume it or choose another output folder "
                       "(nothing was overwritten)")
    ours = set(RUN_FILES)
    others = sorted(p.name for p in out_dir.iterdir()
                    if p.name not in ours and not (p.name.startswith(".") and p.name.endswith(ckpt.TEMP_SUFFIX)))
    kept = out_dir / ckpt.KEPT_DIR
    if kept.is_dir():
        others += [f"{ckpt.KEPT_DIR}/{p.name}" for p in kept.iterdir() if not p.name.startswith("step_")]
    elif kept.exists():
        others.append(ckpt.KEPT_DIR)
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise NCAError(f"{out_dir} holds files that are not a training run ({shown}); choose a new or "
                       "empty output folder (nothing was overwritten)")
    for _, p in ckpt.list_kept(out_dir):  # a killed start's leftovers: ours, never trained on
        p.unlink()


def train(cfg: Config | None, out_dir: Path, resume: bool = False, progress: bool = True,
          stop_at: int | None = None, log=print) -> TrainState:
    """Train into ``out_dir`` (a run directory), or continue it with ``resume=True``.

    New run: ``out_dir`` must be new, empty, or an unstarted run (``check_new_run_dir``).
    Resume: the saved ``config.json`` is used; ``cfg`` may only change ``train_steps``
    (to extend or shorten the run; NCAError for any other difference). A folder whose run
    was killed before its first checkpoint restarts from step 0 with its saved config.
    The folder is claimed for the whole run (``nca.checkpoint.claim_run_dir``): a second
    run into it fails at once. stop_at: stop (and checkpoint) after this step, as an
    interruption would -- for tests and for chunked runs. Returns the final TrainState.
    """
    out_dir = Path(out_dir)
    if stop_at is not None and stop_at < 0:
        raise NCAError(f"stop_at must be >= 0, got {stop_at}")
    if not resume and cfg is None:
        raise NCAError("a new run needs a Config")
    if not resume:  # before the folder is made: refused with nothing written
        check_fits(training_bytes(cfg), f"training on a {cfg.grid_size}x{cfg.grid_size} grid",
                   "lower pool_size, batch_size, target_size or rollout_max")
        load_target(cfg.target, cfg.target_size, cfg.target_padding, cfg.target_background)  # a bad target: no folder either
    if resume and not out_dir.is_dir():
        raise NCAError(f"no config.json in {out_dir}: there is no run directory to resume")
    with ckpt.claim_run_dir(out_dir):
        clean_run_dir(out_dir)
        if resume:
            cfg = _resumed_config(out_dir, cfg)
        else:
            check_new_run_dir(out_dir)
        with out_of_memory_as_error(f"training a pool of {cfg.pool_size if cfg.uses_pool else 1} "
                                    f"{cfg.grid_size}x{cfg.grid_size}x{cfg.model.channels} states",
                                    "lower pool_size, batch_size, target_size or rollout_max"):
            return _train_claimed(cfg, out_dir, resume, progress, stop_at, log)


def _resumed_config(out_dir: Path, cfg: Config | None) -> Config:
    if not (out_dir / ckpt.CONFIG).exists():
        seeds = sorted(p.name for p in out_dir.glob("seed_*") if (p / ckpt.CONFIG).exists())
        if seeds:
            raise NCAError(f"{out_dir} holds one run per seed ({', '.join(seeds[:3])}{', ...' if len(seeds) > 3 else ''}); "
                           f"resume each seed's folder on its own, e.g. {out_dir / seeds[0]}")
        raise NCAError(f"no config.json in {out_dir}: it holds no run to resume (a run killed "
                       "before writing its config leaves such a folder; start a new run into it)")
    saved = load_config(out_dir / ckpt.CONFIG)
    if cfg is None:
        return saved
    changed = sorted(k for k, v in _flat(cfg).items() if _flat(saved)[k] != v and k != "train_steps")
    if changed:
        raise NCAError(f"a resumed run keeps its saved config; only train_steps may change, but "
                       f"{', '.join(changed)} differ from {out_dir / ckpt.CONFIG}")
    return Config.from_dict({**saved.to_dict(), "train_steps": cfg.train_steps})


def _flat(cfg: Config) -> dict:
    d = cfg.to_dict()
    return {**{k: v for k, v in d.items() if k != "model"}, **{f"model.{k}": v for k, v in d["model"].items()}}


def training_bytes(cfg: Config, seeds: int = 1) -> int:
    """A lower estimate of the memory a run needs: the pool (and its host copy while a
    checkpoint is written), and the batch's states kept for the backward pass (one per
    rollout step with remat) plus one step's hidden activations."""
    cell = cfg.grid_size ** 2 * 4  # bytes of one float32 channel of one state
    pool = (cfg.pool_size if cfg.uses_pool else 1) * cfg.model.channels * cell
    steps = cfg.rollout_max if cfg.remat else cfg.rollout_max * (3 + 3 * cfg.model.channels // 16 + 4)
    batch = cfg.batch_size * cell * (cfg.model.channels * steps + 3 * cfg.model.hidden)
    return seeds * (2 * pool + batch)


def _train_claimed(cfg: Config, out_dir: Path, resume: bool, progress: bool, stop_at, log) -> TrainState:
    check_fits(training_bytes(cfg), f"training on a {cfg.grid_size}x{cfg.grid_size} grid",
               "lower pool_size, batch_size, target_size or rollout_max")
    ckpt_path = out_dir / ckpt.CHECKPOINT
    target_np = load_target(cfg.target, cfg.target_size, cfg.target_padding, cfg.target_background)
    target = jnp.asarray(target_np)

    saved_elapsed = 0.0  # training seconds before this call
    fresh = not resume or not ckpt_path.exists()  # resumed before its first checkpoint: start over
    if not fresh:  # the template is only shapes: no second pool in memory while loading
        template = {"train": jax.eval_shape(partial(init_train_state, cfg)), "elapsed": np.float64(0)}
        saved_state = ckpt.load_checkpoint(ckpt_path, template)
        state, saved_elapsed = saved_state["train"], float(saved_state["elapsed"])
    else:
        if resume:
            log(f"{out_dir} was stopped before its first checkpoint: starting it from step 0")
        state = init_train_state(cfg)
    start = int(state.step)
    if cfg.train_steps < start:
        raise NCAError(f"the run in {out_dir} is already at step {start}, past train_steps={cfg.train_steps}")
    if resume and not fresh:
        save_config(cfg, out_dir / ckpt.CONFIG)  # train_steps may have changed
    rows = _read_metrics(out_dir / ckpt.METRICS, start)
    end = cfg.train_steps if stop_at is None else max(start, min(stop_at, cfg.train_steps))
    mesh = cores_mesh(cfg)
    if mesh is None:
        step_fn = compiled_train_step(cfg)
    else:  # the batch split over the CPU cores, each running its rows' fast step (nca.parallel)
        from .parallel import shard_train_state, sharded_train_step

        step_fn, state = sharded_train_step(cfg, mesh, fast=True), shard_train_state(cfg, state, mesh)

    def step():
        nonlocal state
        state, loss = step_fn(state, target)
        return loss

    def record(s, losses, elapsed):
        rows.append(metric_row(cfg, s, float(losses[0]), elapsed))
        return f"loss={float(losses[0]):.4g}"

    config_written = not fresh

    def save(s, elapsed):
        nonlocal config_written
        ckpt.save_checkpoint(ckpt_path, {"train": state, "elapsed": np.float64(elapsed)})
        _write_metrics(out_dir / ckpt.METRICS, rows)
        if not config_written:  # last: a folder with a config.json always holds a usable run
            save_config(cfg, out_dir / ckpt.CONFIG)
            config_written = True

    spec = LoopSpec(start=start, end=end, total=cfg.train_steps, checkpoint_every=cfg.checkpoint_every,
                    keep=frozenset(ckpt.kept_steps(cfg.keep_checkpoints, cfg.train_steps)), where=out_dir,
                    save_at_start=fresh, progress=progress, desc="train", elapsed=saved_elapsed)
    result = drive(spec, step=step, record=record, save=save,
                   save_kept=lambda s: ckpt.save_kept(out_dir, s, state.params),
                   params_finite=lambda: all_finite(state.params))
    if mesh is not None:  # back on one device: later programs on the params run once, not once per core
        state = jax.device_put(state, jax.local_devices()[0])
    if result.interrupted or end < cfg.train_steps:
        if result.interrupted:
            log(f"interrupted at step {result.step}; checkpoint saved; resume the run in {out_dir} to continue")
        return state
    mse = save_preview(out_dir / ckpt.PREVIEW, cfg, state.params, target_np)
    log(f"step {int(state.step)}: preview in {out_dir / ckpt.PREVIEW} "
        f"(grown {cfg.rollout_max} steps from the seed, MSE {mse:.4f} to the target)")
    return state

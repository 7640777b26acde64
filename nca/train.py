"""Training: the three experiments of the article (growing, persistent, regenerating).

Functional core: ``init_train_state``, ``train_step`` (pure, jitted once per config).
Imperative shell: ``train`` runs the loop, shows progress, writes the run directory.
"""

from __future__ import annotations

import csv
import io
import math
import signal
import time
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import checkpoint as ckpt
from .config import Config, load_config, save_config
from .errors import NCAError
from .model import init_params, rollout, seed_state, step_key, to_rgba
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


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    """Per-variable gradient normalisation, then Adam with the article's piecewise-constant
    learning rate (lr, then lr*factor after ``lr_decay_step``)."""
    schedule = optax.piecewise_constant_schedule(cfg.lr, {cfg.lr_decay_step: cfg.lr_decay_factor})
    return optax.chain(normalise_gradients(cfg.grad_norm_eps), optax.adam(schedule))


def learning_rate(cfg: Config, step: int) -> float:
    return cfg.lr * (cfg.lr_decay_factor if step > cfg.lr_decay_step else 1.0)


def per_sample_loss(x: Array, target: Array) -> Array:
    """MSE of RGBA against the target, per sample. x: [B, H, W, C], target: [H, W, 4] -> [B]."""
    return jnp.mean(jnp.square(x[..., :4] - target), axis=(-3, -2, -1))


def circle_masks(key: Array, n: int, height: int, width: int) -> Array:
    """The article's ``make_circle_masks``: n discs, 1 inside. -> [n, H, W] float32.

    Grid coordinates run over [-1, 1]; centres U(-0.5, 0.5), radii U(0.1, 0.4).
    """
    kc, kr = jax.random.split(key)
    x = jnp.linspace(-1.0, 1.0, width)[None, None, :]
    y = jnp.linspace(-1.0, 1.0, height)[None, :, None]
    centre = jax.random.uniform(kc, (2, n, 1, 1), minval=-0.5, maxval=0.5)
    r = jax.random.uniform(kr, (n, 1, 1), minval=0.1, maxval=0.4)
    x, y = (x - centre[0]) / r, (y - centre[1]) / r
    return (x * x + y * y < 1.0).astype(jnp.float32)


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
    order = jnp.argsort(-per_sample_loss(batch, target))
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
               batch_sharding=None) -> tuple[TrainState, Array]:
    """One optimisation step (pure). target: [H, W, 4]. Returns (new state, loss).

    fast: roll out with ``fast_step`` (equal to the reference step to float rounding);
    None = ``default_fast()``. batch_sharding: optional ``jax.sharding.Sharding`` for the
    sampled batch [B, H, W, C] (data parallelism, see ``nca.parallel``).
    """
    fast = default_fast() if fast is None else fast
    key = step_key(state.key, state.step)
    k_batch, k_len, k_roll = jax.random.split(key, 3)
    idx, x0 = sample_batch(cfg, state.pool, target, k_batch)
    if batch_sharding is not None:
        x0 = jax.lax.with_sharding_constraint(x0, batch_sharding)
    n_steps = jax.random.randint(k_len, (), cfg.rollout_min, cfg.rollout_max)

    def loss_fn(params):
        x, _ = rollout(params, x0, k_roll, cfg.rollout_max - 1, cfg.model, record=(),
                       remat=cfg.remat, active_steps=n_steps, fast=fast)
        return jnp.mean(per_sample_loss(x, target)), x

    (loss, x), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = make_optimizer(cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    pool = state.pool.at[idx].set(x) if cfg.uses_pool else state.pool
    return TrainState(params, opt_state, pool, state.key, state.step + 1), loss


def compiled_train_step(cfg: Config, fast: bool | None = None):
    """``train_step`` jitted with the config static and the state donated."""
    return jax.jit(partial(train_step, cfg, fast=fast), donate_argnums=(0,))


# --------------------------------------------------------------------------- imperative shell


METRIC_FIELDS = ("step", "loss", "lr", "elapsed_s")


def _read_metrics(path: Path, upto_step: int) -> list[dict]:
    if not path.is_file():
        return []
    rows = list(csv.DictReader(path.open()))
    return [r for r in rows if int(r["step"]) <= upto_step]


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
    x, _ = jax.jit(partial(rollout, steps=steps, cfg=cfg.model, record=()))(
        params, seed_state(g, g, cfg.model), jax.random.key(cfg.seed)
    )
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


@jax.jit
def _all_finite(tree) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(tree)]))


class _StopFlag:
    """SIGINT sets a flag; the loop checks it between steps, so a step is never torn."""

    def __init__(self):
        self.stop = False

    def __enter__(self):
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, *_):
        if self.stop:  # second Ctrl-C: give up immediately
            raise KeyboardInterrupt
        self.stop = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self._old)


@contextmanager
def _training_ui(progress: bool, total: int, initial: int, desc: str):
    """The imperative shell of a training loop: a tqdm bar (or None) and a ``_StopFlag``,
    both torn down however the loop ends. Yields ``(bar, flag)``."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)
    with _StopFlag() as flag:
        try:
            yield bar, flag
        finally:
            if bar is not None:
                bar.close()


def metric_row(cfg: Config, step: int, loss: float, elapsed: float) -> dict:
    """One ``metrics.csv`` row (the columns of ``METRIC_FIELDS``)."""
    return {"step": step, "loss": f"{loss:.6g}", "lr": f"{learning_rate(cfg, step):.3g}",
            "elapsed_s": f"{elapsed:.2f}"}


def train(cfg: Config | None, out_dir: Path, resume: bool = False, progress: bool = True,
          stop_at: int | None = None, log=print) -> TrainState:
    """Train into ``out_dir`` (a run directory), or continue it with ``resume=True``.

    stop_at: stop (and checkpoint) after this step, as an interruption would -- for tests
    and for chunked runs. Returns the final TrainState.
    """
    out_dir = Path(out_dir)
    ckpt_path = out_dir / ckpt.CHECKPOINT
    if resume:
        saved = load_config(out_dir / ckpt.CONFIG)
        if cfg is not None and cfg.train_steps != saved.train_steps:
            saved = Config.from_dict({**saved.to_dict(), "train_steps": cfg.train_steps})
        cfg = saved
    elif ckpt_path.exists() or (out_dir / ckpt.CONFIG).exists():
        raise NCAError(f"{out_dir} already holds a run; continue it with --resume {out_dir} "
                       "or choose another --out (nothing was overwritten)")
    target_np = load_target(cfg.target, cfg.target_size, cfg.target_padding)
    target = jnp.asarray(target_np)

    elapsed = 0.0
    if resume:  # the template is only shapes: no second pool in memory while loading
        template = {"train": jax.eval_shape(partial(init_train_state, cfg)), "elapsed": np.float64(0)}
        saved_state = ckpt.load_checkpoint(ckpt_path, template)
        state, elapsed = saved_state["train"], float(saved_state["elapsed"])
    else:
        state = init_train_state(cfg)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / ckpt.CONFIG)
    start = int(state.step)
    rows = _read_metrics(out_dir / ckpt.METRICS, start)
    end = cfg.train_steps if stop_at is None else min(stop_at, cfg.train_steps)

    def save(state, elapsed):
        # A finite loss can still come with a non-finite update: never checkpoint one.
        if not bool(_all_finite(state.params)):
            raise NCAError(f"parameters became non-finite by step {int(state.step)}; the last good "
                           f"checkpoint is kept in {out_dir}; try a lower --lr")
        ckpt.save_checkpoint(ckpt_path, {"train": state, "elapsed": np.float64(elapsed)})
        _write_metrics(out_dir / ckpt.METRICS, rows)

    if not resume:
        save(state, elapsed)  # step 0: a new run directory is loadable (and resumable) at once

    keep = set(ckpt.kept_steps(cfg.keep_checkpoints, cfg.train_steps))
    if not resume and 0 in keep:
        ckpt.save_kept(out_dir, 0, state.params)
    step_fn = compiled_train_step(cfg)
    bar = None  # set by _training_ui below; drain() reports to it
    pending = None  # (step, loss array): read one step late so the host never stalls the device
    t_last = time.perf_counter()
    interrupted = False

    def drain(pending):
        nonlocal elapsed, t_last
        s, loss_arr = pending
        loss = float(loss_arr)
        now = time.perf_counter()
        elapsed += now - t_last
        t_last = now
        if not math.isfinite(loss):
            raise NCAError(f"loss became {loss} at step {s}; the last good checkpoint "
                           f"(step {rows[-1]['step'] if rows else 0} or earlier) is kept in {out_dir}; "
                           "try a lower --lr")
        rows.append(metric_row(cfg, s, loss, elapsed))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4g}")

    with _training_ui(progress, cfg.train_steps, start, "train") as (bar, flag):
        done = start  # counted on the host: reading state.step would wait for the device
        while done < end:
            state, loss = step_fn(state, target)
            done += 1
            if pending is not None:
                drain(pending)
            pending = (done, loss)
            if done in keep:  # params along training, for training-dynamics analyses
                ckpt.save_kept(out_dir, done, state.params)
            if done % cfg.checkpoint_every == 0 or done == end or flag.stop:
                drain(pending)
                pending = None
                save(state, elapsed)
            if flag.stop:
                interrupted = True
                break
    if interrupted:
        log(f"interrupted at step {int(state.step)}; checkpoint saved. Continue with: "
            f"python scripts/train.py --resume {out_dir}")
        return state
    mse = save_preview(out_dir / ckpt.PREVIEW, cfg, state.params, target_np)
    log(f"step {int(state.step)}: preview in {out_dir / ckpt.PREVIEW} "
        f"(grown {cfg.rollout_max} steps from the seed, MSE {mse:.4f} to the target)")
    return state

"""One training-loop driver for every trainer: progress bar, Ctrl-C, finite checks,
checkpoint cadence, kept checkpoints and the training time.

A trainer (``nca.train.train``, ``nca.multiseed.train_seeds``, or any other) keeps its
own state and passes small functions; ``drive`` runs them in the right order::

    def step():                       # one optimisation step; returns the loss(es) on device
        nonlocal state
        state, loss = step_fn(state, target)
        return loss

    def record(s, losses, elapsed):   # step s's losses (NumPy), the training seconds so far
        rows.append(metric_row(cfg, s, float(losses[0]), elapsed))
        return f"loss={losses[0]:.4g}"  # the bar's postfix

    def save(s, elapsed):             # the full checkpoint after step s
        ckpt.save_checkpoint(path, {"train": state, "elapsed": np.float64(elapsed)})

    result = drive(LoopSpec(start=start, end=cfg.train_steps, total=cfg.train_steps,
                            checkpoint_every=cfg.checkpoint_every,
                            keep=frozenset(ckpt.kept_steps(cfg.keep_checkpoints, cfg.train_steps)),
                            where=out_dir, elapsed=saved_elapsed),
                   step=step, record=record, save=save, save_kept=save_kept,
                   params_finite=lambda: all_finite(state.params))

What the driver guarantees (tested in tests/test_loop.py, tests/test_train.py and
tests/test_faults.py):

- a step's loss is read one step late, so the host never stalls the device between steps;
- a non-finite loss, or non-finite parameters at a checkpoint or kept step, stops the run
  with one NCAError naming the step and the last checkpoint written with finite
  parameters (no checkpoint, kept or not, is ever written with non-finite parameters);
- the full checkpoint is saved every ``checkpoint_every`` steps, at ``end`` and when
  Ctrl-C is pressed (checked between steps, so a step is never torn; a second Ctrl-C
  gives up at once); kept checkpoints (``save_kept``) at the steps in ``keep``;
- the training time is counted here: ``elapsed`` (seconds, from ``LoopSpec.elapsed``, a
  resumed run's saved value) as of the step being recorded goes to ``record``, and the
  same value to ``save`` -- a checkpoint's elapsed is its last metrics row's;
- the progress bar (tqdm, on stderr) is closed, with its newline, before any error or
  message, so an error line never lands on the end of a bar.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .errors import NCAError


@jax.jit
def all_finite(tree) -> jax.Array:
    """True when every leaf of ``tree`` (e.g. params) is finite everywhere; a bool scalar."""
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(tree)]))


class StopFlag:
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
def training_ui(progress: bool, total: int, initial: int, desc: str):
    """A tqdm bar (or None) and a ``StopFlag``, both torn down however the loop ends.
    Yields ``(bar, flag)``."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)
    with StopFlag() as flag:
        try:
            yield bar, flag
        finally:
            if bar is not None:
                bar.close()


@dataclass(frozen=True)
class LoopSpec:
    """When the driver steps, saves and keeps.

    start: the step the state is at; end: stop after this step; total: the run's last step
    (for the bar); checkpoint_every: full checkpoint cadence; keep: steps whose params are
    kept (``nca.checkpoint.kept_steps``); where: the run folder named in messages;
    save_at_start: keep (if ``start`` is in ``keep``) and save before the first step --
    a new run folder is loadable and resumable at once; progress / desc: the bar;
    elapsed: training seconds before ``start`` (a resumed run's saved elapsed; 0 for a new
    run), the clock ``record`` and ``save`` are given continues from it.
    """

    start: int
    end: int
    total: int
    checkpoint_every: int
    keep: frozenset = frozenset()
    where: Path | str = "."
    save_at_start: bool = False
    progress: bool = True
    desc: str = "train"
    elapsed: float = 0.0

    def __post_init__(self):
        if not 0 <= self.start <= self.total or self.end < self.start:
            raise NCAError(f"bad training range: start {self.start}, end {self.end}, total {self.total}")
        if self.checkpoint_every < 1:
            raise NCAError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if not (np.isfinite(self.elapsed) and self.elapsed >= 0):
            raise NCAError(f"the elapsed training time must be a finite number of seconds >= 0, got {self.elapsed}")


class LoopResult(NamedTuple):
    """step: the last step done; interrupted: stopped by Ctrl-C (checkpoint saved);
    last_saved: the step of the last full checkpoint written (None: none this call);
    elapsed: the training seconds as of the last step recorded (``LoopSpec.elapsed`` if
    none was)."""

    step: int
    interrupted: bool
    last_saved: int | None
    elapsed: float


def drive(spec: LoopSpec, *, step: Callable[[], jax.Array], record: Callable[[int, np.ndarray, float], str],
          save: Callable[[int, float], None], save_kept: Callable[[int], None] | None = None,
          params_finite: Callable[[], bool] | None = None,
          nonfinite_loss: Callable[[int, np.ndarray], str] | None = None) -> LoopResult:
    """Run steps ``spec.start + 1 .. spec.end``; see the module docstring.

    step(): advance the trainer's state one step; return the step's loss(es) (device
    array, scalar or [K]). record(s, losses, elapsed): log step s's finite losses (float64
    NumPy) and the training seconds so far (``spec.elapsed`` plus this call's time up to
    the moment step s is recorded); returns the bar's postfix text. save(s, elapsed):
    write the full checkpoint after step s (only called with finite params), with the
    elapsed of step s's record (``spec.elapsed`` when saving at start). save_kept(s):
    write the kept params of step s.
    params_finite(): whether the current params are all finite (a host sync; called only
    before saving). nonfinite_loss(s, losses): what to say about a non-finite loss (the
    default names the value).
    """
    last_saved = None
    elapsed = spec.elapsed
    t_start = perf_counter()

    def last_good() -> str:
        if last_saved is None:
            return f"no checkpoint was written by this run in {spec.where}" if spec.start == 0 else \
                f"the last good checkpoint (step {spec.start} or earlier) is kept in {spec.where}"
        return f"the last good checkpoint (step {last_saved}) is kept in {spec.where}"

    def check_params(s: int) -> None:
        if params_finite is not None and not bool(params_finite()):
            raise NCAError(f"parameters became non-finite by step {s}; {last_good()}; "
                           "try a lower learning rate (lr)")

    def do_save(s: int) -> None:
        nonlocal last_saved
        check_params(s)  # a finite loss can still come with a non-finite update
        save(s, elapsed)
        last_saved = s

    def do_keep(s: int) -> None:
        if save_kept is not None:
            check_params(s)
            save_kept(s)

    if spec.save_at_start:  # kept first: a saved run then always has its step-0 params
        if spec.start in spec.keep:
            do_keep(spec.start)
        do_save(spec.start)

    bar = None

    def drain(pending) -> None:
        nonlocal elapsed
        s, loss_arr = pending
        losses = np.atleast_1d(np.asarray(loss_arr, np.float64))
        if not np.all(np.isfinite(losses)):
            what = nonfinite_loss(s, losses) if nonfinite_loss else \
                f"loss became {losses[0] if losses.size == 1 else losses.tolist()} at step {s}"
            raise NCAError(f"{what}; {last_good()}; try a lower learning rate (lr)")
        elapsed = spec.elapsed + (perf_counter() - t_start)
        postfix = record(s, losses, elapsed)
        if bar is not None:
            bar.update(1)
            if postfix:
                bar.set_postfix_str(postfix)

    pending = None  # (step, loss array): read one step late so the host never stalls the device
    done = spec.start  # counted on the host: reading the state's step would wait for the device
    interrupted = False
    with training_ui(spec.progress, spec.total, spec.start, spec.desc) as (bar, flag):
        while done < spec.end:
            loss = step()
            done += 1
            if pending is not None:
                drain(pending)
            pending = (done, loss)
            if done in spec.keep:  # params along training, for training-dynamics analyses
                do_keep(done)
            if done % spec.checkpoint_every == 0 or done == spec.end or flag.stop:
                drain(pending)
                pending = None
                do_save(done)
            if flag.stop:
                interrupted = True
                break
    return LoopResult(done, interrupted, last_saved, elapsed)


"""The one training-loop driver (nca.loop.drive), with a fake trainer: no compiling.

The fake's "loss" at step s is a planted number and its "params" are finite or not as
planted, so each guarantee of the driver is checked against a known truth, with the
control (nothing planted) beside it.
"""

import os
import signal

import numpy as np
import pytest

from nca.errors import NCAError
from nca.loop import LoopSpec, drive


class Fake:
    """A trainer whose loss at step s is 1/s (or NaN from step ``nan_loss_at``) and whose
    params become non-finite from step ``nan_params_at``."""

    def __init__(self, nan_loss_at=None, nan_params_at=None, interrupt_at=None):
        self.step_no, self.nan_loss_at, self.nan_params_at, self.interrupt_at = 0, nan_loss_at, nan_params_at, interrupt_at
        self.recorded, self.saved, self.kept, self.times, self.saved_times = [], [], [], {}, {}

    def step(self):
        self.step_no += 1
        if self.step_no == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would, during a step
        s = self.step_no
        return np.float32(np.nan if self.nan_loss_at and s >= self.nan_loss_at else 1.0 / s)

    def params_ok(self):
        return not (self.nan_params_at and self.step_no >= self.nan_params_at)

    def run(self, **spec):
        spec = {"start": 0, "end": 20, "total": 20, "checkpoint_every": 5, "progress": False, "where": "RUN", **spec}
        return drive(LoopSpec(**spec), step=self.step, record=self.record, save=self.save,
                     save_kept=self.kept.append, params_finite=self.params_ok)

    def record(self, s, losses, elapsed):
        self.recorded.append((s, float(losses[0])))
        self.times[s] = elapsed
        return ""

    def save(self, s, elapsed):
        self.saved.append(s)
        self.saved_times[s] = elapsed


def test_the_driver_records_every_step_saves_on_cadence_and_keeps_the_listed_steps():
    f = Fake()
    r = f.run(keep=frozenset({0, 1, 3, 20}), save_at_start=True)
    assert r.step == 20 and not r.interrupted and r.last_saved == 20
    assert [s for s, _ in f.recorded] == list(range(1, 21))
    assert all(loss == pytest.approx(1 / s) for s, loss in f.recorded)  # each step's own loss
    assert f.saved == [0, 5, 10, 15, 20] and f.kept == [0, 1, 3, 20]


def test_a_nan_loss_stops_the_run_and_names_the_last_checkpoint_written():
    f = Fake(nan_loss_at=12)
    with pytest.raises(NCAError, match=r"loss became nan at step 12; the last good checkpoint \(step 10\) is kept in RUN"):
        f.run()
    assert f.saved == [5, 10] and max(s for s, _ in f.recorded) == 11


def test_non_finite_params_are_never_saved_nor_kept():
    f = Fake(nan_params_at=7)  # the losses stay finite: only the params check can catch it
    with pytest.raises(NCAError, match=r"non-finite by step 7; the last good checkpoint \(step 5\)"):
        f.run(keep=frozenset(range(0, 21)))
    assert f.saved == [5] and f.kept == [1, 2, 3, 4, 5, 6]
    g = Fake(nan_params_at=8)  # between kept steps: caught at the next checkpoint
    with pytest.raises(NCAError, match=r"non-finite by step 10; the last good checkpoint \(step 5\)"):
        g.run()
    assert g.saved == [5]


def test_ctrl_c_stops_between_steps_with_a_checkpoint():
    f = Fake(interrupt_at=8)
    r = f.run()
    assert r.interrupted and r.step == 8 and f.saved == [5, 8]
    assert [s for s, _ in f.recorded] == list(range(1, 9))  # the last step's loss is drained first


def test_a_resumed_range_starts_where_the_run_stopped():
    f = Fake()
    f.step_no = 8
    r = f.run(start=8, end=12, keep=frozenset({10}))
    assert r.step == 12 and f.saved == [10, 12] and f.kept == [10]
    assert [s for s, _ in f.recorded] == [9, 10, 11, 12]
    with pytest.raises(NCAError, match="bad training range"):
        LoopSpec(start=5, end=3, total=10, checkpoint_every=1)


def test_the_driver_counts_training_time_on_from_the_saved_elapsed(monkeypatch):
    """A planted clock: each fake step takes 10 s (the clock reads 1000 + 10 * steps done).
    A run resumed at step 8 with 50 s already trained records 50 + the time of this call."""
    f = Fake()
    f.step_no = 8
    monkeypatch.setattr("nca.loop.perf_counter", lambda: 1000.0 + 10.0 * f.step_no)
    r = f.run(start=8, end=12, elapsed=50.0)
    for s, e in f.times.items():  # step s's own time is counted, and at most the next step's
        assert 50 + 10 * (s - 8) <= e <= 50 + 10 * (s + 1 - 8)
    # read one step late: step 9 is recorded after step 10 ran; 10 and 12 at their checkpoints
    assert f.times == {9: 70.0, 10: 70.0, 11: 90.0, 12: 90.0}
    assert f.saved_times == {10: 70.0, 12: 90.0}  # a checkpoint's elapsed is its last row's
    assert r.elapsed == 90.0


def test_a_new_run_saves_at_start_with_its_starting_elapsed_and_bad_elapsed_is_refused(monkeypatch):
    f = Fake()
    monkeypatch.setattr("nca.loop.perf_counter", lambda: 7.0 + 3.0 * f.step_no)
    r = f.run(end=5, save_at_start=True)
    assert f.saved_times == {0: 0.0, 5: 15.0} and r.elapsed == 15.0
    assert Fake().run(start=3, end=3, elapsed=2.5).elapsed == 2.5  # nothing to run: unchanged
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(NCAError, match="elapsed training time"):
            LoopSpec(start=0, end=1, total=1, checkpoint_every=1, elapsed=bad)

"""Multi-process training through jax.distributed (nca.distributed, scripts/train.py).

Two local processes on CPU devices, coordinator on localhost: the seeds they train equal the
single-process run's, seed for seed; a killed worker is a clear error from process 0 within
a bounded time; mismatched process counts are refused; a population resumed after a stop
ends bit-identical to an uninterrupted one. Bad input (an unreachable coordinator, a taken
port, ids out of range, a folder another run holds) is one NCAError before JAX is involved.
"""

import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nca
from nca import checkpoint as ckpt
from nca.config import preset
from nca.distributed import Cluster, Job, initialize, share
from nca.errors import NCAError
from nca.multiseed import read_job, resume_runs, train_seeds

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(progress=False, log=lambda *_: None)
# 4 steps, checkpoints at 2 and 4: small, but the pool, damage and the resume path all run
TINY = ["--preset", "tiny", "--train-steps", "4", "--checkpoint-every", "2", "--keep-checkpoints", "none"]
SEEDS = [3, 4]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(args, pid: int, n: int, port: int, heartbeat: int = 5):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "scripts/train.py", *map(str, args), "--coordinator", f"localhost:{port}",
         "--num-processes", str(n), "--process-id", str(pid), "--heartbeat-timeout", str(heartbeat),
         "--init-timeout", "120", "--quiet"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p, timeout=300):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"process hung past {timeout} s: {err[-2000:]}")
    return p.returncode, out, err


def error_lines(err: str) -> list[str]:
    """Our lines of stderr (JAX's C++ logging, W/I/E-prefixed, is not ours)."""
    return [ln for ln in err.splitlines() if ln.startswith("error: ")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process run of the same seeds (the 4-step population, in this process)."""
    out = tmp_path_factory.mktemp("single") / "pop"
    cfg = preset("tiny", train_steps=4, checkpoint_every=2, keep_checkpoints="none")
    stacked = train_seeds(cfg, out, SEEDS, **QUIET)
    return cfg, out, stacked


def losses(run_dir: Path) -> list[float]:
    return [float(r["loss"]) for r in csv.DictReader(open(run_dir / ckpt.METRICS))]


def test_two_processes_equal_one_seed_for_seed(tmp_path, reference):
    cfg, ref_dir, stacked = reference
    out, port = tmp_path / "pop", free_port()
    procs = [launch([*TINY, "--seeds", ",".join(map(str, SEEDS)), "--out", out], i, 2, port) for i in (0, 1)]
    for p in procs:
        rc, _, err = finish(p)
        assert rc == 0, err[-3000:]
    for i, s in enumerate(SEEDS):
        got = nca.load_model(out / f"seed_{s}")
        for name in got.params:  # float tolerance: each process vmaps 1 seed, the reference 2
            np.testing.assert_allclose(np.asarray(got.params[name]), np.asarray(stacked.params[name][i]),
                                       rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(losses(out / f"seed_{s}"), losses(ref_dir / f"seed_{s}"), rtol=1e-4)
    rows = list(csv.DictReader(open(out / "summary.csv")))  # written once, by process 0
    assert [(r["run"], r["process"], r["step"]) for r in rows] == [("seed_3", "0", "4"), ("seed_4", "1", "4")]
    assert [float(r["final_loss"]) for r in rows] == [losses(out / f"seed_{s}")[-1] for s in SEEDS]
    assert read_job(out)[0] == ["seed_3", "seed_4"]


def test_a_killed_worker_is_a_clear_error_from_process_0_in_bounded_time(tmp_path):
    out, port = tmp_path / "pop", free_port()
    p0 = launch([*TINY, "--seeds", "3,4", "--out", out], 0, 2, port, heartbeat=3)
    p1 = launch([*TINY, "--seeds", "3,4", "--out", out], 1, 2, port, heartbeat=3)
    line = p1.stdout.readline()  # printed once it has joined the job
    assert line.startswith("training"), line + p1.stderr.read()[-2000:]
    p1.kill()
    killed = time.monotonic()
    rc, _, err = finish(p0, timeout=240)
    waited = time.monotonic() - killed
    p1.wait()
    assert rc == 2, err[-3000:]
    assert "Traceback" not in err
    lines = error_lines(err)
    assert len(lines) == 1 and "process 1 (seed_4) stopped before finishing" in lines[0], err[-3000:]
    # bounded: process 0's own 4 steps at most (if process 1 had joined the job before it died)
    # plus the 3 s heartbeat timeout
    assert waited < 200


def test_mismatched_process_counts_are_refused(tmp_path):
    out, port = tmp_path / "pop", free_port()
    p0 = launch([*TINY, "--seeds", "3,4", "--out", out], 0, 2, port, heartbeat=3)
    p1 = launch([*TINY, "--seeds", "3,4", "--out", out], 1, 3, port, heartbeat=3)  # thinks there are 3
    results = [finish(p, timeout=240) for p in (p0, p1)]
    for rc, _, err in results:
        assert rc == 2 and "Traceback" not in err and len(error_lines(err)) == 1, err[-3000:]
    assert "started with --num-processes 3, but the job process 0 started has 2" in error_lines(results[1][2])[0]
    assert "process 1 (seed_4) stopped before finishing" in error_lines(results[0][2])[0]
    assert not (out / "seed_3" / ckpt.CONFIG).exists()  # refused before anything was trained


def test_a_population_resumed_after_a_stop_ends_bit_identical(tmp_path, reference):
    cfg, _, stacked = reference
    out = tmp_path / "pop"
    train_seeds(cfg, out, SEEDS, stop_at=2, **QUIET)
    assert losses(out / "seed_3")[-1] and len(losses(out / "seed_3")) == 2
    states, results = resume_runs(out, **QUIET)
    for i, s in enumerate(SEEDS):
        got = nca.load_model(out / f"seed_{s}")
        for name in got.params:
            np.testing.assert_array_equal(np.asarray(got.params[name]), np.asarray(stacked.params[name][i]))
    assert [r["step"] for r in results] == [4, 4]
    # resuming a finished population trains nothing and reports it
    _, again = resume_runs(out, **QUIET)
    assert [r["final_loss"] for r in again] == [r["final_loss"] for r in results]
    with pytest.raises(NCAError, match="already holds a job"):  # a new job into it is refused
        train_seeds(cfg, out, [7], **QUIET)


def test_shares_are_disjoint_and_cover_every_run():
    runs = list(range(7))
    shares = [share(runs, Job(i, 3)) for i in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert share(runs, Job(0, 1)) == runs


@pytest.mark.parametrize("kw, pattern", [
    (dict(coordinator="localhost", num_processes=2, process_id=0), "must be HOST:PORT"),
    (dict(coordinator="localhost:1", num_processes=2, process_id=2), "--process-id 2 is not below"),
    (dict(coordinator="localhost:1", num_processes=0, process_id=0), "--num-processes must be >= 1"),
    (dict(coordinator="localhost:1", num_processes=2), "needs --num-processes and --process-id"),
    (dict(heartbeat_timeout=0), "--heartbeat-timeout must be >= 1"),
])
def test_bad_cluster_settings_are_one_line(kw, pattern):
    with pytest.raises(NCAError, match=pattern):
        Cluster(**kw)


def test_a_coordinator_that_does_not_answer_is_an_error_in_bounded_time():
    port = free_port()  # nothing listens there
    t = time.monotonic()
    with pytest.raises(NCAError, match=rf"coordinator at localhost:{port} does not answer"):
        initialize(Cluster(f"localhost:{port}", 2, 1, init_timeout=2))
    assert time.monotonic() - t < 10


def test_a_taken_coordinator_port_is_an_error():
    with socket.socket() as s:
        s.bind(("", 0))
        s.listen()
        with pytest.raises(NCAError, match="cannot serve as coordinator on port"):
            initialize(Cluster(f"localhost:{s.getsockname()[1]}", 2, 0))


def test_a_folder_another_run_holds_is_refused(tmp_path):
    cfg = preset("tiny", train_steps=4)
    with ckpt.claim_run_dir(tmp_path / "pop" / "seed_4"):
        with pytest.raises(NCAError, match="in use by another training run"):
            train_seeds(cfg, tmp_path / "pop", [3, 4], **QUIET)
    assert not (tmp_path / "pop" / "seed_3" / ckpt.CONFIG).exists()


class _FakeClient:
    """The two calls of the coordination service's key-value store that ``_try_get`` and
    ``_let_others_read`` make, with a planted store, live set and failure."""

    def __init__(self, store=None, live=(0, 1), error=None):
        self.store, self.live, self.error = dict(store or {}), list(live), error

    def key_value_try_get(self, key):
        if self.error:
            raise RuntimeError(self.error)
        if key not in self.store:
            raise RuntimeError("NOT_FOUND: no such key")
        return self.store[key]

    def get_live_nodes(self, nodes):
        return [n for n in nodes if n in self.live]


def test_a_vanished_coordinator_is_one_line_and_other_failures_are_not_hidden(monkeypatch):
    from nca import distributed as D

    monkeypatch.setattr(D, "_REFUSED", False)
    assert D._try_get(_FakeClient({"k": "v"}), "k") == "v"
    assert D._try_get(_FakeClient(), "k") is None  # not posted yet
    with pytest.raises(NCAError, match="process 0 \\(the coordinator\\) is gone"):
        D._try_get(_FakeClient(error="CANCELLED: CANCELLED"), "k")
    assert D._REFUSED  # it leaves with its line, not through a shutdown that would abort
    with pytest.raises(RuntimeError, match="PERMISSION"):
        D._try_get(_FakeClient(error="PERMISSION_DENIED"), "k")


def test_a_refusing_coordinator_waits_for_the_others_to_read_and_no_longer(monkeypatch):
    import time

    from nca import distributed as D

    job = D.Job(index=0, count=3)
    t = time.monotonic()
    D._let_others_read(_FakeClient({"r/1": "1", "r/2": "1"}, live=(0, 1, 2)), job, "r")
    assert time.monotonic() - t < 1.0  # both read: no wait
    t = time.monotonic()
    D._let_others_read(_FakeClient({"r/1": "1"}, live=(0, 1)), job, "r")
    assert time.monotonic() - t < 1.0  # process 2 is not live: nothing to wait for
    monkeypatch.setattr(D, "SEEN_WAIT_S", 0.3)
    t = time.monotonic()
    D._let_others_read(_FakeClient({"r/1": "1"}, live=(0, 1, 2)), job, "r")
    assert 0.3 <= time.monotonic() - t < 2.0  # live but silent: bounded

"""Many processes, one job: ``jax.distributed`` (JAX's multi-controller runtime) for seeds
and sweeps that outgrow one machine.

Design (docs/distributed.md). The runs of a population or a sweep are independent, so each
process trains a disjoint share of them (``share``: runs ``process_id::num_processes``) in
its own local program over its own devices (``nca.parallel.population_train_step``), and
writes their run folders. No array ever crosses processes, so no cross-process collective
(and no CPU collectives backend) is needed. ``jax.distributed`` gives what the processes do
need from each other, and nothing is home-made:

- ranks: ``jax.process_index()`` / ``jax.process_count()`` after ``initialize``;
- agreement: every process posts its view of the job (process count, runs, configs) to the
  coordination service's key-value store; one that differs is a clear error (``agree``);
- results: each process posts its runs' final numbers when done; process 0 collects them
  (``gather``) and writes the shared summary;
- failure detection: the service's heartbeats. With JAX's ``jax_enable_recoverability`` on,
  the death of a worker does not abort the others: they finish and checkpoint their own
  runs, and process 0 reports the dead process (it stops being live, ``get_live_nodes``)
  within ``heartbeat_timeout`` seconds, naming its runs and the resume command. If process
  0 itself dies, the service goes with it and JAX terminates the other processes (its own
  fatal message, within a second or the heartbeat timeout); their checkpoints are whole.

Bad input is checked before JAX is handed the job, so it is one line (``NCAError``): a
process id outside ``[0, N)``, a coordinator that does not accept connections within
``init_timeout`` seconds, a coordinator port already taken; after the start, a process
whose count, runs or configs differ from process 0's. Two cases only JAX sees: a process id
that the coordinator's count does not have (the process is refused at once, "Unexpected
task registered"), and a process that never starts (the others abort after
``init_timeout``). Both end in JAX's fatal message within a bounded time, never a hang.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

from .errors import NCAError

KEY_PREFIX = "nca-lens"


@dataclass(frozen=True)
class Cluster:
    """How this process joins the job.

    coordinator: "host:port" of process 0's coordination service (None: let JAX detect the
    cluster -- SLURM, Open MPI, or $JAX_COORDINATOR_ADDRESS); num_processes, process_id:
    None likewise; init_timeout: seconds every process waits for all to join;
    heartbeat_timeout: seconds without a heartbeat after which a process counts as dead.
    """

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    init_timeout: int = 300
    heartbeat_timeout: int = 60

    def __post_init__(self):
        if self.num_processes is not None and self.num_processes < 1:
            raise NCAError(f"--num-processes must be >= 1, got {self.num_processes}")
        if self.process_id is not None:
            if self.process_id < 0:
                raise NCAError(f"--process-id must be >= 0, got {self.process_id}")
            if self.num_processes is not None and self.process_id >= self.num_processes:
                raise NCAError(f"--process-id {self.process_id} is not below --num-processes "
                               f"{self.num_processes}; the ids are 0..{self.num_processes - 1}")
        for name in ("init_timeout", "heartbeat_timeout"):
            if getattr(self, name) < 1:
                raise NCAError(f"--{name.replace('_', '-')} must be >= 1 second, got {getattr(self, name)}")
        if self.coordinator is not None:
            host, sep, port = self.coordinator.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise NCAError(f"--coordinator must be HOST:PORT (e.g. localhost:12345), got {self.coordinator!r}")
            if self.num_processes is None or self.process_id is None:
                raise NCAError("--coordinator needs --num-processes and --process-id too "
                               "(or leave all three out on a SLURM or Open MPI cluster)")


@dataclass(frozen=True)
class Job:
    """This process's place in the job: ``index`` of ``count`` processes."""

    index: int = 0
    count: int = 1

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @property
    def distributed(self) -> bool:
        return self.count > 1


SINGLE = Job()


def share(items: list, job: Job) -> list:
    """This process's share of ``items``: every ``count``-th item from its ``index``.

    Round-robin rather than blocks, so the shares differ in length by at most one and
    each holds early and late configs alike."""
    return list(items[job.index::job.count])


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _wait_for_coordinator(address: str, timeout: float) -> None:
    """Return once ``address`` accepts TCP connections; NCAError after ``timeout`` seconds.

    JAX aborts the process (a fatal log, no exception) when its client cannot register, so
    the unreachable coordinator is caught here first."""
    host, port = _host_port(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as e:
            last = e
        if time.monotonic() >= deadline:
            raise NCAError(f"the coordinator at {address} does not answer ({last.strerror or last}; waited "
                           f"{timeout:g} s): start process 0 there first, or check --coordinator")
        time.sleep(0.2)


def _check_port_free(address: str) -> None:
    """Process 0 binds the coordinator's port on every interface (JAX's default)."""
    _, port = _host_port(address)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as e:
            raise NCAError(f"process 0 cannot serve as coordinator on port {port} ({e.strerror}): another job "
                           "holds it; choose another --coordinator port") from None


def initialize(cluster: Cluster) -> Job:
    """Join the job: ``jax.distributed.initialize`` with ``cluster``'s settings. Call it
    before anything starts JAX's backends (first thing in a script). Returns the ``Job``.

    Turns on ``jax_enable_recoverability`` (where this JAX has it) so that a dead worker is
    reported by process 0 instead of aborting every process (module docstring)."""
    if cluster.coordinator is not None:  # before JAX, whose client aborts the process instead
        if cluster.process_id == 0:
            _check_port_free(cluster.coordinator)
        else:
            _wait_for_coordinator(cluster.coordinator, cluster.init_timeout)
    import jax

    try:
        jax.config.update("jax_enable_recoverability", True)
    except (AttributeError, KeyError, ValueError):  # an older JAX: a dead worker aborts all
        pass
    try:
        jax.distributed.initialize(coordinator_address=cluster.coordinator, num_processes=cluster.num_processes,
                                   process_id=cluster.process_id, initialization_timeout=cluster.init_timeout,
                                   heartbeat_timeout_seconds=cluster.heartbeat_timeout,
                                   shutdown_timeout_seconds=cluster.heartbeat_timeout)
    except (ValueError, TypeError, RuntimeError) as e:  # JAX's own argument checks, a second call
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NCAError(f"cannot join the job: {first}") from None
    if cluster.coordinator is not None and cluster.process_id != 0:
        import atexit

        atexit.register(_leave_quietly_if_refused)  # registered after JAX's clean-up, so run before it
    job = Job(jax.process_index(), jax.process_count())
    if cluster.num_processes is not None and cluster.num_processes != job.count:
        # the job's size is process 0's: it started the coordination service
        raise NCAError(f"this process was started with --num-processes {cluster.num_processes}, but the job "
                       f"process 0 started has {job.count} processes; give every process the same count")
    return job


_REFUSED = False  # set when this process refuses the job (``agree``)


def _refused() -> None:
    global _REFUSED
    _REFUSED = True


def _leave_quietly_if_refused() -> None:
    """At exit of a process that refused the job (``agree``: its one-line error is out): end
    it now, with the CLI's exit status for bad input (2), before JAX's exit hook sends the
    coordination service a shutdown that cannot succeed -- the other processes are refusing
    the same job and leaving, and a failed shutdown aborts the process (SIGABRT and a C++
    stack after our line). Otherwise the normal shutdown runs."""
    if not _REFUSED:
        return
    import os
    import sys

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(2)


def shutdown() -> None:
    import jax

    jax.distributed.shutdown()


def _client():
    from jax._src import distributed

    client = distributed.global_state.client
    if client is None:
        raise NCAError("jax.distributed is not initialized (call nca.distributed.initialize first)")
    return client


def _get(client, key: str, timeout_s: float) -> str | None:
    try:
        return client.blocking_key_value_get(key, int(timeout_s * 1000))
    except Exception as e:  # noqa: BLE001 -- JaxRuntimeError: DEADLINE_EXCEEDED when the key never came
        if "DEADLINE_EXCEEDED" in str(e) or "NOT_FOUND" in str(e):
            return None
        raise


def agree(job: Job, name: str, value, timeout_s: float = 120, names_of=lambda p: "") -> None:
    """Every process posts ``value`` (JSON-able) under ``name``; each compares its own with
    process 0's (and process 0 with every other's). NCAError naming the first process that
    differs, or that did not post within ``timeout_s`` -- e.g. a process started with other
    seeds, configs or another --num-processes."""
    if not job.distributed:
        return
    client = _client()
    mine = json.dumps(value, sort_keys=True)
    client.key_value_set(f"{KEY_PREFIX}/agree/{name}/{job.index}", mine)
    others = range(1, job.count) if job.is_main else [0]
    for p in others:
        theirs = _await(client, job, p, f"{KEY_PREFIX}/agree/{name}/{p}", timeout_s, doing=names_of(p))
        if theirs is None:
            raise NCAError(f"process {p} did not report its {name} within {timeout_s:g} s")
        if not job.is_main:  # read: process 0 may now leave (it hosts the key-value store)
            client.key_value_set(f"{KEY_PREFIX}/agree/{name}/read/{job.index}", "1")
        if theirs != mine:
            if job.is_main:  # refusing: stay until the others have read our value, or SEEN_WAIT_S
                _let_others_read(client, job, f"{KEY_PREFIX}/agree/{name}/read")
            a, b = json.loads(theirs), json.loads(mine)
            keys = [k for k in sorted(a) if a.get(k) != b.get(k)] if isinstance(a, dict) and isinstance(b, dict) \
                else []
            what = "; ".join(f"{k}: {_short(json.dumps(a.get(k)))} there, {_short(json.dumps(b.get(k)))} here"
                             for k in keys) or f"{_short(theirs)} there, {_short(mine)} here"
            _refused()
            raise NCAError(f"process {p} was started with another {name} than process {job.index} ({what}); "
                           "start every process with the same arguments")


# How long process 0, refusing a job, keeps the coordination service up for the others to
# read its value (they then refuse with the same one line rather than a lost connection).
SEEN_WAIT_S = 10.0


def _let_others_read(client, job: Job, prefix: str) -> None:
    """Process 0: wait until every other process has posted ``prefix/<p>`` (it read what it
    needed), has stopped being live, or ``SEEN_WAIT_S`` passed."""
    deadline = time.monotonic() + SEEN_WAIT_S
    waiting = set(range(1, job.count))
    while waiting and time.monotonic() < deadline:
        live = set(client.get_live_nodes(list(range(job.count))))
        waiting = {p for p in waiting if p in live and _try_get(client, f"{prefix}/{p}") is None}
        if waiting:
            time.sleep(0.05)


def _await(client, job: Job, p: int, key: str, timeout_s: float | None, poll_s: float = 0.25,
           doing: str = "") -> str | None:
    """The value process ``p`` posts under ``key``; None after ``timeout_s`` (None: no
    limit). NCAError as soon as ``p`` stops being live without having posted it."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        got = _try_get(client, key)
        if got is not None:
            return got
        if p not in set(client.get_live_nodes(list(range(job.count)))):
            got = _try_get(client, key)  # posted just before it exited
            if got is not None:
                return got
            who = f"process {p} ({doing})" if doing else f"process {p}"
            raise NCAError(f"{who} stopped before finishing (no heartbeat for the heartbeat timeout): the "
                           "checkpoints it wrote are whole; resume with the same command and --resume OUT")
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)


def _short(s: str, n: int = 80) -> str:
    return s if len(s) <= n else s[:n] + "..."


def post_result(job: Job, result, tag: str = "done") -> None:
    """Post this process's results (JSON-able) for process 0's ``gather`` of the same tag."""
    if job.distributed:
        _client().key_value_set(f"{KEY_PREFIX}/{tag}/{job.index}", json.dumps(result))


def gather(job: Job, mine, names_of=lambda p: "", poll_s: float = 0.5, tag: str = "done") -> list:
    """Process 0: every process's posted result, in process order (its own is ``mine``).

    Waits as long as the others train; a process that stops being live (no heartbeat for
    ``heartbeat_timeout`` s: killed, crashed, its machine lost) without posting is an
    NCAError naming it (``names_of(p)``: what it was training), so the wait is bounded by
    the slowest live process, never a hang on a dead one. Other processes get [mine]."""
    if not job.distributed:
        return [mine]
    if not job.is_main:
        return [mine]
    client = _client()
    results = {0: mine}
    while len(results) < job.count:  # every missing process looked at in turn: a dead one is
        for p in range(1, job.count):  # named within the heartbeat timeout of its death
            if p not in results:
                got = _await(client, job, p, f"{KEY_PREFIX}/{tag}/{p}", 0, doing=names_of(p))
                if got is not None:
                    results[p] = json.loads(got)
        if len(results) < job.count:
            time.sleep(poll_s)
    return [results[p] for p in range(job.count)]


def _try_get(client, key: str) -> str | None:
    try:
        got = client.key_value_try_get(key)
    except Exception as e:  # noqa: BLE001 -- JaxRuntimeError NOT_FOUND: not posted yet
        if "NOT_FOUND" in str(e):
            return None
        if "CANCELLED" in str(e) or "UNAVAILABLE" in str(e):
            _refused()  # leave with our line: a shutdown through a service that is gone would abort
            raise NCAError("process 0 (the coordinator) is gone: it stopped or refused the job; its own "
                           "output says why") from None
        raise
    return got if got else None


# --------------------------------------------------------------------------- command line


def add_distributed_args(parser) -> None:
    """The flags that make a script one process of a multi-process job (docs/distributed.md)."""
    g = parser.add_argument_group("multi-process (jax.distributed; docs/distributed.md)")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="process 0's address; every process of the job gives the same one")
    g.add_argument("--num-processes", type=int, default=None, metavar="N", help="processes in the job")
    g.add_argument("--process-id", type=int, default=None, metavar="I", help="this process's id, 0..N-1")
    g.add_argument("--distributed", action="store_true",
                   help="join a job whose settings JAX detects (SLURM, Open MPI, $JAX_COORDINATOR_ADDRESS)")
    g.add_argument("--init-timeout", type=int, default=300, metavar="S",
                   help="seconds to wait for every process to join")
    g.add_argument("--heartbeat-timeout", type=int, default=60, metavar="S",
                   help="seconds without a heartbeat after which a process counts as dead")


def cluster_from_args(a) -> Cluster | None:
    """A ``Cluster`` from ``add_distributed_args``' flags; None when none asks for one."""
    given = a.coordinator is not None or a.num_processes is not None or a.process_id is not None
    if not (given or a.distributed):
        return None
    if given and (a.coordinator is None or a.num_processes is None or a.process_id is None):
        raise NCAError("give --coordinator, --num-processes and --process-id together "
                       "(or --distributed alone on a SLURM or Open MPI cluster)")
    return Cluster(a.coordinator, a.num_processes, a.process_id, a.init_timeout, a.heartbeat_timeout)

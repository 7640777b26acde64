"""Draw a report's figures in a second process while the report is still computing.

Matplotlib holds the GIL for nearly all of a figure's drawing, so a second *thread* cannot
draw beside the analysis; a second *process* can. On a 2-core machine the PCA report's eight
figures took about 7 s of one core after everything else had finished (``scripts/dissect.py``,
2026-11-30); with a pool they are drawn as their inputs become ready, beside the rest of
the analysis, and the caller draws whatever the worker has not started yet when it has
nothing else to do.

A figure is a spec ``(name, title, caption, make, args)``: ``make(*args)`` returns a
matplotlib ``Figure`` and must be a module-level function (it is pickled by reference), and
``args`` must pickle (arrays, dicts, dataclasses). The PNG bytes are the same whichever
process draws them (``analysis.plots.png_bytes`` in both; a test compares them).

The worker is *spawned*, never forked: a fork of a process whose XLA threads are running
can deadlock. It ignores Ctrl-C (the caller owns the interrupt and shuts the pool down),
and a worker that dies is replaced by drawing in the caller. Like every spawned process it
imports the caller's main module: a script keeps its work under ``if __name__ ==
"__main__":`` (all of ``scripts/`` do; a notebook needs nothing).
"""

from __future__ import annotations


def _init_worker() -> None:
    """In the worker: ignore SIGINT (the caller stops the pool), leave at once when told to
    (every result has been sent by then; the interpreter's own teardown took 2 s), and import
    the drawing code now, while the caller is still importing and growing its rollouts."""
    import atexit
    import os
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def leave():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    atexit.register(leave)  # registered last, so it runs first
    import importlib

    for module in ("analysis.plots", "analysis.plots.pca"):  # absolute: a regrouping rewrites them
        importlib.import_module(module)


def _warm() -> None:
    """A no-op job: submitting it starts the worker (its imports) right away."""


def _wait_until_dead(workers: list, timeout: float) -> None:
    """Wait for the workers' exit on their sentinels (which reaps nothing); kill any still
    running after ``timeout`` seconds."""
    import time
    from multiprocessing.connection import wait

    deadline = time.monotonic() + timeout
    running = {p.sentinel: p for p in workers}
    while running and (left := deadline - time.monotonic()) > 0:
        for sentinel in wait(list(running), left):
            running.pop(sentinel)
    for p in running.values():
        p.kill()
    if running:  # (an empty wait would sleep the whole timeout)
        wait(list(running), 5)


def draw(make, args) -> bytes:
    """``make(*args)`` as PNG bytes (``analysis.plots.png_bytes``)."""
    from analysis.plots import png_bytes

    return png_bytes(make(*args))


class FigurePool:
    """Figures drawn by ``processes`` spawned workers, or by the caller with 0.

    Use as a context manager (the workers stop on exit, also on an error or Ctrl-C)::

        with FigurePool(1) as pool:
            handles = [pool.submit(spec) for spec in specs]   # as their inputs are ready
            ...                                               # the rest of the analysis
            figures = pool.collect(handles)                   # [(name, title, caption, png)]
    """

    def __init__(self, processes: int = 1):
        if processes < 0:
            from nca.errors import NCAError

            raise NCAError(f"processes must be >= 0, got {processes}")
        self._executor = None
        self._workers = []
        if processes:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            before = set(multiprocessing.active_children())
            self._executor = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker)
            for _ in range(processes):  # start the workers (and their imports) now
                self._executor.submit(_warm)
            self._workers = [p for p in multiprocessing.active_children() if p not in before]

    def __enter__(self) -> "FigurePool":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(abort=exc_type is not None)

    def close(self, abort: bool = False) -> None:
        """Stop the workers: after their current figure, or at once with ``abort`` (an error
        or Ctrl-C in the caller: its figures will not be used)."""
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        if abort:
            for p in self._workers:
                p.terminate()
            _wait_until_dead(self._workers, timeout=5)
        # The executor's own thread reaps the workers: waiting for it (bounded once they are
        # dead) leaves each worker's exit code set. A ``join`` here beside that thread raced it
        # for the same child, and a lost race reads ECHILD as "still running" (seen in CI).
        executor.shutdown(wait=True, cancel_futures=True)

    def submit(self, spec: tuple) -> tuple:
        """Queue one figure spec ``(name, title, caption, make, args)`` -> a handle for ``collect``."""
        name, title, caption, make, args = spec
        fut = None
        if self._executor is not None:
            try:
                fut = self._executor.submit(draw, make, args)
            except RuntimeError:  # a broken pool: the caller draws it
                fut = None
        return name, title, caption, make, args, fut

    def collect(self, handles: list[tuple]) -> list[tuple]:
        """[(name, title, caption, png bytes)] in the handles' order. Figures the worker has
        not started are drawn here (the latest first, so the worker keeps the earlier ones)."""
        from concurrent.futures.process import BrokenProcessPool

        pngs: list[bytes | None] = [None] * len(handles)
        for i in reversed(range(len(handles))):
            fut = handles[i][-1]
            if fut is None or fut.cancel():
                pngs[i] = draw(handles[i][3], handles[i][4])
        for i, (*_, make, args, fut) in enumerate(handles):
            if pngs[i] is None:
                try:
                    pngs[i] = fut.result()
                except BrokenProcessPool:  # the worker died (e.g. killed): draw it here
                    pngs[i] = draw(make, args)
        return [(name, title, caption, png) for (name, title, caption, *_), png in zip(handles, pngs)]

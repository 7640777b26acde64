"""The pipeline behind ``scripts/sweep.py`` (``nca-sweep``): flags -> a checked ``nca.sweep.Sweep``
and ``analysis.reports.sweep.ScoreSettings`` -> training (``nca.sweep.train_sweep``, or
``nca.multiseed.resume_runs``) -> scores -> OUT/results.csv and results.html.

The script holds the parser; ``main(args, scoring)`` here checks the flags' combinations
(one ``NCAError`` line each), claims a separate --results folder, trains, scores and writes.
``scoring`` is ``analysis.reports.sweep``, passed in by the script: layers point down, so
nca does not import analysis.
The results table goes to stdout, progress to stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import NCAError

HELP = """Train a sweep of configs x seeds, then score every model: final loss, growth, persistence
and regeneration with 95 % intervals over seeds, as OUT/results.csv and OUT/results.html.

    python scripts/sweep.py --preset quick --vary lr=1e-3,2e-3 --vary hidden=64,128 --seeds 0,1,2 --out runs/sw
    python scripts/sweep.py --preset quick --configs sweep.json --seeds 0,1 --out runs/sw  # a list of configs
    python scripts/sweep.py --out runs/sw --resume          # continue a stopped sweep, then score it
    python scripts/sweep.py --out runs/l4 --score-only --results reports/l4   # score trained runs only

--vary FIELD=V1,V2 (repeatable) makes a grid over any config field (lr, hidden, fire-rate,
target, experiment, ...); --configs FILE is a JSON list of override objects instead
([{"lr": 0.001}, {"hidden": 64, "fire_rate": 0.75}]). Every (config, seed) is a normal run
folder OUT/<config>/seed_<s>/; runs that differ only in seed and target train as one
vmapped program split over the devices (nca.multiseed.group_key), other configs one
program each. OUT/job.json lists the runs, OUT/summary.csv their final losses.

Many processes (docs/distributed.md): the same command once per process with --coordinator
HOST:PORT --num-processes N --process-id I (or --distributed on SLURM); each trains and
scores every N-th run, process 0 writes the summary and the results table.
"""


def read_configs(path: Path) -> list[dict]:
    """--configs FILE: a non-empty JSON list of objects of config fields (dashes or
    underscores) -> a list of override dicts; anything else is one ``NCAError`` line."""
    import json

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise NCAError(f"cannot read --configs {path}: {e}") from None
    if not isinstance(doc, list) or not doc or not all(isinstance(c, dict) for c in doc):
        raise NCAError(f"--configs {path} must hold a non-empty JSON list of objects of config fields")
    return [{k.replace("-", "_"): v for k, v in c.items()} for c in doc]


def check_flags(a, overrides: dict) -> None:
    """One ``NCAError`` line for each combination of flags that cannot run together."""
    reading = a.resume or a.score_only
    if a.resume and a.score_only:
        raise NCAError("give --resume (train what is left, then score) or --score-only, not both")
    if reading and (a.preset or a.vary or a.configs or overrides):
        raise NCAError("--resume and --score-only use the sweep's saved configs (OUT/job.json); "
                       "drop --preset, --vary, --configs and config flags")
    if a.vary and a.configs:
        raise NCAError("give a grid (--vary) or a list of configs (--configs), not both")


def sweep_from(a, overrides: dict):
    """The ``nca.sweep.Sweep`` a new sweep trains (None with --resume or --score-only)."""
    if a.resume or a.score_only:
        return None
    from .config import preset
    from .sweep import Sweep, parse_axis

    configs = tuple(read_configs(a.configs)) if a.configs is not None else ()
    base = preset(a.preset or "quick", **overrides)
    return Sweep(base, tuple(parse_axis(v) for v in (a.vary or [])), configs, tuple(a.seeds))


def main(a, scoring) -> int:
    """Run ``scripts/sweep.py`` with its parsed flags ``a`` and the scores of ``scoring``
    (``analysis.reports.sweep``: ScoreSettings, score_job, to_csv, to_html); -> the exit code."""
    from contextlib import ExitStack

    from .checkpoint import check_writable
    from .cli import claim_report_dir
    from .config import overrides_from_args
    from .distributed import SINGLE, cluster_from_args, initialize
    from .parallel import use_cpu_cores

    overrides = overrides_from_args(a)
    check_flags(a, overrides)
    cluster = cluster_from_args(a)
    scores = scoring.ScoreSettings(grow_steps=a.grow_steps, persist_steps=a.persist_steps, regrow_steps=a.regrow_steps,
                           replicates=a.replicates, seed=a.seed)
    results_dir = a.results or a.out
    check_writable(results_dir, folder=True)  # before any training
    sweep = sweep_from(a, overrides)
    use_cpu_cores()  # before anything starts JAX
    job = SINGLE if cluster is None else initialize(cluster)
    claims = ExitStack()
    if a.results is not None and job.is_main:  # a report folder of its own: never over foreign files
        claims.enter_context(claim_report_dir(a.results, "sweep", {"sweep": str(a.out), **vars(scores)}))
    with claims:
        train(a, sweep, job)
        return score(a, scoring, scores, results_dir, job)


def train(a, sweep, job) -> None:
    """Continue the sweep in --out (--resume), train a new one, or nothing (--score-only)."""
    if a.resume:
        from .multiseed import resume_runs

        resume_runs(a.out, progress=not a.quiet, job=job)
    elif sweep is not None:
        from .sweep import expand, train_sweep

        names, _, _ = expand(sweep)
        print(f"sweep of {len(names)} runs -> {a.out}" + (f" (process {job.index} of {job.count})"
                                                        if job.distributed else ""))
        train_sweep(sweep, a.out, progress=not a.quiet, job=job)


def score(a, scoring, scores, results_dir: Path, job) -> int:
    """Score this process's runs; process 0 writes results.csv/.html and prints the table."""
    from .checkpoint import atomic_write_bytes

    score_job, to_csv, to_html = scoring.score_job, scoring.to_csv, scoring.to_html

    done = score_job(a.out, scores, job, progress=None if a.quiet else
                     (lambda name: print(f"scored {name}", file=sys.stderr)))
    if done is None:  # not process 0: it writes the table
        return 0
    atomic_write_bytes(results_dir / "results.csv", to_csv(done["table"], done["varied"]).encode())
    atomic_write_bytes(results_dir / "results.html", to_html(done["table"], done["varied"], scores).encode())
    print(to_csv(done["table"], done["varied"]), end="")
    print(f"results: {results_dir / 'results.csv'}, {results_dir / 'results.html'}", file=sys.stderr)
    return 0

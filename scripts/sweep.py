"""Train a sweep of configs x seeds, then score every model: final loss, growth, persistence
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

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python scripts/sweep.py` from a clean clone
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca.cli import Parser, add_quiet, add_replicates, add_seed, nonneg_int_list, positive_int, run_cli  # noqa: E402
from nca.config import PRESETS, add_config_args, overrides_from_args  # noqa: E402
from nca.distributed import add_distributed_args, cluster_from_args  # noqa: E402


def parser() -> Parser:
    ap = Parser(description=__doc__, prog="sweep.py")
    ap.required_args.add_argument("--out", type=Path, required=True, metavar="PATH",
                                  help="sweep folder to create (or, with --resume / --score-only, to read)")
    ap.add_argument("--preset", default=None, metavar="NAME", help=f"base settings: {', '.join(PRESETS)} "
                    "(default: quick)")
    ap.add_argument("--vary", action="append", default=None, metavar="FIELD=V1,V2",
                    help="a grid axis: a config field and its comma-separated values (repeat for more axes)")
    ap.add_argument("--configs", type=Path, default=None, metavar="FILE",
                    help="a JSON list of config overrides, instead of --vary")
    ap.add_argument("--seeds", type=nonneg_int_list, default=[0], metavar="LIST",
                    help="training seeds of every config, comma-separated")
    ap.add_argument("--resume", action="store_true", help="continue the sweep in --out, then score it")
    ap.add_argument("--score-only", action="store_true", help="score the trained runs in --out; train nothing")
    ap.add_argument("--results", type=Path, default=None, metavar="DIR",
                    help="where results.csv/.html go (default: --out)")
    g = ap.add_argument_group("scores (analysis/sweep_report.py)")
    g.add_argument("--grow-steps", type=positive_int, default=200, metavar="N", help="CA steps grown from the seed")
    g.add_argument("--persist-steps", type=positive_int, default=300, metavar="N",
                   help="CA steps after growth for the persistence score")
    g.add_argument("--regrow-steps", type=positive_int, default=200, metavar="N",
                   help="CA steps of regrowth after the left half is cut away")
    add_replicates(g, default=4)
    add_seed(g)
    add_quiet(ap)
    add_config_args(ap, skip=("seed",))
    add_distributed_args(ap)
    return ap


def main() -> int:
    a = parser().parse_args()
    from nca.errors import NCAError

    overrides = overrides_from_args(a)
    reading = a.resume or a.score_only
    if a.resume and a.score_only:
        raise NCAError("give --resume (train what is left, then score) or --score-only, not both")
    if reading and (a.preset or a.vary or a.configs or overrides):
        raise NCAError("--resume and --score-only use the sweep's saved configs (OUT/job.json); "
                       "drop --preset, --vary, --configs and config flags")
    if a.vary and a.configs:
        raise NCAError("give a grid (--vary) or a list of configs (--configs), not both")
    cluster = cluster_from_args(a)

    from analysis.sweep_report import ScoreSettings

    scores = ScoreSettings(grow_steps=a.grow_steps, persist_steps=a.persist_steps, regrow_steps=a.regrow_steps,
                           replicates=a.replicates, seed=a.seed)
    results_dir = a.results or a.out
    from nca.checkpoint import check_writable

    check_writable(results_dir, folder=True)  # before any training
    sweep = None
    if not reading:
        from nca.config import preset
        from nca.sweep import Sweep, parse_axis

        configs = ()
        if a.configs is not None:
            configs = tuple(_read_configs(a.configs))
        base = preset(a.preset or "quick", **overrides)
        sweep = Sweep(base, tuple(parse_axis(v) for v in (a.vary or [])), configs, tuple(a.seeds))

    from nca.parallel import use_cpu_cores  # before anything starts JAX

    use_cpu_cores()
    from nca.distributed import SINGLE, initialize

    job = SINGLE if cluster is None else initialize(cluster)
    from contextlib import ExitStack

    from nca.cli import claim_report_dir

    claims = ExitStack()
    if a.results is not None and job.is_main:  # a report folder of its own: never over foreign files
        claims.enter_context(claim_report_dir(a.results, "sweep", {"sweep": str(a.out), **vars(scores)}))
    with claims:
        return _run(a, sweep, scores, results_dir, job)


def _run(a, sweep, scores, results_dir: Path, job) -> int:
    if a.resume:
        from nca.multiseed import resume_runs

        resume_runs(a.out, progress=not a.quiet, job=job)
    elif sweep is not None:
        from nca.sweep import expand, train_sweep

        names, _, _ = expand(sweep)
        print(f"sweep of {len(names)} runs -> {a.out}" + (f" (process {job.index} of {job.count})"
                                                        if job.distributed else ""))
        train_sweep(sweep, a.out, progress=not a.quiet, job=job)

    from analysis.sweep_report import score_job, to_csv, to_html
    from nca.checkpoint import atomic_write_bytes

    done = score_job(a.out, scores, job, progress=None if a.quiet else
                     (lambda name: print(f"scored {name}", file=sys.stderr)))
    if done is None:  # not process 0: it writes the table
        return 0
    atomic_write_bytes(results_dir / "results.csv", to_csv(done["table"], done["varied"]).encode())
    atomic_write_bytes(results_dir / "results.html", to_html(done["table"], done["varied"], scores).encode())
    print(to_csv(done["table"], done["varied"]), end="")
    print(f"results: {results_dir / 'results.csv'}, {results_dir / 'results.html'}", file=sys.stderr)
    return 0


def _read_configs(path: Path) -> list[dict]:
    import json

    from nca.errors import NCAError

    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise NCAError(f"cannot read --configs {path}: {e}") from None
    if not isinstance(doc, list) or not doc or not all(isinstance(c, dict) for c in doc):
        raise NCAError(f"--configs {path} must hold a non-empty JSON list of objects of config fields")
    return [{k.replace("-", "_"): v for k, v in c.items()} for c in doc]


if __name__ == "__main__":
    run_cli(main)

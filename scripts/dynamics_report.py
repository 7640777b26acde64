"""Training dynamics: how the rule comes to be, across the checkpoints kept along training
(``checkpoints/step_*.msgpack``, kept by default by scripts/train.py), for one run or
several (the seeds of a --seeds run: curves with 95 % bands over seeds).

    python scripts/dynamics_report.py runs/lizard --out reports/dyn
    python scripts/dynamics_report.py runs/q5/seed_* --out reports/dyn5 --no-knockouts

Per run: sharp transitions of the dense training-loss curve (metrics.csv; a smooth spline
background against a sharp step, BIC, profile-likelihood interval: analysis.development.dynamics),
the learning-rate changes beside them. Per kept checkpoint: growth, persistence and
regeneration losses (the grokking analogue: do the abilities appear suddenly, after the
loss has flattened?), weight norm and distance from the initialisation, positional probes
(when do the cells first know where they are?), each final principal component tracked in
a common basis (the final model's PCA: when does it first appear?), the own-PCA axis
measures and the channel knockouts. Writes DIR/report.json (keys in docs/development.md
and docs/interventions.md), DIR/index.html and the figures as DIR/*.png.
"""

import shlex
import sys
from pathlib import Path

from nca import cli


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("runs", nargs="+", type=Path, help="run directories with kept checkpoints")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    p.add_argument("--steps", type=cli.positive_int, default=None, metavar="N",
                   help="growth steps measured (default: the run's rollout_max)")
    p.add_argument("--long", type=cli.positive_int, default=None, metavar="N",
                   help="persistence horizon in CA steps (default: 3 x --steps)")
    p.add_argument("--regrow", type=cli.positive_int, default=None, metavar="N",
                   help="CA steps of regrowth after cutting the grown body's left half (default: --steps)")
    p.add_argument("--components", type=cli.positive_int, default=4, metavar="N",
                   help="PCs measured and tracked per checkpoint")
    cli.add_replicates(p, 3)
    p.add_argument("--pairs", action="store_true", help="also all double knockouts (redundancy, epistasis)")
    p.add_argument("--no-knockouts", action="store_true", help="skip the channel knockouts (the slowest part)")
    p.add_argument("--null", type=cli.nonneg_int, default=0, metavar="N",
                   help="test each final component's map at every checkpoint against the spatial null of issue 13 "
                        "with N surrogates (analysis.representation.axis_null; 0: no test, 99 or 199 for a test)")
    p.add_argument("--max-checkpoints", type=cli.positive_int, default=None, metavar="N",
                   help="use at most N kept checkpoints per run (log-spread)")
    cli.add_seed(p)
    cli.add_quiet(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    from analysis.reports import dynamics as DR
    from analysis.reports.html import run_report

    s = DR.DynamicsReportSettings(
        runs=tuple(a.runs), steps=a.steps, long=a.long, regrow=a.regrow, components=a.components,
        replicates=a.replicates, pairs=a.pairs, knockouts=not a.no_knockouts, null=a.null,
        max_checkpoints=a.max_checkpoints, seed=a.seed,
        command="python scripts/dynamics_report.py " + " ".join(shlex.quote(x) for x in argv))
    DR.preflight(s)  # bad runs: one line, nothing written
    return run_report(DR, s, a, "dynamics_report")


if __name__ == "__main__":
    cli.run_cli(main)

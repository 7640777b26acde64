"""Dissect a model in one command: the PCA/axis report plus a growth-and-regrowth animation.

    python scripts/dissect.py                                   # the published persistent lizard
    python scripts/dissect.py distill:butterfly/regenerating --out reports/butterfly
    python scripts/dissect.py runs/lizard --out reports/my-lizard

Writes DIR/index.html + DIR/report.json + figures (analysis.reports.pca: every component's
axis measures tested against a spatial null, intervals over --replicates rollouts; lighter
than scripts/pca_report.py's defaults, for speed: steps 100 and 200 analysed, emergence every
10 steps, 200 steps of regrowth, one rotation, no model comparison) and
DIR/growth.gif: the organism beside its first two principal-component maps (the report's
pooled PCA), growing from the seed, cut in half at step 200 and regrowing (scripts/animate.py).
"""

import shlex
import sys
from pathlib import Path

from nca import cli


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = cli.Parser(description=__doc__)
    ap.add_argument("model", nargs="?", default="distill:lizard/persistent", help="run directory or published name")
    cli.add_out(ap, "output folder (default: reports/<model>/, e.g. reports/lizard-persistent/)", required=False)
    cli.add_seed(ap, 0)
    cli.add_replicates(ap, 5)
    cli.add_quiet(ap)
    a = ap.parse_args(argv)
    from analysis.reports import dissect as DS
    from analysis.reports import pca as pca_report
    from analysis.reports.figure_pool import FigurePool

    if a.out is None:  # one folder per model: a second model's report never lands on the first's
        a.out = Path("reports") / DS.model_slug(a.model)
    # The figures are drawn in a second process beside the analysis (analysis.reports.figure_pool),
    # started first so that its imports overlap this process's own.
    with FigurePool(1) as figures:
        s = DS.settings(a.model, a.seed, a.replicates, "python scripts/dissect.py " + shlex.join(argv))
        pca_report.preflight(s)  # bad settings or model name: one line, nothing written
        with cli.claim_report_dir(a.out, "dissect", a):  # another model's report, or files not ours: refused
            result = DS.run_into(s, a.out, a.quiet, figures)
    for line in pca_report.summary_lines(result):  # results: stdout (progress bars: stderr)
        print(line)
    print(f"open {a.out / 'index.html'} (report) and {a.out / 'growth.gif'} (growth, cut at step 200, regrowth)")
    return 0


if __name__ == "__main__":
    cli.run_cli(main)

"""PCA of a Growing NCA's cell states: axis components tested against a spatial null, with
intervals over replicate rollouts; emergence, rotation, comparison.

    python scripts/pca_report.py distill:lizard/persistent --out reports/lizard
    python scripts/pca_report.py runs/lizard --out r --steps 200 --at 60,120,200 --replicates 8
    python scripts/pca_report.py distill:lizard/regenerating --out r --features mlp --standardize

Writes DIR/report.json (every number; keys in docs/pca.md), DIR/index.html (one
self-contained page) and the figures as DIR/*.png. Step t is the state after t CA steps.
"""

import sys

from nca.cli import run_cli


def build_parser():
    from nca import cli

    ap = cli.Parser(description=__doc__)
    ap.add_argument("model", help="run directory or published name (distill:lizard/persistent)")
    cli.add_out(ap, "output folder (created; checked before computing)")
    ap.add_argument("--steps", type=cli.positive_int, default=None, metavar="N",
                    help="number of CA steps to run (default: the largest of --at, or 200)")
    ap.add_argument("--at", type=cli.int_list, default=None, metavar="LIST",
                    help="comma-separated steps to analyse (default: 1/4, 1/2, 3/4 and all of --steps)")
    cli.add_replicates(ap, 5)
    cli.add_seed(ap, 0)
    ap.add_argument("--size", type=cli.positive_int, default=None, help="grid size (default: the training grid)")
    ap.add_argument("--features", default="hidden", choices=["hidden", "state", "perception", "mlp"],
                    help="hidden: 12 hidden channels; state: all 16; perception: 48 perception "
                         "features; mlp: 128 hidden-layer activations")
    ap.add_argument("--components", type=cli.positive_int, default=6, help="PCs to keep")
    ap.add_argument("--standardize", action="store_true", help="scale each feature to unit variance first")
    ap.add_argument("--per-step", action="store_true", help="fit one PCA per analysed step instead of pooling")
    cli.add_every(ap, 5, "emergence curves: keep one measurement every N CA steps")
    ap.add_argument("--regrow", type=cli.nonneg_int, default=100,
                    help="after the rollout, damage the body (a disc) and regrow this many steps; 0: no damage")
    ap.add_argument("--rotations", type=cli.or_empty(cli.float_list), default="45,90,180", metavar="LIST",
                    help="comma-separated perception rotations (deg) for the rotation test; '' to skip")
    ap.add_argument("--compare", type=cli.or_empty(cli.str_list), default=None, metavar="LIST",
                    help="comma-separated models to compare with (default: the other experiments of a published "
                         "emoji; '' for none); a second seed of MODEL is always compared")
    ap.add_argument("--surrogates", type=cli.positive_int, default=999,
                    help="the most spatial-null surrogates per map (a sequential test stops early for a clearly "
                         "non-significant map; the smallest p is 1/(N+1))")
    ap.add_argument("--bootstrap", type=cli.positive_int, default=100, help="bootstrap draws per direction interval")
    ap.add_argument("--alpha", type=float, default=0.05,
                    help="significance level of a kind, Holm-corrected over a body's components")
    ap.add_argument("--min-agreement", type=float, default=0.8,
                    help="fraction of replicates that must give the same kind")
    cli.add_quiet(ap)
    return ap


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    from analysis.reports.figure_pool import FigurePool

    # The figures are drawn in a second process beside the analysis (analysis.reports.figure_pool),
    # started first so that its imports overlap this process's own.
    with FigurePool(1) as figures:
        from analysis.reports import pca as pca_report
        from analysis.reports.html import run_report

        settings = pca_report.settings_from_args(a, argv)
        pca_report.preflight(settings)  # bad settings or model names: one line, nothing written
        return run_report(pca_report, settings, a, "pca_report", figures=figures)


if __name__ == "__main__":
    run_cli(main)

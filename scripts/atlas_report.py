"""A cell atlas of an NCA (issue 27): cell types by Leiden clustering with their stability
across fire-mask replicates (and across models, when several are given) against a
channel-shuffled and an untrained-rule null; marker channels with effect sizes; the types on
the body; Moran's I per channel and neighbourhood enrichment; diffusion pseudotime from the
seed cell against the true step; which type derives from which after a cut.

    python scripts/atlas_report.py distill:lizard/regenerating --out reports/atlas
    python scripts/atlas_report.py runs/a runs/b --out reports/atlas2

Writes DIR/report.json (keys in docs/atlas.md), DIR/index.html and DIR/*.png; the summary
lines go to stdout, progress to stderr. Needs the [atlas] extra: pip install -e '.[atlas]'.
"""

import shlex
import sys

from nca import cli


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("models", nargs="+", help="run directories or published names (distill:lizard/regenerating)")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    cli.add_steps(p, 96, "growth steps: the atlas is the living cells of the last step")
    cli.add_every(p, 4, "frames kept every N steps for the pseudotime and the regrowth")
    cli.add_replicates(p, 3)
    p.add_argument("--resolution", type=float, default=1.0, help="Leiden resolution")
    p.add_argument("--neighbors", type=cli.positive_int, default=15, metavar="K", help="k of the kNN graphs")
    p.add_argument("--clusters", type=cli.positive_int, default=None, metavar="N",
                   help="force N types (the resolution is bisected) instead of --resolution")
    p.add_argument("--permutations", type=cli.positive_int, default=999, metavar="N",
                   help="permutations of the Moran's I and enrichment tests")
    p.add_argument("--null-draws", type=cli.positive_int, default=19, metavar="N",
                   help="channel shuffles (the null): the modularity's permutation p")
    p.add_argument("--cut", default="left", choices=["left", "right", "top", "bottom", "square"],
                   help="the damage before regrowth (nca.damage.Cut)")
    p.add_argument("--regrow", type=cli.nonneg_int, default=48, metavar="N", help="regrowth steps (0: no damage)")
    p.add_argument("--max-cells", type=cli.positive_int, default=2500, metavar="N",
                   help="cells per replicate in the pseudotime (subsampled)")
    cli.add_seed(p)
    p.add_argument("--size", type=cli.positive_int, default=None, metavar="N", help="grid size (default: the model's)")
    cli.add_quiet(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    from analysis.representation import atlas
    from analysis.reports import atlas as R
    from analysis.reports.html import wrote_line

    atlas.require()  # a missing extra is one line, before any computing
    s = R.AtlasSettings(steps=a.steps, every=a.every, replicates=a.replicates, resolution=a.resolution,
                        neighbors=a.neighbors, clusters=a.clusters, permutations=a.permutations,
                        null_draws=a.null_draws, cut=a.cut, regrow=a.regrow, max_cells=a.max_cells, seed=a.seed,
                        size=a.size)
    settings = R.AtlasReportSettings(tuple(a.models), s, "python scripts/atlas_report.py "
                                     + " ".join(shlex.quote(x) for x in argv))
    with cli.claim_report_dir(a.out, "atlas_report", a):  # another report, or files not ours: refused
        result = R.run_with_progress(settings, a.quiet)
        R.write(result, a.out)
    for line in R.summary_lines(result):
        print(line)
    print(wrote_line(a.out, {"report": result.report, "figures": result.figures}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run_cli(main)

"""Error and attack tolerance of a Growing NCA (Albert, Jeong & Barabasi 2000): how the body
degrades in growth, persistence and regeneration as more and more parts are removed (the
update MLP's units, k = 0..128; the hidden channels), in random order (error: many draws,
a band) and worst first (attack: by single effect; greedy: re-ranked). Units are removed by
zeroing and by mean ablation. Summaries: k50 (first k with effect > 0.5), AUC and the
attack - error gap, each with n and a 95 % interval.

    python scripts/degradation_report.py distill:lizard/regenerating --out reports/deg
    python scripts/degradation_report.py distill:lizard/growing distill:lizard/persistent \\
        distill:lizard/regenerating --out reports/deg3

Writes DIR/report.json (keys in docs/degradation.md), DIR/index.html and DIR/curves_*.png;
the summary lines go to stdout, progress to stderr.
"""

import shlex
import sys

from nca import cli


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("models", nargs="+", help="run directories or published names (distill:lizard/regenerating)")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    p.add_argument("--grow", type=cli.positive_int, default=96, metavar="N", help="CA steps of the growth condition")
    p.add_argument("--persist", type=cli.positive_int, default=96, metavar="N",
                   help="CA steps with the parts removed after intact growth")
    p.add_argument("--regrow", type=cli.positive_int, default=64, metavar="N", help="CA steps of regrowth after the cut")
    p.add_argument("--cut", default="left", choices=["left", "right", "top", "bottom", "square"],
                   help="the regeneration cut (nca.damage.Cut)")
    cli.add_replicates(p, 2)
    p.add_argument("--draws", type=cli.nonneg_int, default=8, metavar="N", help="random orders (error) per curve")
    p.add_argument("--unit-ks", type=cli.nonneg_int_list, default="0,1,2,4,8,16,32,48,64,80,96,112,128",
                   metavar="LIST", help="the k grid of the unit curves (channels use every k)")
    p.add_argument("--parts", type=cli.str_list, default="units,channels,cells", metavar="LIST",
                   help="what is removed: units, channels, cells (living cells killed at random in persistence), "
                        "pcs (principal components of the hidden channels, mean-ablated; ~6x slower)")
    p.add_argument("--cell-fractions", type=cli.float_list, default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
                   metavar="LIST", help="fractions of the alive cells killed at the start of persistence")
    p.add_argument("--modes", type=cli.str_list, default="zero,mean", metavar="LIST",
                   help="removal by zeroing and/or mean ablation (the first is the default shown first)")
    p.add_argument("--channel-modes", type=cli.str_list, default="zero", metavar="LIST",
                   help="removal of hidden channels: zero and/or mean (mean runs the dense step: ~6x slower)")
    p.add_argument("--conditions", type=cli.str_list, default="growth,persistence,regeneration", metavar="LIST",
                   help="growth, persistence, regeneration")
    p.add_argument("--no-greedy", action="store_true", help="skip the greedy re-ranked attack")
    p.add_argument("--greedy-pool", type=cli.nonneg_int, default=16, metavar="N",
                   help="candidates re-ranked at each grid step of the greedy attack (0: all remaining)")
    cli.add_seed(p)
    p.add_argument("--size", type=cli.positive_int, default=None, metavar="N", help="grid size (default: the training grid)")
    p.add_argument("--chunk", type=cli.positive_int, default=16, metavar="N",
                   help="rollouts per compiled batch (padded: one program per condition)")
    cli.add_quiet(p)
    return p.parse_args(argv)


def settings_from(a, argv):
    from analysis.degradation import DegradationReportSettings, DegradationSettings

    d = DegradationSettings(grow=a.grow, persist=a.persist, regrow=a.regrow, cut=a.cut, replicates=a.replicates,
                            draws=a.draws, unit_ks=tuple(a.unit_ks), parts=tuple(a.parts), modes=tuple(a.modes),
                            channel_modes=tuple(a.channel_modes),
                            cell_fractions=tuple(a.cell_fractions),
                            conditions=tuple(a.conditions), greedy=not a.no_greedy, greedy_pool=a.greedy_pool,
                            seed=a.seed, size=a.size, chunk=a.chunk)
    return DegradationReportSettings(models=tuple(a.models), degradation=d,
                                     command="python scripts/degradation_report.py "
                                             + " ".join(shlex.quote(x) for x in argv))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    s = settings_from(a, argv)
    from analysis import degradation
    from analysis.report import wrote_line

    progress = None if a.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    with cli.claim_report_dir(a.out, "degradation_report", a):  # another report, or files not ours: refused
        result = degradation.run(s, progress)
        degradation.write(result, a.out)
    for line in degradation.summary_lines(result):
        print(line)
    print(wrote_line(a.out, {"report": result.report, "figures": result.figures}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run_cli(main)

"""Error and attack tolerance of a Growing NCA (Albert, Jeong & Barabasi 2000): how the body
degrades in growth, persistence and regeneration as more and more parts are removed (MLP
units, hidden channels, PCA directions, living cells), at random (error: many draws, a band)
and worst first (attack; greedy re-ranking). Summaries: k50, AUC, the attack - error gap,
each with n and a 95 % interval (analysis.causal.degradation; keys in docs/degradation.md).

    python scripts/degradation_report.py distill:lizard/regenerating --out reports/deg
    python scripts/degradation_report.py distill:lizard/growing distill:lizard/regenerating --out reports/deg2
"""

import shlex
import sys

from nca import cli


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("models", nargs="+", help="run directories or published names (distill:lizard/regenerating)")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    for name, default, what in (("grow", 96, "growth condition"), ("persist", 96, "persistence with the parts removed"),
                                ("regrow", 64, "regrowth after the cut")):
        p.add_argument(f"--{name}", type=cli.positive_int, default=default, metavar="N", help=f"CA steps of the {what}")
    p.add_argument("--cut", default="left", choices=["left", "right", "top", "bottom", "square"],
                   help="the regeneration cut (nca.damage.Cut)")
    cli.add_replicates(p, 2)
    p.add_argument("--draws", type=cli.nonneg_int, default=8, metavar="N", help="random orders (error) per curve")
    p.add_argument("--unit-ks", type=cli.nonneg_int_list, default=None, metavar="LIST",
                   help="the k grid of the unit curves (default: 0,1,2,4,8,16,32,...,128 scaled to the hidden width; "
                        "channels use every k)")
    p.add_argument("--parts", type=cli.str_list, default="units,channels,cells", metavar="LIST",
                   help="what is removed: units, channels, cells (killed in persistence), pcs (~6x slower)")
    p.add_argument("--cell-fractions", type=cli.float_list, default="0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
                   metavar="LIST", help="fractions of the alive cells killed at the start of persistence")
    p.add_argument("--cell-attack", type=cli.nonneg_int, default=8, metavar="N",
                   help="cells killed worst first, by N x N patches ranked by their single effect (0: random only)")
    p.add_argument("--modes", type=cli.str_list, default="zero,mean", metavar="LIST",
                   help="unit removal by zeroing and/or mean ablation (the first is shown first)")
    p.add_argument("--channel-modes", type=cli.str_list, default="zero", metavar="LIST",
                   help="hidden channel removal: zero and/or mean (mean runs the dense step: ~6x slower)")
    p.add_argument("--conditions", type=cli.str_list, default="growth,persistence,regeneration", metavar="LIST",
                   help="growth, persistence, regeneration")
    p.add_argument("--no-greedy", action="store_true", help="skip the greedy re-ranked attack")
    p.add_argument("--greedy-pool", type=cli.nonneg_int, default=16, metavar="N",
                   help="candidates re-ranked at each grid step of the greedy attack (0: all remaining)")
    cli.add_seed(p)
    p.add_argument("--size", type=cli.positive_int, default=None, metavar="N", help="grid size (default: the training grid)")
    p.add_argument("--chunk", type=cli.positive_int, default=16, metavar="N", help="rollouts per compiled batch")
    cli.add_quiet(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    from analysis.reports import degradation as D
    from analysis.reports.html import wrote_line

    s = D.report_settings(vars(a), "python scripts/degradation_report.py " + " ".join(shlex.quote(x) for x in argv))
    models = D.preflight(s)  # a bad model name: one line, nothing written
    with cli.claim_report_dir(a.out, "degradation_report", a):  # another report, or files not ours: refused
        result = D.run_with_progress(s, a.quiet, models)
        D.write(result, a.out)
    print("\n".join(D.summary_lines(result)))
    print(wrote_line(a.out, {"report": result.report, "figures": result.figures}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run_cli(main)

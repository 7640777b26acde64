"""Knockout atlas of a Growing NCA: single and double knockouts of the hidden channels (and
top PCs) in growth, persistence and regeneration; the 128 units of the update MLP and
their pairs; backups scored by buffering (relative to the double knockout) beside Segre et
al.'s scaled epistasis; self-repair after McGrath et al. 2023 (direct vs total effect, two
definitions of direct, attributed to the channels that react) at several horizons; diverged
rollouts counted at the maximal effect. Every headline number has n and a 95 % interval
over fire-mask replicates. Several models (e.g. the seeds of a --seeds run) are compared.

    python scripts/knockout_report.py distill:lizard/regenerating --out reports/ko
    python scripts/knockout_report.py runs/lizard4/seed_* --out reports/ko4 --pairs growth,regeneration

Writes DIR/report.json (every number; keys in docs/interventions.md), DIR/index.html and the
figures as DIR/*.png.
"""

import sys

from nca import cli


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("models", nargs="+", help="run directories or published names (distill:lizard/regenerating)")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    p.add_argument("--grow", type=cli.positive_int, default=160, metavar="N",
                   help="CA steps of the growth condition (knockout from the seed)")
    p.add_argument("--persist", type=cli.positive_int, default=160, metavar="N",
                   help="CA steps of knockout after intact growth")
    p.add_argument("--regrow", type=cli.positive_int, default=100, metavar="N", help="CA steps of regrowth after the cut")
    p.add_argument("--cut", default="left", choices=["left", "right", "top", "bottom", "square"],
                   help="the regeneration cut (nca.damage.Cut)")
    cli.add_replicates(p, 5)
    p.add_argument("--pcs", type=cli.nonneg_int, default=3, metavar="N",
                   help="top hidden-state PCs knocked out too (mean ablation)")
    p.add_argument("--mode", default="zero", choices=["zero", "mean"],
                   help="channel knockout: zero, or the channel's mean over alive cells of the intact run")
    p.add_argument("--pairs", type=cli.str_list, default="growth", metavar="LIST",
                   help="comma-separated conditions in which all channel pairs are knocked out "
                        "(growth, persistence, regeneration; 'none': no pairs)")
    p.add_argument("--units", default="growth", choices=["growth", "persistence", "none"],
                   help="condition of the 128 hidden-unit knockouts and their pairs ('none': skip)")
    p.add_argument("--unit-pairs", type=cli.nonneg_int, default=48, metavar="N",
                   help="unit pairs measured with the most alike output weights")
    p.add_argument("--random-unit-pairs", type=cli.nonneg_int, default=48, metavar="N",
                   help="unit pairs then drawn uniformly from all the others (all pairs when the two "
                        "reach hidden*(hidden-1)/2)")
    p.add_argument("--repair-at", type=cli.nonneg_int_list, default="5,10,20,40,60", metavar="LIST",
                   help="comma-separated horizons (CA steps after the grown state) of the self-repair "
                        "measures; '0': skip")
    p.add_argument("--no-attribution", action="store_true",
                   help="skip attributing the repair to other channels (n - 1 fewer runs per channel)")
    p.add_argument("--no-unit-attribution", action="store_true",
                   help="skip the first-order attribution of the repair to the MLP's units (3 fewer runs per channel)")
    cli.add_seed(p)
    p.add_argument("--size", type=cli.positive_int, default=None, metavar="N", help="grid size (default: the training grid)")
    p.add_argument("--chunk", type=cli.positive_int, default=16, metavar="N", help="knockouts per compiled batch (every batch is padded to N: one compiled program per condition)")
    cli.add_quiet(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    from analysis.reports import knockouts as KR
    from analysis.reports.html import run_report

    return run_report(KR, KR.settings_from_args(a, argv), a, "knockout_report")  # bad flags: one line


if __name__ == "__main__":
    cli.run_cli(main)

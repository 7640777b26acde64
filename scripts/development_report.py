"""Positional information and causal steering of a Growing NCA (issue 15).

    python scripts/development_report.py distill:lizard/regenerating --out reports/dev
    python scripts/development_report.py runs/q/seed_0 --out reports/dev_q --steps 100 --every 5
    python scripts/development_report.py distill:lizard/persistent --out r --parts positional --features mlp

How does a cell know where it is? Probes (ridge and kNN, trained on some replicates and
scored on a held-out one, with a shuffled-position control) decode each cell's position in
the grown body's frame (along the long axis, across it, distance from the centroid) from
its state at every analysed development step; the positional information in bits per
channel and per PC; steering along PC and probe directions with random directions as the
control (dose-response of the body's shift, length and loss; every direction pushed with the same norm, and a
direction is specific only outside the random directions' band); a transplant of tissue from
one end of the body to the other. Writes DIR/report.json (keys in docs/development.md),
DIR/index.html and the figures as DIR/*.png.
"""

import sys

from nca import cli


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("model", help="a run directory or a published name (distill:lizard/regenerating)")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    cli.add_steps(p, 200, "CA steps grown from the seed (positional information and steering)")
    cli.add_every(p, 10, "analyse the positional code every N CA steps")
    p.add_argument("--features", default="hidden", choices=["hidden", "state", "perception", "mlp"],
                   help="cell features the probes read")
    cli.add_replicates(p, 5)
    p.add_argument("--parts", type=cli.str_list, default="positional,steering,transplant", metavar="LIST",
                   help="comma-separated parts to run: positional, steering, transplant")
    p.add_argument("--placements", type=cli.nonneg_int, default=8, metavar="N",
                   help="held-out-placement probes over the first N of 8 placements (translated seed, rotated "
                        "perception; 0: skip, else 3..8)")
    p.add_argument("--placement-replicates", type=cli.positive_int, default=3, metavar="N",
                   help="fire-mask rollouts per placement (sigma_x uses placements x N)")
    p.add_argument("--doses", type=cli.float_list, default="-10,-5,-2.5,0,2.5,5,10", metavar="LIST",
                   help="comma-separated steering doses: the L2 norm of the total push added to each steered cell "
                        "over the window (state units, the same for every direction)")
    p.add_argument("--n-random", type=cli.positive_int, default=16, metavar="N",
                   help="random hidden directions pushed with the same norms: the control band (>= 2)")
    p.add_argument("--steer-region", choices=("all", "front", "back"), default="all",
                   help="steer all alive cells, or only the front / back half of the body (along its long axis)")
    p.add_argument("--steer-window", type=cli.nonneg_int_list, default=None, metavar="START,STOP",
                   help="CA steps [START, STOP) during which steering is applied (default: all of --steps)")
    p.add_argument("--graft-at", type=cli.positive_int, default=100, metavar="N", help="CA step of the transplant")
    p.add_argument("--after", type=cli.positive_int, default=100, metavar="N",
                   help="CA steps grown after the transplant (a multiple of --every)")
    p.add_argument("--size", type=cli.positive_int, default=None, metavar="N", help="grid size (default: the training grid)")
    cli.add_seed(p)
    cli.add_quiet(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    from analysis.reports import development as DR
    from analysis.reports.html import run_report

    return run_report(DR, DR.settings_from_args(a, argv), a, "development_report")  # bad flags: one line


if __name__ == "__main__":
    cli.run_cli(main)

"""Damage assays: a standard panel of wounds (half cut, central square, random discs,
scattered cell loss, and shapes never seen in training: a stripe and a ring) -> recovery
curves, time to recover and success rate, each with n and a 95 % interval over fire-mask
replicates, across models (seeds).

    python scripts/damage_report.py distill:lizard/regenerating --out reports/damage
    python scripts/damage_report.py distill:lizard/growing distill:lizard/persistent distill:lizard/regenerating --out r
    python scripts/damage_report.py runs/lizard4/seed_* --out reports/damage4 --damages square,stripe

Writes DIR/report.json (every number; keys in docs/interventions.md), DIR/index.html and the
figures as DIR/*.png (analysis.reports.damage).
"""

import shlex
import sys

from nca import cli

PANEL = ("cut_left", "square", "circles", "scatter", "stripe", "ring")


def parse_args(argv=None):
    p = cli.Parser(description=__doc__)
    p.add_argument("models", nargs="+", help="run directories or published names")
    cli.add_out(p, "output folder (report.json, index.html, figures)")
    p.add_argument("--grow", type=cli.positive_int, default=200, metavar="N", help="CA steps of growth before the damage")
    p.add_argument("--regrow", type=cli.positive_int, default=300, metavar="N", help="CA steps of regrowth after it")
    cli.add_replicates(p, 5)
    cli.add_every(p, 5, help="keep one loss record every N CA steps")
    p.add_argument("--damages", type=cli.str_list, default=",".join(PANEL), metavar="LIST",
                   help=f"comma-separated panel of wounds, from {', '.join(PANEL)}")
    cli.add_seed(p)
    p.add_argument("--size", type=cli.positive_int, default=None, metavar="N", help="grid size (default: the training grid)")
    cli.add_quiet(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = parse_args(argv)
    from analysis.development import damage_assays as D
    from analysis.reports import damage as DR
    from analysis.reports.html import run_report

    damage = D.DamageSettings(D.Protocol(a.grow, a.regrow, a.replicates, a.every), tuple(a.damages), a.seed, a.size)
    s = DR.DamageReportSettings(tuple(a.models), damage,
                                "python scripts/damage_report.py " + " ".join(shlex.quote(x) for x in argv))
    models = DR.preflight(s)  # a bad model name: one line, nothing written
    return run_report(DR, s, a, "damage_report", models=models)


if __name__ == "__main__":
    cli.run_cli(main)

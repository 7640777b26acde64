"""Train a sweep of configs x seeds and score every model: flags -> nca.sweep_command.
``python scripts/sweep.py --help`` lists the flags and examples (nca.sweep_command.HELP)."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python scripts/sweep.py` from a clean clone
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca.cli import Parser, add_quiet, add_replicates, add_seed, nonneg_int_list, positive_int, restart_with_huge_pages, run_cli  # noqa: E402

if __name__ == "__main__":  # before JAX starts: ~15-25 % less time per training step on a CPU
    restart_with_huge_pages()  # (nca.cli.huge_pages_environ; $NCA_HUGE_PAGES=0 keeps the process as started)

from nca.config import PRESETS, add_config_args  # noqa: E402
from nca.distributed import add_distributed_args  # noqa: E402
from nca.sweep_command import HELP  # noqa: E402


def parser() -> Parser:
    ap = Parser(description=HELP, prog="sweep.py")
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
    g = ap.add_argument_group("scores (analysis/reports/sweep.py)")
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
    from analysis.reports import sweep as scoring
    from nca import sweep_command

    return sweep_command.main(parser().parse_args(), scoring)


if __name__ == "__main__":
    run_cli(main)

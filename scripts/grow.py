"""Grow a trained or published model from the seed and save the final state: flags ->
nca.grow_command. ``python scripts/grow.py --help`` lists the flags (nca.grow_command.HELP)."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python scripts/grow.py` from a clean clone
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca.cli import Parser, add_seed, nonneg_int, positive_int, run_cli  # noqa: E402
from nca.grow_command import HELP  # noqa: E402


def parser() -> Parser:
    ap = Parser(description=HELP, prog="grow.py")
    ap.add_argument("model", nargs="?", help="run directory or published name (distill:lizard/persistent)")
    ap.required_args.add_argument("--out", type=Path, metavar="PATH",
                                  help="file to write, .npy or .png (required unless --list)")
    ap.add_argument("--steps", type=nonneg_int, default=200, metavar="N", help="number of CA steps to run")
    add_seed(ap)
    ap.add_argument("--size", type=positive_int, default=None, metavar="N",
                    help="grid size, >= 3 (default: the training grid)")
    ap.add_argument("--scale", type=positive_int, default=4, metavar="K", help="PNG upscaling (nearest)")
    ap.add_argument("--list", action="store_true", help="list the published models and exit")
    return ap


def main() -> int:
    from nca import grow_command

    return grow_command.main(parser().parse_args())


if __name__ == "__main__":
    run_cli(main)

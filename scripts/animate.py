"""Animate growth, damage and regeneration of trained or published models: flags ->
nca.animate_command. ``python scripts/animate.py --help`` lists the flags and examples."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python scripts/animate.py` from a clean clone
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca.animate_command import HELP  # noqa: E402
from nca.cli import (Parser, add_every, add_quiet, add_seed, float_list, nonneg_int,  # noqa: E402
                     nonneg_int_list, positive_float, positive_int, run_cli, str_list)


def parser() -> Parser:
    ap = Parser(description=HELP, prog="animate.py")
    ap.add_argument("models", nargs="*", metavar="MODEL",
                    help="run directory or published name (distill:lizard/regenerating); several = side by side")
    ap.required_args.add_argument("--out", type=Path, metavar="PATH", required=True,
                                  help=".gif, .mp4, or a folder (no extension) of PNG frames")
    ap.add_argument("--steps", type=nonneg_int, default=300, metavar="N", help="number of CA steps to animate")
    add_every(ap, 2)
    ap.add_argument("--fps", type=positive_float, default=20.0, help="frames per second")
    ap.add_argument("--scale", type=positive_int, default=4, metavar="K", help="integer nearest-neighbour upscaling")
    ap.add_argument("--size", type=positive_int, default=None, metavar="N",
                    help="grid size (default: the largest training grid, 72 for published models)")
    add_seed(ap)
    ap.add_argument("--seeds", type=nonneg_int_list, default=None, metavar="LIST",
                    help="comma-separated seeds shown side by side (default: --seed alone)")
    ap.add_argument("--angles", "--angle", dest="angles", type=float_list, default=[], metavar="LIST",
                    help="comma-separated rotations of the perception, degrees counter-clockwise; "
                         "several = side by side (default: each model's own)")
    ap.add_argument("--damage", action="append", default=[], metavar="STEP:x,y,r",
                    help="erase a disc after STEP (repeat the flag for several); cells, or fractions like 0.5,0.5,0.2")
    ap.add_argument("--cut", action="append", default=[], metavar="STEP:KIND",
                    help="erase a half (left|right|top|bottom) or a central square after STEP (repeatable)")
    ap.add_argument("--background", choices=("white", "checker"), default="white", help="behind transparent cells")
    ap.add_argument("--panels", type=str_list, default=["rgba"], metavar="LIST",
                    help="comma-separated panels: rgba, channel numbers (4..15 hidden) and/or principal-component "
                         "maps pc1..pc6 of the hidden channels, e.g. rgba,4,5 or rgba,pc1,pc2")
    ap.add_argument("--range", dest="channel_range", type=positive_float, default=None, metavar="R",
                    help="channel panels show [-R, R] (default: measured over the animation)")
    ap.add_argument("--cols", type=positive_int, default=None, metavar="N", help="tiles per row (default: one row)")
    ap.add_argument("--no-counter", dest="counter", action="store_false", help="no step counter on the frames")
    ap.add_argument("--chunk", dest="chunk_frames", type=positive_int, default=None, metavar="N",
                    help="frames per device chunk (default: as many as fit 32 MiB)")
    add_quiet(ap)
    return ap


def main() -> int:
    from analysis.representation.panels import register as register_pc_panels
    from nca import animate_command

    register_pc_panels()  # the pc1..pc6 panels (analysis): nca does not import analysis
    return animate_command.main(parser().parse_args(), sys.argv[1:])


if __name__ == "__main__":
    run_cli(main)

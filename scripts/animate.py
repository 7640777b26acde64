"""Animate growth, damage and regeneration of trained or published models.

    python scripts/animate.py distill:lizard/regenerating --out growth.gif
    python scripts/animate.py distill:lizard/regenerating --steps 400 --cut 200:left --out regen.gif
    python scripts/animate.py distill:lizard/regenerating --damage 150:0.5,0.4,0.2 --out hole.mp4
    python scripts/animate.py distill:lizard/growing distill:lizard/persistent \\
        distill:lizard/regenerating --out ex123.gif          # models side by side
    python scripts/animate.py distill:lizard/regenerating --angles 0,45,90 --out angles.gif
    python scripts/animate.py runs/lizard --panels rgba,4,5,6 --seed 0,1 --out frames/
    python scripts/animate.py distill:lizard/persistent --panels rgba,pc1,pc2 --out pcs.gif

The output format follows --out: .gif, .mp4 (imageio-ffmpeg's bundled ffmpeg), or a path
without extension = a folder of PNG frames. Settings and seeds go to <out>.json.
Damage units: x,y,r are grid cells (x = column from the left, y = row from the top),
or fractions of the grid when all three are <= 1 and one has a decimal point.
"""

import argparse
import shlex
import sys
from pathlib import Path

from nca.cli import run_cli


def _numbers(kind, what):
    def parse(text):
        try:
            values = tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a comma-separated list of numbers, got {text!r}")
        if not values:
            raise argparse.ArgumentTypeError(f"{what} is empty")
        return values

    return parse


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line through run_cli, like every other bad input
        from nca.errors import NCAError

        raise NCAError(f"{message} (see --help)")


def main() -> int:
    ap = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", metavar="MODEL",
                    help="run directory or published name (distill:lizard/regenerating); several = side by side")
    ap.add_argument("--out", type=Path, help=".gif, .mp4, or a folder (no extension) of PNG frames")
    ap.add_argument("--steps", type=int, default=300, help="CA steps to animate (default 300)")
    ap.add_argument("--every", type=int, default=2, help="keep every k-th step as a frame (default 2)")
    ap.add_argument("--fps", type=float, default=20.0, help="frames per second (default 20)")
    ap.add_argument("--scale", type=int, default=4, help="integer nearest-neighbour upscaling (default 4)")
    ap.add_argument("--size", type=int, default=None, help="grid size (default: the training grid, 72)")
    ap.add_argument("--seed", "--seeds", dest="seeds", type=_numbers(int, "--seed"), default=(0,),
                    help="PRNG seed(s) of the stochastic updates; 0,1,2 = side by side (default 0)")
    ap.add_argument("--angle", "--angles", dest="angles", type=_numbers(float, "--angle"), default=(),
                    help="rotate the perception by DEG (counter-clockwise); 0,45,90 = side by side")
    ap.add_argument("--damage", action="append", default=[], metavar="STEP:x,y,r",
                    help="erase a disc after STEP (repeatable); cells, or fractions like 0.5,0.5,0.2")
    ap.add_argument("--cut", action="append", default=[], metavar="STEP:KIND",
                    help="erase a half (left|right|top|bottom) or a central square after STEP")
    ap.add_argument("--background", choices=("white", "checker"), default="white")
    ap.add_argument("--panels", default="rgba",
                    help="comma list: rgba, channel numbers (4..15 hidden) and/or principal-component "
                         "maps pc1..pc6 of the hidden channels, e.g. rgba,4,5 or rgba,pc1,pc2")
    ap.add_argument("--range", dest="channel_range", type=float, default=None,
                    help="channel panels show [-R, R] (default: measured over the animation)")
    ap.add_argument("--cols", type=int, default=None, help="tiles per row (default: one row)")
    ap.add_argument("--no-counter", dest="counter", action="store_false", help="no step counter")
    ap.add_argument("--chunk", dest="chunk_frames", type=int, default=None,
                    help="frames per device chunk (default: as many as fit 32 MiB)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args()

    from tqdm import tqdm

    from analysis.panels import register as register_pc_panels
    from nca.animate import Animation, export, parse_cut, parse_damage, sidecar_path
    from nca.errors import NCAError

    register_pc_panels()
    if not a.models or a.out is None:
        raise NCAError("give MODEL(s) and --out FILE (.gif, .mp4, or a folder for PNG frames)")
    damage = tuple(parse_damage(s) for s in a.damage) + tuple(parse_cut(s) for s in a.cut)
    anim = Animation(
        models=tuple(a.models), seeds=a.seeds, angles=a.angles, steps=a.steps, every=a.every,
        fps=a.fps, scale=a.scale, size=a.size, background=a.background,
        damage=tuple(sorted(damage, key=lambda d: d.step)), panels=tuple(a.panels.split(",")),
        channel_range=a.channel_range, counter=a.counter, cols=a.cols, chunk_frames=a.chunk_frames,
    )

    def bar(desc, total):
        return tqdm(total=total, desc=desc, unit="step", disable=a.quiet, file=sys.stderr)

    command = shlex.join(["python", "scripts/animate.py", *sys.argv[1:]])
    meta = export(anim, a.out, progress=bar, command=command)
    o = meta["output"]
    print(f"wrote {o['frames']} frames of {o['width']}x{o['height']} to {a.out} "
          f"(settings: {sidecar_path(a.out)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)

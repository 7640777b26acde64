"""Animate growth, damage and regeneration of trained or published models.

    python scripts/animate.py distill:lizard/regenerating --out growth.gif
    python scripts/animate.py distill:lizard/regenerating --steps 400 --cut 200:left --out regen.gif
    python scripts/animate.py distill:lizard/regenerating --damage 150:0.5,0.4,0.2 --out hole.mp4
    python scripts/animate.py distill:lizard/growing distill:lizard/persistent \\
        distill:lizard/regenerating --out ex123.gif          # models side by side
    python scripts/animate.py distill:lizard/regenerating --angles 0,45,90 --out angles.gif
    python scripts/animate.py runs/lizard --panels rgba,4,5,6 --seeds 0,1 --out frames/
    python scripts/animate.py distill:lizard/persistent --panels rgba,pc1,pc2 --out pcs.gif

The output format follows --out: .gif, .mp4 (imageio-ffmpeg's bundled ffmpeg), or a path
without extension = a folder of PNG frames. Settings and seeds go to <out>.json.
Damage units: x,y,r are grid cells (x = column from the left, y = row from the top),
or fractions of the grid when all three are <= 1 and one has a decimal point.
"""

import re
import shlex
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python scripts/animate.py` from a clean clone
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca.cli import (Parser, add_every, add_quiet, add_seed, float_list, nonneg_int,  # noqa: E402
                     nonneg_int_list, positive_int, run_cli, str_list)

# The library's messages name Animation fields; here they are the flags that set them.
FLAGS = {"steps": "--steps", "every": "--every", "fps": "--fps", "scale": "--scale", "size": "--size",
         "background": "--background", "channel_range": "--range", "cols": "--cols",
         "chunk_frames": "--chunk", "seeds": "--seeds", "damage": "--damage", "cut": "--cut",
         "panels": "--panels", "output": "--out", "angles": "--angles"}


def as_flags(message: str) -> str:
    return re.sub(r"^(bad )?(\w+)", lambda m: (m.group(1) or "") + FLAGS.get(m.group(2), m.group(2)), message)


def positive_float(text: str) -> float:
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def parser() -> Parser:
    ap = Parser(description=__doc__, prog="animate.py")
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
    a = parser().parse_args()

    from nca.errors import NCAError

    if not a.models:
        raise NCAError("give MODEL(s) and --out FILE (.gif, .mp4, or a folder for PNG frames)")
    if a.seeds is not None and a.seed != 0:
        raise NCAError("give --seed (one) or --seeds (a list), not both")
    seeds = tuple(a.seeds) if a.seeds is not None else (a.seed,)

    from tqdm import tqdm

    from analysis.panels import register as register_pc_panels
    from nca.animate import Animation, export, parse_cut, parse_damage, sidecar_path

    register_pc_panels()
    try:
        damage = tuple(parse_damage(s) for s in a.damage) + tuple(parse_cut(s) for s in a.cut)
        anim = Animation(
            models=tuple(a.models), seeds=seeds, angles=tuple(a.angles), steps=a.steps, every=a.every,
            fps=a.fps, scale=a.scale, size=a.size, background=a.background,
            damage=tuple(sorted(damage, key=lambda d: d.step)), panels=tuple(a.panels),
            channel_range=a.channel_range, counter=a.counter, cols=a.cols, chunk_frames=a.chunk_frames,
        )

        def bar(desc, total):
            return tqdm(total=total, desc=desc, unit="step", disable=a.quiet, file=sys.stderr)

        command = shlex.join(["python", "scripts/animate.py", *sys.argv[1:]])
        meta = export(anim, a.out, progress=bar, command=command)
    except NCAError as e:
        raise NCAError(as_flags(str(e))) from None
    o = meta["output"]
    print(f"wrote {o['frames']} frames of {o['width']}x{o['height']} to {a.out} "
          f"(settings: {sidecar_path(a.out)})")  # the result: stdout (progress bars: stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)

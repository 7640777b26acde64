"""The pipeline behind ``scripts/animate.py`` (``nca-animate``): flags -> a checked
``nca.animate.Animation`` -> ``nca.animate.export`` (.gif, .mp4 or a folder of PNG frames,
with the settings beside it in <out>.json).

``main(args)`` builds the animation; the library's messages name ``Animation`` fields, and
here they name the flags that set them (``as_flags``). The result line goes to stdout,
progress bars to stderr.
"""

from __future__ import annotations

import re
import shlex
import sys

from .errors import NCAError

HELP = """Animate growth, damage and regeneration of trained or published models.

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

# The library's messages name Animation fields; here they are the flags that set them.
FLAGS = {"steps": "--steps", "every": "--every", "fps": "--fps", "scale": "--scale", "size": "--size",
         "background": "--background", "channel_range": "--range", "cols": "--cols",
         "chunk_frames": "--chunk", "seeds": "--seeds", "damage": "--damage", "cut": "--cut",
         "panels": "--panels", "output": "--out", "angles": "--angles"}


def as_flags(message: str) -> str:
    """A library message that starts with an ``Animation`` field -> the same with its flag."""
    return re.sub(r"^(bad )?(\w+)", lambda m: (m.group(1) or "") + FLAGS.get(m.group(2), m.group(2)), message)


def animation_from(a):
    """The ``nca.animate.Animation`` the flags ``a`` describe (damage sorted by step)."""
    from .animate import Animation, parse_cut, parse_damage

    if not a.models:
        raise NCAError("give MODEL(s) and --out FILE (.gif, .mp4, or a folder for PNG frames)")
    if a.seeds is not None and a.seed != 0:
        raise NCAError("give --seed (one) or --seeds (a list), not both")
    seeds = tuple(a.seeds) if a.seeds is not None else (a.seed,)
    damage = tuple(parse_damage(s) for s in a.damage) + tuple(parse_cut(s) for s in a.cut)
    return Animation(
        models=tuple(a.models), seeds=seeds, angles=tuple(a.angles), steps=a.steps, every=a.every,
        fps=a.fps, scale=a.scale, size=a.size, background=a.background,
        damage=tuple(sorted(damage, key=lambda d: d.step)), panels=tuple(a.panels),
        channel_range=a.channel_range, counter=a.counter, cols=a.cols, chunk_frames=a.chunk_frames,
    )


def main(a, argv: list[str]) -> int:
    """Run ``scripts/animate.py`` with its parsed flags ``a`` (``argv``: the command line,
    recorded in <out>.json); -> the exit code."""
    from tqdm import tqdm

    from .animate import export, sidecar_path

    def bar(desc, total):
        return tqdm(total=total, desc=desc, unit="step", disable=a.quiet, file=sys.stderr)

    try:
        anim = animation_from(a)
        meta = export(anim, a.out, progress=bar, command=shlex.join(["python", "scripts/animate.py", *argv]))
    except NCAError as e:
        raise NCAError(as_flags(str(e))) from None
    o = meta["output"]
    print(f"wrote {o['frames']} frames of {o['width']}x{o['height']} to {a.out} "
          f"(settings: {sidecar_path(a.out)})")  # the result: stdout (progress bars: stderr)
    return 0

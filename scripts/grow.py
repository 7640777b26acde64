"""Grow a trained or published model from the seed and save the final state.

    python scripts/grow.py distill:lizard/regenerating --steps 200 --out lizard.png
    python scripts/grow.py runs/lizard --steps 500 --size 96 --seed 1 --out state.npy
    python scripts/grow.py --list                       # the 31 published models

.npy: all channels, [H, W, C] float32. .png: the RGBA picture composited on white.
"""

import argparse
import sys
from pathlib import Path

from nca.cli import run_cli


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", help="run directory or published name (distill:lizard/persistent)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="PRNG seed of the stochastic updates")
    ap.add_argument("--size", type=int, default=None, help="grid size (default: the training grid)")
    ap.add_argument("--scale", type=int, default=4, help="PNG upscaling (nearest)")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--list", action="store_true", help="list the published models")
    a = ap.parse_args()

    import jax
    import numpy as np
    from PIL import Image

    import nca
    from nca.errors import NCAError

    if a.list:
        print("\n".join(nca.published_names()))
        return 0
    if not a.model or not a.out:
        raise NCAError("give MODEL and --out FILE (.npy or .png); --list shows the published models")
    if a.out.suffix not in (".npy", ".png"):
        raise NCAError(f"--out must end in .npy or .png, got {a.out.name!r}")
    if a.steps < 0:
        raise NCAError("--steps must be >= 0")
    model = nca.load_model(a.model)
    x, _ = nca.grow(model, a.steps, jax.random.key(a.seed), size=a.size, record=())
    x = np.asarray(x, np.float32)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    if a.out.suffix == ".npy":
        np.save(a.out, x)
    else:
        rgb = np.asarray(nca.to_rgb(x))
        img = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))
        img.resize((img.width * a.scale, img.height * a.scale), Image.NEAREST).save(a.out)
    alive = float((x[..., 3] > 0.1).mean())
    print(f"grew {model.name} for {a.steps} steps (seed {a.seed}) on {x.shape[0]}x{x.shape[1]}: "
          f"{alive:.1%} of cells alive -> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)

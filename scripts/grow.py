"""Grow a trained or published model from the seed and save the final state.

    python scripts/grow.py distill:lizard/regenerating --steps 200 --out lizard.png
    python scripts/grow.py runs/lizard --steps 500 --size 96 --seed 1 --out state.npy
    python scripts/grow.py --list                       # the 31 published models

.npy: all channels, [H, W, C] float32. .png: the RGBA picture composited on white.
The output is written atomically (a failed write leaves an existing file as it was), and
--out is checked for writability before growing.
"""

import io
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python scripts/grow.py` from a clean clone
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca.cli import Parser, add_seed, nonneg_int, positive_int, run_cli  # noqa: E402


def parser() -> Parser:
    ap = Parser(description=__doc__, prog="grow.py")
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
    a = parser().parse_args()

    from nca.checkpoint import atomic_write_bytes, check_writable
    from nca.errors import NCAError

    if a.list:
        import nca

        print("\n".join(nca.published_names()))
        return 0
    if not a.model or not a.out:
        raise NCAError("give MODEL and --out FILE (.npy or .png); --list shows the published models")
    if a.out.suffix not in (".npy", ".png"):
        raise NCAError(f"--out must end in .npy or .png, got {a.out.name!r}")
    if a.seed >= 2**32:  # jax.random.key keeps 32 bits: a larger seed would repeat a smaller one
        raise NCAError(f"--seed must be < 2**32, got {a.seed}")
    if a.scale > 64:
        raise NCAError(f"--scale must be 1..64, got {a.scale}")
    if a.size is not None and a.size < 3:
        raise NCAError(f"--size must be >= 3, got {a.size}")
    check_writable(a.out)  # before any computing

    import jax
    import numpy as np
    from PIL import Image

    import nca

    try:
        model = nca.load_model(a.model)
    except NCAError as e:
        raise NCAError(str(e).replace("nca.published_names() lists", "grow.py --list lists")) from None
    if a.out.suffix == ".png":  # the upscaled picture, before growing
        from nca.errors import check_fits

        side = (a.size or model.grid_size) * a.scale
        check_fits(side * side * 3 * 3, f"a {side}x{side} PNG", "use a smaller --size or --scale")
    # The seed's key is the rollout's fire-mask key itself, as in animate.py and nca.grow's
    # examples: the same --seed grows the same body in every script.
    x, _ = nca.grow(model, a.steps, jax.random.key(a.seed), size=a.size, record=())
    x = np.asarray(x, np.float32)
    buf = io.BytesIO()
    if a.out.suffix == ".npy":
        np.save(buf, x)
    else:
        rgb = np.asarray(nca.to_rgb(x))
        img = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))
        img.resize((img.width * a.scale, img.height * a.scale), Image.NEAREST).save(buf, format="PNG")
    atomic_write_bytes(a.out, buf.getvalue())
    alive = float((x[..., 3] > 0.1).mean())
    print(f"grew {model.name} for {a.steps} steps (seed {a.seed}) on {x.shape[0]}x{x.shape[1]}: "
          f"{alive:.1%} of cells alive -> {a.out}")  # the result: stdout
    return 0


if __name__ == "__main__":
    run_cli(main)

"""The pipeline behind ``scripts/grow.py`` (``nca-grow``): flags -> checks -> ``nca.grow`` ->
the final state written atomically as .npy (all channels) or .png (RGBA on white).

``main(args)`` checks the flags (one ``NCAError`` line each, before any computing), grows
and writes; the result line goes to stdout.
"""

from __future__ import annotations

import io

import numpy as np

from .errors import NCAError

HELP = """Grow a trained or published model from the seed and save the final state.

    python scripts/grow.py distill:lizard/regenerating --steps 200 --out lizard.png
    python scripts/grow.py runs/lizard --steps 500 --size 96 --seed 1 --out state.npy
    python scripts/grow.py --list                       # the 31 published models

.npy: all channels, [H, W, C] float32. .png: the RGBA picture composited on white.
The output is written atomically (a failed write leaves an existing file as it was), and
--out is checked for writability before growing.
"""


def check_flags(a) -> None:
    """One ``NCAError`` line for a missing or impossible flag; --out is checked writable."""
    from .checkpoint import check_writable

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


def encode(x: np.ndarray, suffix: str, scale: int) -> bytes:
    """The file's bytes: x [H, W, C] float32 as .npy, or its RGBA composited on white,
    upscaled ``scale`` times (nearest), as .png."""
    from PIL import Image

    from . import to_rgb

    buf = io.BytesIO()
    if suffix == ".npy":
        np.save(buf, x)
    else:
        rgb = np.asarray(to_rgb(x))
        img = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))
        img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def main(a) -> int:
    """Run ``scripts/grow.py`` with its parsed flags ``a``; -> the exit code."""
    if a.list:
        from . import published_names

        print("\n".join(published_names()))
        return 0
    check_flags(a)

    import jax

    import nca

    from .checkpoint import atomic_write_bytes

    try:
        model = nca.load_model(a.model)
    except NCAError as e:
        raise NCAError(str(e).replace("nca.published_names() lists", "grow.py --list lists")) from None
    if a.out.suffix == ".png":  # the upscaled picture, before growing
        from .errors import check_fits

        side = (a.size or model.grid_size) * a.scale
        check_fits(side * side * 3 * 3, f"a {side}x{side} PNG", "use a smaller --size or --scale")
    # The seed's key is the rollout's fire-mask key itself, as in animate.py and nca.grow's
    # examples: the same --seed grows the same body in every script.
    x, _ = nca.grow(model, a.steps, jax.random.key(a.seed), size=a.size, record=())
    x = np.asarray(x, np.float32)
    atomic_write_bytes(a.out, encode(x, a.out.suffix, a.scale))
    alive = float((x[..., 3] > 0.1).mean())
    print(f"grew {model.name} for {a.steps} steps (seed {a.seed}) on {x.shape[0]}x{x.shape[1]}: "
          f"{alive:.1%} of cells alive -> {a.out}")  # the result: stdout
    return 0

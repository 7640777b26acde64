"""The 31 models published with the Distill article (CC-BY 4.0), addressable by name.

``distill:lizard/regenerating`` is ``ex3_lizard_u1f98e.json``: experiment 1 = growing,
2 = persistent, 3 = regenerating. The demo's file format (see
``assets/distill_models/README.md``) quantises each dense layer to uint8 with a bias row.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from .errors import NCAError
from .model import ModelConfig, Params

MODEL_DIR = Path(__file__).parent / "assets" / "distill_models"
EXPERIMENTS = ("growing", "persistent", "regenerating")
PREFIX = "distill:"

# Sign of the demo's Sobel bands relative to ours. Measured, not assumed: with the raw
# weights (sign +1 on both bands) the persistent lizard grows upright (MSE 0.0002 to the
# 2020 target after 200 steps); negating the y band grows it upside-down, negating the x
# band grows its mirror image, negating both rotates it by 180 degrees (MSE 0.006-0.008 to
# the matching flipped target). tests/test_published.py keeps checking this.
DEMO_SOBEL_X_SIGN = 1.0
DEMO_SOBEL_Y_SIGN = 1.0


def _files() -> dict[str, Path]:
    out = {}
    for f in sorted(MODEL_DIR.glob("ex*.json")):
        ex, rest = f.stem.split("_", 1)
        name = rest.rsplit("_u", 1)[0] if "_u1f" in rest else rest
        out[f"{PREFIX}{name}/{EXPERIMENTS[int(ex[2]) - 1]}"] = f
    return out


def published_names() -> list[str]:
    """All 31 names, e.g. ``distill:lizard/regenerating``."""
    return list(_files())


def target_of(name: str) -> str | None:
    """The bundled target a published model learned (2020 drawings where we have them;
    today's Noto drawing otherwise). None for the planarian, whose image is not shipped."""
    emoji = name[len(PREFIX):].split("/")[0]
    if emoji == "planarian":
        return None
    return {"lizard": "lizard-2020", "butterfly": "butterfly-2020"}.get(emoji, emoji)


def decode_layer(layer: dict) -> tuple[np.ndarray, np.ndarray]:
    """One quantised dense layer -> (weights [in, out], bias [out]) float32."""
    n_in, n_out = int(layer["in_ch"]), int(layer["out_ch"])
    raw = np.frombuffer(base64.b64decode(layer["data_b64"]), np.uint8)
    if raw.size != (n_in + 1) * n_out:
        raise ValueError(f"layer has {raw.size} bytes, expected {(n_in + 1) * n_out}")
    q = raw.reshape(n_in + 1, n_out).astype(np.float32) / 255.0 - 0.5
    return q[:n_in] * float(layer["weight_scale"]), q[n_in] * float(layer["bias_scale"])


def load_demo_json(path: Path, name: str | None = None) -> tuple[ModelConfig, Params]:
    """A model in the Distill demo's JSON format (what the article's notebook exports and
    the bundled models are): ``[layer1, layer2]``, each quantised to uint8 with a bias row.
    The channel count and hidden width are read from the layers."""
    name = name or str(path)
    try:
        layers = json.loads(Path(path).read_text())
        w1, b1 = decode_layer(layers[0])
        w2, b2 = decode_layer(layers[1])
    except Exception as e:
        raise NCAError(f"model file {path} is not a readable Distill demo export: {e}") from None
    channels, hidden = w2.shape[1], w2.shape[0]
    if w1.shape != (3 * channels, hidden) or channels < 4:
        raise NCAError(f"model {name} has shapes {w1.shape}, {w2.shape}: layer 1 must read 3 x the "
                       "channels layer 2 writes (>= 4), and write what layer 2 reads")
    cfg = ModelConfig(channels=channels, hidden=hidden)
    w1 = w1.copy()
    w1[cfg.channels : 2 * cfg.channels] *= DEMO_SOBEL_X_SIGN
    w1[2 * cfg.channels :] *= DEMO_SOBEL_Y_SIGN
    params = {"w1": jnp.asarray(w1), "b1": jnp.asarray(b1), "w2": jnp.asarray(w2), "b2": jnp.asarray(b2)}
    return cfg, params


def closest_name(name: str, names) -> str | None:
    """The published name a typo most likely meant, or None: the emoji and the experiment
    are matched each on its own (difflib ratio >= 0.75), so a shared ``distill:`` and
    ``/regenerating`` never make an unrelated emoji look close (docs/validation/house.md:
    150/151 one-edit typos get the right name, none a wrong one; 0/60 unpublished emoji get a
    suggestion: python bench/typo_names.py)."""
    import difflib

    parts = {}
    for n in names:
        emoji, _, experiment = n[len(PREFIX):].partition("/")
        parts.setdefault(emoji, set()).add(experiment)
    emoji, _, experiment = name[len(PREFIX):].partition("/") if name.startswith(PREFIX) else ("", "", "")
    best = difflib.get_close_matches(emoji, sorted(parts), n=1, cutoff=0.75)
    if not best:
        return None
    kinds = sorted(parts[best[0]])
    exp = experiment if experiment in kinds else (difflib.get_close_matches(experiment, kinds, n=1, cutoff=0.6) or [None])[0]
    return f"{PREFIX}{best[0]}/{exp}" if exp else None


def load_published(name: str) -> tuple[ModelConfig, Params]:
    """Load a published model by name -> (ModelConfig(), params)."""
    files = _files()
    if name not in files:
        close = closest_name(name, files)
        hint = f"did you mean {close!r}? " if close else ""
        raise NCAError(
            f"unknown published model {name!r}; {hint}names look like 'distill:lizard/regenerating' "
            f"(nca.published_names() lists all {len(files)})"
        )
    cfg, params = load_demo_json(files[name], name)
    if cfg != ModelConfig():
        raise NCAError(f"published model {name} has unexpected shapes {params['w1'].shape}, {params['w2'].shape}")
    return cfg, params

"""The texture NCA models (Niklasson, Mordvintsev, Randazzo & Levin, "Self-Organising
Textures", Distill 2021; ``self_organising_systems/texture_ca/data/models.json`` in
google-research/self-organising-systems): our own reader.

File (written by their ``export_models.py`` for their WebGL demo ``ca.js``):
``{"model_names": [...], "layers": [layer0, layer1]}``, one entry per dense layer holding
*every* model. A layer is ``{"scale", "data", "shape": [in + 1, out], "quant_scale_zero",
"layout": [lw, lh]}``: ``data`` is a ``data:image/PNG;base64`` RGBA image of ``lh x lw``
tiles, model ``m`` at tile row ``m // lw``, column ``m % lw``; a tile is ``in + 1`` rows
(input feature, the last row the bias) by ``ceil(out / 4)`` pixels whose RGBA are four
outputs. A weight is ``(byte - 127) / 255 * scale`` (8-bit, one scale per layer over all
models).

Their CA (``texture_ca/ca.py``, and ``ca.js`` for the demo), as a ModelConfig:

- 12 channels, RGB the first three shown as ``x / 2 + 0.5``; there is **no alpha and no
  alive masking** (``life="none"``), and growth starts from an all-zero grid
  (``seed_pattern="zeros"``): the biases and the random cell updates break the symmetry;
- perception per channel ``[identity, Sobel_x / 8, Sobel_y / 8, lap]`` with ``lap =
  [[1,2,1],[2,-12,2],[1,2,1]] / 8`` (twice our ``LAPLACIAN``: the Laplacian rows of w1 are
  doubled here) on a torus (``padding="circular"``); the file's rows are in band order
  (``export_models.py`` rearranges the training's interleaved ``c*4 + k`` to ``k*C + c``);
- the training ran fake-quantised (``q = 2``): perception clipped to [-2, 2], hidden
  activations to [0, 2], the update to [-2, 2] (``saturation=2``) and the state to [-2, 2]
  (``clamp=2``; cells start at 0, so only updated cells can leave the range);
- a cell fires where ``uniform <= 0.5``.

Not reproduced: the 8-bit rounding of every stage (the training's ``fake_quant``; the demo
stores states, perception and hidden activations in 8-bit textures); we compute in float32.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from ..checkpoint import read_json
from ..errors import NCAError
from ..model import ModelConfig

ASSET = Path(__file__).resolve().parent.parent / "assets" / "texture" / "models.json"
PREFIX = "texture:"
FILTERS = 4  # identity, Sobel x, Sobel y, Laplacian per channel
Q = 2.0  # their cfg.texture_ca.q: the fake-quantisation range


def is_texture(obj) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("model_names"), list)
            and isinstance(obj.get("layers"), list))


def _load(path: Path) -> dict:
    return read_json(path, is_texture, "is not a texture NCA models file (model_names and layers)")


def _png(layer: dict, where) -> np.ndarray:
    """The layer's image as uint8 [rows, cols, 4]."""
    from PIL import Image

    data = str(layer.get("data", ""))
    head, _, b64 = data.partition(",")
    if not head.lower().startswith("data:image/png;base64"):
        raise NCAError(f"{where}: layer data is not a base64 PNG data URL")
    try:
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.load()
    except Exception as e:
        raise NCAError(f"{where}: cannot decode the layer PNG ({type(e).__name__}: {e})") from None
    if img.mode != "RGBA":
        raise NCAError(f"{where}: layer PNG is {img.mode}, expected RGBA")
    return np.asarray(img, np.uint8)


def _tile(layer: dict, index: int, n_models: int, where) -> np.ndarray:
    """Model ``index``'s tile of one layer as bytes, [in + 1, 4 * ceil(out / 4)] uint8."""
    try:
        rows, out = (int(v) for v in layer["shape"])
        lw, lh = (int(v) for v in layer["layout"])
    except (KeyError, TypeError, ValueError):
        raise NCAError(f"{where}: a layer needs shape [in + 1, out] and layout [lw, lh]") from None
    if lw * lh < n_models:
        raise NCAError(f"{where}: layout {lw}x{lh} has fewer tiles than the {n_models} model names")
    img = _png(layer, where)
    tw = -(-out // 4)
    if img.shape[:2] != (rows * lh, tw * lw):
        raise NCAError(f"{where}: layer PNG is {img.shape[1]}x{img.shape[0]}, its shape {[rows, out]} and layout "
                       f"{[lw, lh]} need {tw * lw}x{rows * lh}")
    r, c = divmod(index, lw)
    return img[r * rows:(r + 1) * rows, c * tw:(c + 1) * tw].reshape(rows, tw * 4)


def model_names(path: Path = ASSET) -> list[str]:
    """The names in a models file, short form (``dots`` for ``texture/models/dots``)."""
    return [n.rsplit("/", 1)[-1] for n in _load(path)["model_names"]]


def _index(obj: dict, model, where) -> int:
    names = [str(n) for n in obj["model_names"]]
    short = [n.rsplit("/", 1)[-1] for n in names]
    if model is None:
        if len(names) == 1:
            return 0
        raise NCAError(f"{where} holds {len(names)} texture models: choose one with model= (e.g. "
                       f"{where}@model={short[0]}); names: {', '.join(short[:8])}{' ...' if len(short) > 8 else ''}")
    model = str(model)
    for pool in (names, short):
        if model in pool:
            return pool.index(model)
    raise NCAError(f"{where} has no texture model {model!r}; names: {', '.join(short[:8])}"
                   f"{' ...' if len(short) > 8 else ''} ({len(short)} in all)")


def read_texture(path: Path = ASSET, model: str | None = None):
    """One model of a texture NCA models file -> (ModelConfig, params as NumPy, provenance).

    model: its name (``dots`` or ``texture/models/dots``); may be omitted when the file
    holds one model."""
    path = Path(path)
    obj = _load(path)
    idx = _index(obj, model, path)
    layers = obj["layers"]
    if len(layers) != 2:
        raise NCAError(f"{path}: expected 2 dense layers (perception -> hidden -> update), found {len(layers)}")
    n = len(obj["model_names"])
    weights = []
    for i, layer in enumerate(layers):
        tile = _tile(layer, idx, n, f"{path} layer {i}")
        try:
            scale = float(layer["scale"])
        except (KeyError, TypeError, ValueError):
            raise NCAError(f"{path} layer {i}: no numeric scale") from None
        out = int(layer["shape"][1])
        weights.append(((tile.astype(np.float32) - 127.0) / 255.0 * np.float32(scale))[:, :out])
    (l1, l2) = weights
    hidden, channels = l1.shape[1], l2.shape[1]
    if l1.shape[0] != FILTERS * channels + 1 or l2.shape[0] != hidden + 1:
        raise NCAError(f"{path}: layer shapes {list(l1.shape)} and {list(l2.shape)} disagree (layer 0 reads "
                       f"{FILTERS} filters x the {channels} channels layer 1 writes, + bias; layer 1 reads "
                       f"the {hidden} hidden units + bias)")
    if channels < 4:
        raise NCAError(f"{path}: {channels} channels; the reader needs >= 4")
    w1 = l1[:-1].copy()
    w1[3 * channels:] *= 2.0  # their Laplacian is twice ours
    cfg = ModelConfig(channels=channels, hidden=hidden, fire_rate=0.5, perception="sobel+laplacian",
                      padding="circular", life="none", seed_pattern="zeros", clamp=Q, saturation=Q)
    params = {"w1": w1, "b1": l1[-1].copy(), "w2": l2[:-1].copy(), "b2": l2[-1].copy()}
    prov = {"format": "texture-nca-models-json", "source": str(path), "model": str(obj["model_names"][idx]),
            "index": idx, "weights": "8-bit, dequantised exactly", "states": "float32 (the source: 8-bit)"}
    return cfg, params, prov


def texture_rgb(x) -> np.ndarray:
    """A texture NCA state [..., C] as their demo shows it: RGB ``x[..., :3] / 2 + 0.5``,
    clipped to [0, 1] (there is no alpha)."""
    return np.clip(np.asarray(x)[..., :3] / Q + 0.5, 0.0, 1.0)


def subset(obj: dict, names: list[str]) -> dict:
    """A models file holding only ``names`` (same layer scales, so every weight byte is
    kept exactly; tiles re-packed one row): how the bundled asset was made."""
    from PIL import Image

    idx = [_index(obj, n, "models file") for n in names]
    out = {"model_names": [obj["model_names"][i] for i in idx], "layers": []}
    for li, layer in enumerate(obj["layers"]):
        rows, cols = int(layer["shape"][0]), -(-int(layer["shape"][1]) // 4)
        tiles = [_tile(layer, i, len(obj["model_names"]), f"layer {li}").reshape(rows, cols, 4) for i in idx]
        img = np.concatenate(tiles, axis=1)
        buf = io.BytesIO()
        Image.fromarray(img, "RGBA").save(buf, format="PNG")
        out["layers"].append({**{k: v for k, v in layer.items() if k != "data"},
                              "data": "data:image/PNG;base64," + base64.b64encode(buf.getvalue()).decode("ascii"),
                              "layout": [len(idx), 1]})
    return out


__all__ = ["ASSET", "PREFIX", "is_texture", "read_texture", "model_names", "texture_rgb", "subset"]

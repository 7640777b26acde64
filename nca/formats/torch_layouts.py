"""PyTorch state_dicts of the common Growing-NCA layouts -> our params.

Two layouts are known (``LAYOUTS``); both are the article's CA (Mordvintsev et al., Distill
2020) written in PyTorch, differing in how the per-cell MLP is stored:

- ``torch-linear``: ``fc0 = nn.Linear(3C, hidden)``, ``fc1 = nn.Linear(hidden, C)``
  (``fc1.bias`` optional). The common public reproduction transposes the state *inside* the
  update (``x.transpose(1, 3)`` of an NHWC batch gives ``[B, C, W, H]``), so its first
  Sobel band, ``dx = outer([1,2,1], [-1,0,1]) / 8`` applied in that frame, differentiates
  along image *rows*: it is our ``d/dy``. Default ``transposed=True``.
- ``torch-conv``: ``w0 = nn.Conv2d(3C, hidden, 1)``, ``w1 = nn.Conv2d(hidden, C, 1)``
  (``w1.bias`` optional; ``w1``/``w2`` naming accepted too) on an NCHW state, not
  transposed. Default ``transposed=False``.

``nn.Linear`` and ``nn.Conv2d`` store weights ``[out, in]`` (``[out, in, 1, 1]``) and compute
``x @ W.T + b``; our ``w1`` is ``[in, out]``, so the weights are transposed. The source's
perception features are ``[identity (C), band1 (C), band2 (C)]`` (``feature_order="band"``,
``torch.cat`` of the three filtered copies) or per channel ``[c0: id, k1, k2, c1: ...]``
(``"interleaved"``, a depthwise conv with 3 filters per channel); its Sobel kernels are
scaled by ``sobel_scale`` (1/8 in the reproductions; 1 in unnormalised ones).

Which source band is our d/dx, and with which sign, is a *variant* (``Variant``): the 8
choices are the 8 symmetries of the square acting on what grows. ``nca.formats.orient``
checks them against a target or the source's own step rather than trusting the default.

Fire convention: the reproductions fire a cell when ``rand > fire_rate`` (probability
``1 - fire_rate``), the article when ``rand <= fire_rate``; ``fire="above"`` / ``"below"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NCAError
from ..model import ModelConfig

FEATURE_ORDERS = ("band", "interleaved")
FIRE_CONVENTIONS = ("below", "above")


@dataclass(frozen=True)
class Layout:
    """How a source stores the CA. transposed: the source's first gradient band is our d/dy
    (its frame is the transpose of ours); fire: "above" fires with probability 1 - rate."""

    name: str
    transposed: bool
    feature_order: str = "band"
    sobel_scale: float = 0.125
    fire: str = "above"

    def __post_init__(self):
        if self.feature_order not in FEATURE_ORDERS:
            raise NCAError(f"feature_order must be one of {', '.join(FEATURE_ORDERS)}, got {self.feature_order!r}")
        if self.fire not in FIRE_CONVENTIONS:
            raise NCAError(f"fire must be one of {', '.join(FIRE_CONVENTIONS)}, got {self.fire!r}")
        if not self.sobel_scale > 0:
            raise NCAError(f"sobel_scale must be > 0, got {self.sobel_scale!r}")


LAYOUTS = {
    "torch-linear": Layout("torch-linear", transposed=True),
    "torch-conv": Layout("torch-conv", transposed=False),
}

# (first layer, second layer) key stems of each layout, most specific first.
_STEMS = {"torch-linear": [("fc0", "fc1")], "torch-conv": [("w1", "w2"), ("w0", "w1")]}


@dataclass(frozen=True)
class Variant:
    """Which source gradient band is our d/dx (``swap``: the second one) and the signs each
    of our bands gets. The identity variant of an untransposed source is (False, 1, 1)."""

    swap: bool
    sign_x: int = 1
    sign_y: int = 1

    def __str__(self):
        return f"{'swap' if self.swap else 'keep'}({self.sign_x:+d},{self.sign_y:+d})"


VARIANTS = tuple(Variant(sw, sx, sy) for sw in (False, True) for sx in (1, -1) for sy in (1, -1))


def default_variant(layout: Layout) -> Variant:
    return Variant(layout.transposed, 1, 1)


def _strip(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        for pre in ("module.", "model.", "_orig_mod."):
            if k.startswith(pre):
                k = k[len(pre):]
        out[k] = np.asarray(v)
    return out


def detect_layout(sd: dict) -> str:
    """The layout whose keys ``sd`` holds; NCAError naming the keys found and the layouts known."""
    keys = set(_strip(sd))
    for name, stems in _STEMS.items():
        for a, b in stems:
            if {f"{a}.weight", f"{a}.bias", f"{b}.weight"} <= keys:
                return name
    raise NCAError(f"unknown state_dict layout: found keys {sorted(keys)[:12]}; known layouts: "
                   + "; ".join(f"{n} ({', '.join(f'{a}.weight/{a}.bias/{b}.weight[/{b}.bias]' for a, b in s)})"
                               for n, s in _STEMS.items()))


@dataclass(frozen=True)
class SourceWeights:
    """The source's MLP, our orientation: w1 [3C, hidden] rows in *source* feature order
    (band order, source kernel scale), b1 [hidden], w2 [hidden, C], b2 [C]."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    has_output_bias: bool = True


def source_weights(sd: dict, layout: Layout) -> SourceWeights:
    """Pull the MLP out of a state_dict, checking every shape against the others."""
    sd = _strip(sd)
    for a, b in _STEMS[layout.name]:
        if f"{a}.weight" in sd and f"{b}.weight" in sd:
            break
    else:
        raise NCAError(f"state_dict has no {layout.name} keys: found {sorted(sd)[:12]}")
    w1, b1, w2 = sd[f"{a}.weight"], sd.get(f"{a}.bias"), sd[f"{b}.weight"]
    b2 = sd.get(f"{b}.bias")
    conv = layout.name == "torch-conv"
    for key, w in ((f"{a}.weight", w1), (f"{b}.weight", w2)):
        want = 4 if conv else 2
        if w.ndim != want or (conv and w.shape[2:] != (1, 1)):
            raise NCAError(f"{key} has shape {w.shape}; {layout.name} expects "
                           + ("[out, in, 1, 1] (a 1x1 nn.Conv2d)" if conv else "[out, in] (nn.Linear)"))
    w1, w2 = w1.reshape(w1.shape[:2]), w2.reshape(w2.shape[:2])
    hidden, n_in = w1.shape
    channels = w2.shape[0]
    if n_in != 3 * channels:
        raise NCAError(f"{a}.weight reads {n_in} features but {b}.weight writes {channels} channels: "
                       f"a Sobel-perception NCA reads 3 x channels = {3 * channels}")
    if w2.shape[1] != hidden:
        raise NCAError(f"{b}.weight reads {w2.shape[1]} hidden units but {a}.weight makes {hidden}")
    if b1 is None or b1.shape != (hidden,):
        raise NCAError(f"{a}.bias must have shape ({hidden},), got {None if b1 is None else b1.shape}")
    if b2 is not None and b2.shape != (channels,):
        raise NCAError(f"{b}.bias must have shape ({channels},), got {b2.shape}")
    if channels < 4:
        raise NCAError(f"{b}.weight writes {channels} channels; an NCA needs >= 4 (RGBA + hidden)")
    w1 = w1.T.astype(np.float32)
    if layout.feature_order == "interleaved":  # source feature c*3 + k -> band order k*C + c
        w1 = w1.reshape(channels, 3, hidden).transpose(1, 0, 2).reshape(3 * channels, hidden)
    has_b2 = b2 is not None
    b2 = np.zeros(channels, np.float32) if b2 is None else b2.astype(np.float32)
    return SourceWeights(w1, b1.astype(np.float32), w2.T.astype(np.float32), b2, has_b2)


def to_params(src: SourceWeights, layout: Layout, variant: Variant) -> dict:
    """Our params for one variant: the source's gradient bands placed (and signed) as our
    d/dx and d/dy bands, its kernel scale folded into the weights (ours is 1/8)."""
    c = src.w2.shape[1]
    ident, band1, band2 = src.w1[:c], src.w1[c:2 * c], src.w1[2 * c:]
    scale = np.float32(layout.sobel_scale * 8.0)  # source feature = scale x our feature
    bx, by = (band2, band1) if variant.swap else (band1, band2)
    w1 = np.concatenate([ident, variant.sign_x * scale * bx, variant.sign_y * scale * by]).astype(np.float32)
    return {"w1": w1, "b1": src.b1, "w2": src.w2, "b2": src.b2}


def from_params(params: dict, layout: Layout, variant: Variant, with_b2: bool = True) -> dict:
    """The inverse of ``to_params`` as a state_dict of ``layout`` (NumPy arrays): what a
    PyTorch user of that layout would have saved. For tests and round trips."""
    w1 = np.asarray(params["w1"], np.float32)
    c = w1.shape[0] // 3
    scale = np.float32(layout.sobel_scale * 8.0)
    ident, bx, by = w1[:c], w1[c:2 * c] / (variant.sign_x * scale), w1[2 * c:] / (variant.sign_y * scale)
    band1, band2 = (by, bx) if variant.swap else (bx, by)
    src = np.concatenate([ident, band1, band2])  # [3C, hidden], band order
    hidden = src.shape[1]
    if layout.feature_order == "interleaved":
        src = src.reshape(3, c, hidden).transpose(1, 0, 2).reshape(3 * c, hidden)
    a, b = ("w0", "w1") if layout.name == "torch-conv" else ("fc0", "fc1")
    fc0, fc1 = src.T.copy(), np.asarray(params["w2"], np.float32).T.copy()
    if layout.name == "torch-conv":
        fc0, fc1 = fc0[:, :, None, None], fc1[:, :, None, None]
    sd = {f"{a}.weight": fc0, f"{a}.bias": np.asarray(params["b1"], np.float32).copy(), f"{b}.weight": fc1}
    if with_b2:
        sd[f"{b}.bias"] = np.asarray(params["b2"], np.float32).copy()
    return sd


def model_config(src: SourceWeights, layout: Layout, fire_rate: float) -> ModelConfig:
    """Our ModelConfig for the source: its widths, and its fire rate as our probability."""
    if not 0.0 <= fire_rate < 1.0 if layout.fire == "above" else not 0.0 < fire_rate <= 1.0:
        raise NCAError(f"fire_rate {fire_rate!r} is outside the {layout.fire!r} convention's range")
    p = 1.0 - fire_rate if layout.fire == "above" else fire_rate
    return ModelConfig(channels=src.w2.shape[1], hidden=src.w2.shape[0], fire_rate=float(p))

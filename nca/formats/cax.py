"""CAX's Growing NCA parameters (CAX, "Cellular Automata Accelerated in JAX", Faldor & Cully
2024; the 0.3 API: a ``ConvPerceive`` + ``NCAUpdate`` system): our own reader.

Source: the system's ``nnx.state`` as a flat dict of arrays (``{"perceive.conv.kernel": ...,
"update.layers.0.kernel": ..., "update.layers.0.bias": ..., "update.layers.1.kernel": ...,
"update.layers.1.bias": ...}``; ``/`` separators accepted), or an ``.npz`` of it.

CAX's conventions, each folded into our params (docs/importing.md):

- **channels**: the alive channel is the *last* (``state[..., -1:]``) and RGBA the last four;
  ours are the first four. Channel ``k`` of ours is CAX's ``PERM[k]`` (``cax_to_ours``).
- **perception**: a depthwise ``nnx.Conv`` (``feature_group_count = C``), kernel
  ``[3, 3, 1, 3C]``, output feature ``3c + k`` (interleaved). The growing example sets the
  filters to ``identity_kernel`` and ``grad_kernel`` (L1-normalised Sobel); ``grad_kernel``'s
  first filter differentiates along axis 0 (rows): it is our **d/dy**. The filters are read
  and matched against +-our Sobel pair (any positive scale, folded in); learned filters that
  are not the same identity + Sobel pair for every channel are refused.
- **update**: ``nnx.Conv`` 1x1 layers (ReLU between), then ``nnx.Dropout(rate)`` on the
  update: in training mode a cell updates with probability ``1 - rate`` and its update is
  scaled by ``1 / (1 - rate)`` (``dropout="train"``, the default: our fire_rate = 1 - rate and
  the scale folded into w2, b2); ``dropout="eval"``: every cell updates, unscaled (fire_rate 1).
  ``step_size`` multiplies the update. Alive masking: 3x3 max-pool of alpha > threshold
  before and after, as ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import NCAError
from ..model import SOBEL_X, SOBEL_Y, ModelConfig

KEYS = ("perceive.conv.kernel", "update.layers.0.kernel", "update.layers.0.bias",
        "update.layers.1.kernel", "update.layers.1.bias")


def perm(channels: int) -> np.ndarray:
    """Our channel k is CAX channel perm[k]: RGBA are CAX's last four."""
    return np.concatenate([np.arange(channels - 4, channels), np.arange(channels - 4)])


def cax_to_ours(x: np.ndarray) -> np.ndarray:
    """A CAX state [..., C] (alpha last) in our channel order (alpha channel 3)."""
    return np.asarray(x)[..., perm(x.shape[-1])]


def ours_to_cax(x: np.ndarray) -> np.ndarray:
    return np.asarray(x)[..., np.argsort(perm(x.shape[-1]))]


def _flat(source) -> dict:
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            with np.load(path, allow_pickle=False) as z:
                source = {k: z[k] for k in z.files}
        except Exception as e:
            raise NCAError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None
    if not isinstance(source, dict):
        raise NCAError(f"CAX source must be a path or a dict of arrays, got {type(source).__name__}")
    out = {}
    for k, v in source.items():
        key = str(k).replace("/", ".")
        for suffix in (".value", ".raw_value"):  # nnx.State leaves may be wrapped
            key = key[: -len(suffix)] if key.endswith(suffix) else key
        out[key] = np.asarray(v)
    return out


def _match(k: np.ndarray, name: str):
    """(our filter name, signed scale) with k = scale * ours, or raise."""
    for ours, ref in (("dx", SOBEL_X), ("dy", SOBEL_Y)):
        s = float(np.sum(k * ref) / np.sum(ref * ref))
        if abs(s) > 1e-8 and np.allclose(k, s * ref, atol=1e-6 * max(1.0, abs(s))):
            return ours, s
    raise NCAError(f"CAX perception filter {name} = {np.round(k, 4).tolist()} is not a multiple of a Sobel "
                   "filter (learned perception kernels are not supported)")


def read_cax(source, fire_rate_source: float = 0.5, dropout: str = "train", step_size: float = 1.0,
             alive_threshold: float = 0.1):
    """CAX Growing-NCA params -> (ModelConfig, params as NumPy, provenance).

    fire_rate_source: the ``cell_dropout_rate`` the CAX model ran with; dropout: "train" or
    "eval" (see the module docstring); step_size: the NCAUpdate's ``step_size``.
    """
    if dropout not in ("train", "eval"):
        raise NCAError(f"dropout must be 'train' or 'eval', got {dropout!r}")
    if not 0.0 <= fire_rate_source < 1.0:
        raise NCAError(f"fire_rate_source (CAX's cell_dropout_rate) must be in [0, 1), got {fire_rate_source}")
    sd = _flat(source)
    found = {k: next((v for key, v in sd.items() if key.endswith(k)), None) for k in KEYS}
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise NCAError(f"not a CAX Growing NCA state: missing {missing}; found keys {sorted(sd)[:12]}")
    kern, w1, b1, w2, b2 = (found[k] for k in KEYS)
    if w1.ndim != 4 or w1.shape[:2] != (1, 1) or w2.ndim != 4 or w2.shape[:2] != (1, 1):
        raise NCAError(f"CAX update layers must be 1x1 convolutions, got {w1.shape}, {w2.shape}")
    w1, w2 = w1[0, 0].astype(np.float32), w2[0, 0].astype(np.float32)
    hidden, channels = w2.shape
    if w1.shape != (3 * channels, hidden) or b1.shape != (hidden,) or b2.shape != (channels,):
        raise NCAError(f"CAX shapes disagree: layer 0 {w1.shape}, bias {b1.shape}, layer 1 {w2.shape}, bias "
                       f"{b2.shape} (a 3-filter perception reads 3 x {channels} features)")
    if kern.shape != (3, 3, 1, 3 * channels):
        raise NCAError(f"CAX perception kernel has shape {kern.shape}; expected (3, 3, 1, {3 * channels}) "
                       "(depthwise, 3 filters per channel)")
    filters = kern[:, :, 0, :].reshape(3, 3, channels, 3)  # [.., c, k]: output 3c + k
    if not np.allclose(filters, filters[:, :, :1, :], atol=1e-6):
        raise NCAError("CAX perception filters differ between channels (learned kernels are not supported)")
    f = filters[:, :, 0, :]
    if not np.allclose(f[..., 0], np.outer([0, 1, 0], [0, 1, 0]), atol=1e-6):
        raise NCAError("CAX's first perception filter is not the identity")
    m1, m2 = _match(f[..., 1], "1"), _match(f[..., 2], "2")
    if m1[0] == m2[0]:
        raise NCAError(f"both CAX gradient filters are {m1[0]}")
    band = w1.reshape(channels, 3, hidden).transpose(1, 0, 2)  # [k, c (CAX order), hidden]
    p = perm(channels)
    w = np.zeros((3, channels, hidden), np.float32)
    w[0] = band[0][p]
    for k, (ours, s) in ((1, m1), (2, m2)):
        w[1 if ours == "dx" else 2] = s * band[k][p]
    scale = step_size / (1.0 - fire_rate_source) if dropout == "train" else step_size
    rate = 1.0 - fire_rate_source if dropout == "train" else 1.0
    cfg = ModelConfig(channels=channels, hidden=hidden, fire_rate=rate, alive_threshold=alive_threshold)
    params = {"w1": w.reshape(3 * channels, hidden), "b1": b1.astype(np.float32),
              "w2": (w2[:, p] * scale).astype(np.float32), "b2": (b2[p] * scale).astype(np.float32)}
    prov = {"format": "cax-growing-nca", "source": str(source) if isinstance(source, (str, Path)) else None,
            "filters": {"1": f"{m1[1]:+.4g}*{m1[0]}", "2": f"{m2[1]:+.4g}*{m2[0]}"}, "dropout": dropout,
            "cell_dropout_rate": fire_rate_source, "step_size": step_size,
            "channels": "CAX alpha last -> ours channel 3 (nca.formats.cax.cax_to_ours)"}
    return cfg, params, prov

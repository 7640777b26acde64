"""TF.js graph-model JSON of the Growing NCA (the Distill 2021 articles' export, e.g. the
adversarial-reprogramming models): our own reader of the format.

A graph model is ``{"format": "graph-model", "modelTopology": {"node": [...]}, ...}``; each
node has ``name``, ``op``, ``input`` and ``attr``. Weights live in ``Const`` nodes
(``attr.value.tensor``: ``dtype``, ``tensorShape.dim[].size``, and ``tensorContent`` = base64 of
little-endian values) when ``weightsManifest`` is empty, as in these exports (weights in
separate shard files are not read here).

The CA in such a graph (the article notebook's ``CAModel``, Mordvintsev et al. 2020):
perception is ``DepthwiseConv2dNative`` of the NHWC state with per channel the filters
``[identity, cos*dx - sin*dy, sin*dx + cos*dy]`` (``angle`` a placeholder; 0 here), repeated
over channels, so features are *interleaved* (``c*3 + k``); then two 1x1 ``Conv2D`` (+ BiasAdd,
ReLU between) make the update, scaled by ``step_size`` (1); a cell fires where
``uniform <= fire_rate`` (``LessEqual``); alive masking by 3x3 max-pool of alpha > 0.1 before
and after. The gradient filters ``dx`` and ``dy`` are read from the graph and matched
against our Sobel pair (with sign and transposition), so the orientation is *read* from the
source, not assumed.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from ..checkpoint import read_json
from ..errors import NCAError
from ..model import SOBEL_X, SOBEL_Y, ModelConfig

_DTYPES = {"DT_FLOAT": "<f4", "DT_INT32": "<i4"}


def is_tfjs(obj) -> bool:
    return isinstance(obj, dict) and obj.get("format") == "graph-model" and isinstance(obj.get("modelTopology"), dict)


def _const(node: dict, where) -> np.ndarray:
    t = node["attr"]["value"]["tensor"]
    dims = [int(d.get("size", 0)) for d in t.get("tensorShape", {}).get("dim", [])]
    dtype = _DTYPES.get(t.get("dtype"))
    if dtype is None:
        raise NCAError(f"{where}: constant {node['name']} has unsupported dtype {t.get('dtype')}")
    if "tensorContent" in t:
        a = np.frombuffer(base64.b64decode(t["tensorContent"]), dtype)
    else:
        vals = t.get("floatVal") or t.get("intVal") or []
        a = np.asarray(vals, dtype)
        if a.size == 1 and np.prod(dims) > 1:
            a = np.full(int(np.prod(dims)), a[0], dtype)
    return a.reshape(dims).astype(np.float32 if dtype == "<f4" else np.int32)


def read_tfjs(path: Path):
    """A Growing-NCA graph model -> (ModelConfig, params as NumPy, provenance)."""
    path = Path(path)
    obj = read_json(path, is_tfjs, "is not a TF.js graph model (format 'graph-model' with a modelTopology)")
    if obj.get("weightsManifest"):
        raise NCAError(f"{path}: weights in separate shard files are not read (only inline constants)")
    nodes = {n["name"]: n for n in obj["modelTopology"].get("node", [])}

    def source_const(name: str) -> np.ndarray:
        """Follow Identity nodes from ``name`` to its Const."""
        seen = 0
        while nodes.get(name, {}).get("op") == "Identity" and seen < 10:
            name, seen = nodes[name]["input"][0], seen + 1
        if nodes.get(name, {}).get("op") != "Const":
            raise NCAError(f"{path}: expected a constant behind {name}")
        return _const(nodes[name], path)

    convs = [n for n in nodes.values() if n["op"] == "Conv2D"]
    if len(convs) != 2:
        raise NCAError(f"{path}: expected 2 Conv2D layers (the update MLP), found {len(convs)}")
    consumers = {i.split(":")[0]: n for n in nodes.values() for i in n.get("input", [])}
    # order the layers: the second reads (through BiasAdd and Relu) the first's output
    first = next((c for c in convs if nodes.get(c["input"][0].split(":")[0], {}).get("op") != "Relu"), None)
    if first is None:
        raise NCAError(f"{path}: cannot tell the first Conv2D layer from the second")
    second = next(c for c in convs if c is not first)
    layers = []
    for conv in (first, second):
        w = source_const(conv["input"][1])
        add = consumers.get(conv["name"])
        if w.ndim != 4 or w.shape[:2] != (1, 1) or add is None or add["op"] != "BiasAdd":
            raise NCAError(f"{path}: layer {conv['name']} is not a 1x1 Conv2D followed by BiasAdd")
        layers.append((w[0, 0], source_const(add["input"][1])))
    (w1, b1), (w2, b2) = layers
    channels, hidden = w2.shape[1], w2.shape[0]
    if w1.shape != (3 * channels, hidden) or b1.shape != (hidden,) or b2.shape != (channels,):
        raise NCAError(f"{path}: layer shapes {w1.shape}, {b1.shape}, {w2.shape}, {b2.shape} disagree")

    # the gradient filters: the Sub (kx at angle 0 = its first Mul's constant) and AddV2 (ky =
    # its second Mul's constant) feeding the Pack of [identity, kx, ky]
    pack = next((n for n in nodes.values() if n["op"] == "Pack" and len(n.get("input", [])) == 3
                 and nodes.get(n["input"][1].split(":")[0], {}).get("op") == "Sub"), None)
    if pack is None:
        raise NCAError(f"{path}: no perception filters [identity, kx, ky] found in the graph")
    ident = source_const(pack["input"][0])
    sub, add = nodes[pack["input"][1]], nodes[pack["input"][2]]
    kx = source_const(nodes[sub["input"][0]]["input"][1])
    ky = source_const(nodes[add["input"][1]]["input"][1])
    if not np.allclose(ident, np.outer([0, 1, 0], [0, 1, 0])):
        raise NCAError(f"{path}: the first perception filter is not the identity")
    # each graph filter is +-ours (dx or dy): fold the match into the weights
    ours = {"dx": SOBEL_X, "dy": SOBEL_Y}
    match = {}
    for name, k in (("kx", kx), ("ky", ky)):
        found = [(o, s) for o, ref in ours.items() for s in (1.0, -1.0) if np.allclose(k, s * ref, atol=1e-6)]
        if len(found) != 1:
            raise NCAError(f"{path}: perception filter {name} = {np.round(k, 4).tolist()} is not +-Sobel/8")
        match[name] = found[0]
    if match["kx"][0] == match["ky"][0]:
        raise NCAError(f"{path}: both gradient filters read {match['kx'][0]}")
    band = w1.reshape(channels, 3, hidden).transpose(1, 0, 2)  # interleaved -> [3, C, hidden]
    w = np.zeros((3, channels, hidden), np.float32)
    w[0] = band[0]
    for k, name in ((1, "kx"), (2, "ky")):
        ours_name, sign = match[name]
        w[1 if ours_name == "dx" else 2] = sign * band[k]
    cfg = ModelConfig(channels=channels, hidden=hidden)
    params = {"w1": w.reshape(3 * channels, hidden), "b1": b1, "w2": w2, "b2": b2}
    prov = {"format": "tfjs-graph-model", "source": str(path), "feature_order": "interleaved",
            "filters": {k: f"{'+' if s > 0 else '-'}{o}" for k, (o, s) in match.items()},
            "fire": "below", "note": "fire_rate and step_size are graph inputs: fire_rate 0.5, step_size 1 assumed"}
    return cfg, params, prov

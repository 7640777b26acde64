"""TF.js graph models (nca.formats.tfjs) on a real Distill 2021 export: the adversarial-
reprogramming "red lizard" cells (nca/assets/adversarial, Apache-2.0). Their growth in a host
lizard is NOT tested: docs/importing.md says what was measured and why it is not the
authors' picture yet.

The reference step below reads the graph's constants itself (by node name, not through our
reader) and computes the article notebook's CAModel in NumPy: depthwise perception with the
per-channel filters [identity, kx, ky] (interleaved features), two 1x1 convolutions, firing
where uniform <= fire_rate, alive masking before and after.
"""

import base64
import json
from pathlib import Path

import jax
import numpy as np
import pytest

import nca
from nca.model import step

ASSET = Path(nca.__file__).parent / "assets" / "adversarial" / "red_model_60perc.json"


def _graph_consts():
    nodes = {n["name"]: n for n in json.loads(ASSET.read_text())["modelTopology"]["node"]}

    def c(name):
        t = nodes[name]["attr"]["value"]["tensor"]
        dims = [int(d["size"]) for d in t["tensorShape"]["dim"]]
        return np.frombuffer(base64.b64decode(t["tensorContent"]), "<f4").reshape(dims).astype(np.float64)

    res = sorted(n for n in nodes if n.endswith("ReadVariableOp/resource"))  # conv2d_62, conv2d_63 (Keras order)
    kern = [n for n in res if "/Conv2D/" in n]
    bias = [n for n in res if "/BiasAdd/" in n]
    return {"ident": c("PartitionedCall/stack_1/values_0"), "kx": c("PartitionedCall/mul/y"),
            "ky": c("PartitionedCall/mul_3/y"), "w1": c(kern[0])[0, 0], "b1": c(bias[0]),
            "w2": c(kern[1])[0, 0], "b2": c(bias[1])}


def _alive(x):
    a = np.pad(x[..., 3], [(0, 0), (1, 1), (1, 1)], constant_values=-np.inf)
    h, w = x.shape[1:3]
    return (np.max([a[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0) > 0.1)[..., None]


def graph_step(g, x, fired):
    """x: [B, H, W, C] (NHWC, as the graph); fired: bool [B, H, W, 1]."""
    x = np.asarray(x, np.float64)
    p = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    h, w = x.shape[1:3]
    filt = [g["ident"], g["kx"], g["ky"]]
    # depthwise_conv2d (cross-correlation); output channel c*3 + k
    out = np.stack([sum(f[i, j] * p[:, i:i + h, j:j + w] for i in range(3) for j in range(3)) for f in filt], -1)
    y = out.reshape(*x.shape[:3], -1)
    d = np.maximum(y @ g["w1"] + g["b1"], 0) @ g["w2"] + g["b2"]
    new = x + d * fired
    return new * (_alive(x) & _alive(new))


@pytest.fixture(scope="module")
def adversary():
    return nca.load_model(ASSET)


def test_reader_reads_the_filters_and_equals_the_graph_semantics(adversary):
    assert adversary.provenance["format"] == "tfjs-graph-model"
    assert adversary.provenance["filters"] == {"kx": "+dx", "ky": "+dy"}  # read from the graph
    g = _graph_consts()
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.5, (2, 14, 17, 16)).astype(np.float32)
    x[..., 3] = np.where(rng.random((2, 14, 17)) < 0.4, rng.random((2, 14, 17)), 0.0)
    fired = rng.random((2, 14, 17, 1)) <= 0.5
    ours = np.asarray(step(adversary.params, x, jax.random.key(0), adversary.model_config, fire=fired)[0])
    assert np.max(np.abs(ours - graph_step(g, x, fired))) < 1e-5
    # control: the graph's interleaved features read as band order do not match
    w1 = np.asarray(adversary.params["w1"])
    wrong = dict(adversary.params, w1=w1.reshape(3, 16, -1).transpose(1, 0, 2).reshape(48, -1))
    bad = np.asarray(step(wrong, x, jax.random.key(0), adversary.model_config, fire=fired)[0])
    assert np.max(np.abs(bad - graph_step(g, x, fired))) > 1e-2


def test_not_a_graph_model_is_refused(tmp_path):
    from nca.formats.tfjs import read_tfjs

    (tmp_path / "m.json").write_text(json.dumps({"format": "graph-model", "modelTopology": {"node": []}}))
    with pytest.raises(nca.NCAError, match="expected 2 Conv2D layers"):
        read_tfjs(tmp_path / "m.json")

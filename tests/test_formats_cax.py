"""CAX Growing-NCA params (nca.formats.cax): a NumPy implementation of CAX's semantics (alpha
last, depthwise perception with identity + grad_kernel filters, 1x1 layers, dropout that
scales kept updates by 1/(1-rate)), and CAX itself when installed (skipped otherwise)."""

import jax
import numpy as np
import pytest

import nca
from nca.formats.cax import cax_to_ours, ours_to_cax, read_cax
from nca.model import SOBEL_X, SOBEL_Y, step

C, H = 8, 16
IDENT = np.outer([0, 1, 0], [0, 1, 0]).astype(np.float32)
# CAX's grad_kernel(2): filter 0 differentiates along axis 0 (rows), filter 1 along axis 1;
# each L1-normalised (/8). Written out here: outer([-1,0,1],[1,2,1])/8 and its transpose.
GRAD0 = np.outer([-1, 0, 1], [1, 2, 1]).astype(np.float32) / 8
GRAD1 = GRAD0.T.copy()


def _cax_params(seed=0, filters=(IDENT, GRAD0, GRAD1)):
    rng = np.random.default_rng(seed)
    k = np.stack(filters, -1)  # [3, 3, 3]
    kern = np.concatenate([k] * C, -1)[:, :, None, :]  # [3, 3, 1, 3C]: output 3c + k
    return {"perceive/conv/kernel": kern,
            "update/layers/0/kernel": rng.normal(0, 0.2, (1, 1, 3 * C, H)).astype(np.float32),
            "update/layers/0/bias": rng.normal(0, 0.1, H).astype(np.float32),
            "update/layers/1/kernel": rng.normal(0, 0.2, (1, 1, H, C)).astype(np.float32),
            "update/layers/1/bias": rng.normal(0, 0.1, C).astype(np.float32)}


def _alive(x):  # alpha = last channel
    a = np.pad(x[..., -1], [(0, 0), (1, 1), (1, 1)], constant_values=-np.inf)
    h, w = x.shape[1:3]
    return (np.max([a[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0) > 0.1)[..., None]


def cax_step(p, x, keep, rate):
    """CAX's NCA step in NumPy: x [B, H, W, C] (alpha last), keep: the dropout's kept cells."""
    x = np.asarray(x, np.float64)
    kern = p["perceive/conv/kernel"][:, :, 0, :]
    xp = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    h, w = x.shape[1:3]
    feats = np.zeros(x.shape[:3] + (3 * C,))
    for o in range(3 * C):  # grouped conv: output o reads input channel o // 3
        c = o // 3
        feats[..., o] = sum(kern[i, j, o] * xp[:, i:i + h, j:j + w, c] for i in range(3) for j in range(3))
    hdn = np.maximum(feats @ p["update/layers/0/kernel"][0, 0] + p["update/layers/0/bias"], 0)
    upd = hdn @ p["update/layers/1/kernel"][0, 0] + p["update/layers/1/bias"]
    upd = upd * keep / (1 - rate)  # nnx.Dropout in training mode
    new = x + upd
    return new * (_alive(x) & _alive(new))


def _state(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.5, (2, 11, 13, C)).astype(np.float32)
    x[..., -1] = np.where(rng.random((2, 11, 13)) < 0.4, rng.random((2, 11, 13)), 0.0)
    return x, rng.random((2, 11, 13, 1)) >= 0.5


def test_step_equals_numpy_reference_of_cax():
    p = _cax_params()
    cfg, params, prov = read_cax(p, fire_rate_source=0.5)
    assert prov["filters"] == {"1": "+1*dy", "2": "+1*dx"}  # CAX's first gradient is d/dy
    assert cfg.fire_rate == pytest.approx(0.5) and (cfg.channels, cfg.hidden) == (C, H)
    x, keep = _state()
    ours = np.asarray(step(params, cax_to_ours(x), jax.random.key(0), cfg, fire=keep)[0])
    assert np.max(np.abs(ours_to_cax(ours) - cax_step(p, x, keep, 0.5))) < 1e-5
    # controls: without the channel permutation, or without the dropout scale, it differs
    unpermuted = np.asarray(step(params, x, jax.random.key(0), cfg, fire=keep)[0])
    assert np.max(np.abs(unpermuted - cax_step(p, x, keep, 0.5))) > 1e-2
    cfg_e, params_e, _ = read_cax(p, fire_rate_source=0.5, dropout="eval")
    unscaled = np.asarray(step(params_e, cax_to_ours(x), jax.random.key(0), cfg_e, fire=keep)[0])
    assert np.max(np.abs(ours_to_cax(unscaled) - cax_step(p, x, keep, 0.5))) > 1e-2


def test_learned_or_unknown_filters_are_refused():
    p = _cax_params()
    p["perceive/conv/kernel"] = p["perceive/conv/kernel"].copy()
    p["perceive/conv/kernel"][0, 0, 0, 4] += 0.3  # channel 1's first gradient filter differs
    with pytest.raises(nca.NCAError, match="differ between channels"):
        read_cax(p)
    q = _cax_params(filters=(IDENT, GRAD0, np.ones((3, 3), np.float32)))
    with pytest.raises(nca.NCAError, match="not a multiple of a Sobel"):
        read_cax(q)
    with pytest.raises(nca.NCAError, match="missing"):
        read_cax({"conv.weight": np.zeros(3)})
    assert np.allclose(GRAD0, SOBEL_Y) and np.allclose(GRAD1, SOBEL_X)


def test_cax_itself_when_installed():
    cax = pytest.importorskip("cax")  # noqa: F841
    from flax import nnx

    from cax.core.perceive import ConvPerceive
    from cax.core.perceive.kernels import grad_kernel, identity_kernel
    from cax.core.update import NCAUpdate

    rngs = nnx.Rngs(0)
    perceive = ConvPerceive(C, 3 * C, use_bias=False, feature_group_count=C, rngs=rngs)
    kernel = np.concatenate([np.asarray(identity_kernel(2)), np.asarray(grad_kernel(2))], -1)
    perceive.conv.kernel[...] = np.concatenate([kernel] * C, -1)[:, :, None, :]  # the .value setter is deprecated in flax 0.12
    update = NCAUpdate(C, 3 * C, (H,), cell_dropout_rate=0.0, rngs=rngs)
    x, _ = _state(2)
    theirs = np.asarray(update(x, perceive(x)))

    def flat(prefix, tree):
        out = {}
        for k, v in tree.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            out.update(flat(key, v) if isinstance(v, dict) else {key: np.asarray(v)})
        return out

    sd = {**flat("perceive", nnx.to_pure_dict(nnx.state(perceive, nnx.Param))),
          **flat("update", nnx.to_pure_dict(nnx.state(update, nnx.Param)))}
    cfg, params, prov = read_cax(sd, fire_rate_source=0.0)
    assert prov["filters"] == {"1": "+1*dy", "2": "+1*dx"} and cfg.fire_rate == 1.0
    ours = np.asarray(step(params, cax_to_ours(x), jax.random.key(0), cfg)[0])
    assert np.max(np.abs(ours_to_cax(ours) - theirs)) < 1e-5


def test_load_model_reads_a_cax_npz(tmp_path):
    p = _cax_params()
    np.savez(tmp_path / "cax.npz", **p)
    m = nca.load_model(tmp_path / "cax.npz", fire_rate_source=0.5)
    assert m.provenance["format"] == "cax-growing-nca" and m.model_config.channels == C
    cfg, params, _ = read_cax(p)
    assert all(np.array_equal(np.asarray(m.params[k]), params[k]) for k in params)

"""Architecture variants of ModelConfig (perception kinds, circular padding, no alive masking,
zero seed): our step against an independent NumPy implementation with explicit 3x3 kernels."""

import jax
import numpy as np
import pytest

import nca
from nca.model import ModelConfig, init_params, rollout, seed_state, step

SOBEL = np.outer([1, 2, 1], [-1, 0, 1]) / 8.0
LAP = np.array([[1, 2, 1], [2, -12, 2], [1, 2, 1]]) / 16.0
HEX_LAP = np.array([[2, 2, 0], [2, -12, 2], [0, 2, 2]]) / 16.0  # axial hex: 6 neighbours
KERNELS = {"sobel": [SOBEL, SOBEL.T], "laplacian": [LAP], "sobel+laplacian": [SOBEL, SOBEL.T, LAP]}


def _xcorr(x, k, padding):
    """x: [B, H, W, C]; 3x3 cross-correlation of every channel."""
    mode = {"zeros": "constant", "circular": "wrap"}[padding]
    p = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode=mode)
    h, w = x.shape[1:3]
    return sum(k[i, j] * p[:, i:i + h, j:j + w] for i in range(3) for j in range(3))


def _alive(x, hexagonal=False, padding="zeros"):
    mode = {"zeros": "constant", "circular": "wrap"}[padding]
    kw = {"constant_values": -np.inf} if mode == "constant" else {}
    a = np.pad(x[..., 3:4], [(0, 0), (1, 1), (1, 1), (0, 0)], mode=mode, **kw)
    h, w = x.shape[1:3]
    taps = [(i, j) for i in range(3) for j in range(3) if not hexagonal or HEX_LAP[i, j] != 0]
    return np.max([a[:, i:i + h, j:j + w] for i, j in taps], axis=0) > 0.1


def reference(params, x, fire, cfg):
    x = np.asarray(x, np.float64)
    hexagonal = cfg.topology == "hex"
    kernels = [HEX_LAP] if hexagonal else KERNELS[cfg.perception]
    feats = np.concatenate([x] + [_xcorr(x, k, cfg.padding) for k in kernels], -1)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    dx = np.maximum(feats @ p["w1"] + p["b1"], 0) @ p["w2"] + p["b2"]
    y = x + dx * fire
    if cfg.clamp:  # the isotropic demo: a firing cell's new state is clipped
        y = np.where(fire, np.clip(y, -cfg.clamp, cfg.clamp), x)
    if cfg.life == "pre-post":
        y = y * (_alive(x, hexagonal, cfg.padding) & _alive(y, hexagonal, cfg.padding))
    elif cfg.life == "fired-pre":  # the demo: a firing cell with no live hex neighbourhood is zeroed
        y = np.where(fire & ~_alive(x, hexagonal, cfg.padding), 0.0, y)
    return y


CASES = [ModelConfig(channels=8, hidden=16, perception=k, padding=pad, life=life)
         for k in ("sobel", "laplacian", "sobel+laplacian") for pad in ("zeros", "circular")
         for life in ("pre-post", "none")]
CASES += [ModelConfig(channels=8, hidden=16, perception="laplacian", padding=pad, life=life, topology="hex", clamp=c)
          for pad in ("zeros", "circular") for life in ("pre-post", "fired-pre") for c in (0.0, 0.7)]


@pytest.mark.parametrize("cfg", CASES, ids=lambda c: f"{c.topology}-{c.perception}-{c.padding}-{c.life}-clamp{c.clamp}")
def test_variant_step_equals_numpy_reference(cfg):
    rng = np.random.default_rng(0)
    params = {k: rng.normal(0, 0.3, v.shape).astype(np.float32)
              for k, v in init_params(jax.random.key(0), cfg).items()}
    assert params["w1"].shape == (cfg.kernels * cfg.channels, cfg.hidden)
    x = rng.normal(0, 0.5, (2, 9, 11, cfg.channels)).astype(np.float32)
    x[..., 3] = np.where(rng.random((2, 9, 11)) < 0.3, rng.random((2, 9, 11)), 0.0)
    x[:, 0, :, :] += 1.0  # live cells on the border: circular and zero padding differ there
    fire = rng.random((2, 9, 11, 1)) < 0.5
    ours = np.asarray(step(params, x, jax.random.key(0), cfg, fire=fire)[0])
    assert np.max(np.abs(ours - reference(params, x, fire, cfg))) < 1e-5
    # the control: the article's config on the same arrays (where shapes allow) differs
    if cfg.perception == "sobel" and (cfg.padding, cfg.life) != ("zeros", "pre-post"):
        art = np.asarray(step(params, x, jax.random.key(0), ModelConfig(channels=8, hidden=16), fire=fire)[0])
        assert np.max(np.abs(art - ours)) > 1e-3


def test_variants_fall_back_to_the_reference_step_and_the_default_is_unchanged():
    cfg = ModelConfig(channels=8, hidden=16, perception="laplacian", life="none")
    assert not cfg.is_article and ModelConfig().is_article
    params = init_params(jax.random.key(1), cfg)
    params["w2"] = params["w2"] + 0.05
    x0 = seed_state(16, 16, cfg)
    a = rollout(params, x0, jax.random.key(2), 6, cfg, record=(), fast=True)[0]
    b = rollout(params, x0, jax.random.key(2), 6, cfg, record=())[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))
    # the article's defaults: the same fields as before, the same FLOP count as the article
    assert ModelConfig().flop_per_cell_update == 17248 and ModelConfig().perception_dim == 48


def test_zero_seed_and_center_seed():
    assert np.asarray(seed_state(5, 5, ModelConfig(seed_pattern="zeros"))).sum() == 0
    s = np.asarray(seed_state(5, 5, ModelConfig()))
    assert s[2, 2, 3:].sum() == 13 and s.sum() == 13


@pytest.mark.parametrize("field, value", [("perception", "fourier"), ("padding", "reflect"), ("seed_pattern", "two"),
                                          ("life", "always"), ("topology", "triangle")])
def test_unknown_variant_is_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field} must be one of"):
        ModelConfig(**{field: value})


def test_grow_and_record_perception_for_a_variant():
    cfg = ModelConfig(channels=8, hidden=16, perception="sobel+laplacian", padding="circular",
                      life="none", seed_pattern="zeros")
    params = init_params(jax.random.key(3), cfg)
    params["b2"] = params["b2"] + 0.1
    m = nca.LoadedModel("variant", cfg, params, None, 12)
    x, traj = nca.grow(m, 3, jax.random.key(0), record=("state", "perception"))
    assert traj.perception.shape == (3, 12, 12, 32) and np.abs(np.asarray(x)).sum() > 0

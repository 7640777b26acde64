"""Steerable NCAs (Randazzo, Mordvintsev & Fouts 2023, arXiv 2302.10197): the perception
against a NumPy transcription of the paper's equations, the rotation equivariance that is
their point (with the article's fixed Sobel rule as the control that is not equivariant),
and the analyses' fast paths, which must not assume a channel acts only through its own
perception slots: the frame channel steers every other channel's gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_formats_variants import LAP, SOBEL, _xcorr

from nca.errors import NCAError
from nca.model import ModelConfig, init_params, perceive, rollout, step

C = 8


def _params(cfg, seed=0):
    p = init_params(jax.random.key(seed), cfg)
    p["w2"] = 0.1 * jax.random.normal(jax.random.key(seed + 1), (cfg.hidden, cfg.channels))
    return p


def _state(seed=0, b=2, h=12, w=12):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (b, h, w, C)).astype(np.float32)
    x[..., 3] = rng.uniform(0, 1, (b, h, w))  # alive nearly everywhere: the masks matter less than the frame
    return x


def _numpy_perception(x, kind):
    """The paper's equations, written out: p = concat(s, K_lap * s, p_x, p_y) (angle-based;
    s excludes s_theta) or concat(x, K_lap * x, p_x, p_y) (gradient-based; p_x, p_y over s),
    each placed in our C-wide bands with the frame channel's excluded slot 0."""
    x = np.asarray(x, np.float64)
    s = x[..., :-1]
    gx, gy = _xcorr(s, SOBEL, "zeros"), _xcorr(s, SOBEL.T, "zeros")
    if kind == "steerable-angle":
        c, sn = np.cos(x[..., -1:]), np.sin(x[..., -1:])
        ident, lap = s, _xcorr(s, LAP, "zeros")
    else:
        a = x[..., -1:]
        g = np.concatenate([_xcorr(a, SOBEL, "zeros"), _xcorr(a, SOBEL.T, "zeros")], -1)
        uv = g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1.0)
        c, sn = uv[..., :1], uv[..., 1:]
        ident, lap = x, _xcorr(x, LAP, "zeros")
    px, py = c * gx + sn * gy, -sn * gx + c * gy
    pad = lambda a: np.concatenate([a, np.zeros(a.shape[:-1] + (C - a.shape[-1],))], -1)  # noqa: E731
    return np.concatenate([pad(ident), pad(lap), pad(px), pad(py)], -1)


@pytest.mark.parametrize("kind", ["steerable-angle", "steerable-gradient"])
def test_perception_equals_a_numpy_transcription_of_the_papers_equations(kind):
    x = _state(1)
    x[..., -1] *= 3.0  # angles over a full turn; gradients above and below the clip at 1
    ours = np.asarray(perceive(jnp.asarray(x), kind=kind))
    np.testing.assert_allclose(ours, _numpy_perception(x, kind), rtol=1e-5, atol=1e-5)
    assert ModelConfig(channels=C, perception=kind).perception_dim == ours.shape[-1] == 4 * C


@pytest.mark.parametrize("kind,turn", [("steerable-angle", -np.pi / 2), ("steerable-gradient", 0.0)])
def test_a_rotated_body_with_turned_frames_develops_as_the_rotated_body(kind, turn):
    """np.rot90 (counter-clockwise as viewed) of the state, every s_theta turned by -90 degrees
    (angle-based; the gradient-based frame turns with the field by itself), then 6 steps ==
    the 6 steps, then the same rotation. The article's Sobel rule is the control: it reads
    a global frame, so the same test fails for it."""
    def rotate(x):
        r = np.rot90(np.asarray(x), axes=(-3, -2)).copy()
        r[..., -1] += turn
        return r

    def run(cfg, params, x):
        return np.asarray(rollout(params, jnp.asarray(x), jax.random.key(0), 6, cfg, record=())[0])

    x = _state(2)
    cfg = ModelConfig(channels=C, hidden=32, fire_rate=1.0, perception=kind)
    params = _params(cfg)
    np.testing.assert_allclose(run(cfg, params, rotate(x)), rotate(run(cfg, params, x)), rtol=1e-4, atol=1e-4)
    sob = ModelConfig(channels=C, hidden=32, fire_rate=1.0)
    psob = _params(sob)
    assert np.abs(run(sob, psob, rotate(x)) - rotate(run(sob, psob, x))).max() > 1e-2


def test_the_gradient_frame_has_finite_gradients_on_a_flat_field():
    """A lone cell has no frame (|g| = 0): its steered gradients read 0, and training through
    it gives finite gradients (sqrt at 0 would give NaN)."""
    cfg = ModelConfig(channels=C, hidden=16, perception="steerable-gradient")
    params = _params(cfg)
    x = jnp.zeros((1, 8, 8, C)).at[0, 4, 4, 3:].set(1.0)

    def loss(p):
        y, _ = step(p, x, jax.random.key(0), cfg)
        return jnp.sum(y ** 2)

    g = jax.grad(loss)(params)
    assert all(np.isfinite(np.asarray(v)).all() for v in g.values())


def test_steerable_perception_is_refused_on_the_hex_grid():
    with pytest.raises(NCAError, match="topology 'hex'"):
        ModelConfig(perception="steerable-angle", topology="hex")


@pytest.mark.parametrize("kind", ["steerable-angle", "steerable-gradient"])
def test_channel_knockouts_on_the_fast_path_equal_the_state_knockouts_for_the_frame_channel_too(kind):
    """Zeroing a hidden channel's perception rows of w1 equals zeroing it in the state only
    when the channel acts on nothing but through its own slots. The frame channel steers
    every other channel's gradients, so the knockouts and the degradation curves must give
    the state knockout's answer for it, as for any other channel."""
    from analysis.causal import degradation as D
    from analysis.causal.knockouts import Start, ablation_losses, channel_ablations, read_ablation_losses
    from nca.model import seed_state

    cfg = ModelConfig(channels=C, hidden=32, perception=kind)
    params = _params(cfg, seed=5)
    x0 = np.asarray(seed_state(16, 16, cfg, batch=2))
    st = Start("growth", x0, 0, 10)
    target = np.zeros((16, 16, 4), np.float32)
    key = jax.random.key(3)
    sets = [(C - 1,), (5,), (5, C - 1)]
    dense, _ = ablation_losses(params, cfg, st, key, target, channel_ablations(sets, C), chunk=4)
    fast, _ = read_ablation_losses(params, cfg, st, key, target, sets, chunk=4)
    np.testing.assert_allclose(fast, dense, rtol=1e-4, atol=1e-7)
    removed = np.zeros((3, C - 4), bool)
    for i, s in enumerate(sets):
        removed[i, [c - 4 for c in s]] = True
    np.testing.assert_allclose(D.channel_zero_losses(params, cfg, st, key, target, removed, chunk=4), dense,
                               rtol=1e-4, atol=1e-7)
    assert not np.allclose(dense[0], dense[1])  # the frame channel's knockout is not a no-op


def test_the_frame_channel_must_be_a_hidden_channel():
    """With 4 channels the last is alpha: steering by it would hide alpha from every cell."""
    with pytest.raises(NCAError, match="channels must be >= 5"):
        ModelConfig(channels=4, perception="steerable-gradient")
    assert ModelConfig(channels=5, perception="steerable-angle").frame_channel == 4

"""Per-cell fitness and selfish credit (nca.selfish.fitness, nca.selfish.training)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nca.config import preset
from nca.model import ModelConfig, init_params, rollout
from nca.selfish import cell_fitness, fitness_loss, selfish_config
from nca.train import compiled_train_step, init_train_state, per_sample_loss

CFG = ModelConfig(channels=8, hidden=16, fire_rate=0.5)
H = W = 12
I = (6, 5)  # the cell whose fitness we differentiate


def _params(seed=0, scale=0.1):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    p = init_params(k1, CFG)
    p["w2"] = scale * jax.random.normal(k2, p["w2"].shape)
    p["b1"] = 0.1 * jax.random.normal(k3, p["b1"].shape)
    return p


def _state(seed=1):
    x = jax.random.uniform(jax.random.key(seed), (H, W, CFG.channels), minval=0.0, maxval=0.5)
    return x.at[..., 3].set(1.0)  # everything alive, so life masks do not cut paths


def _target():
    return jax.random.uniform(jax.random.key(2), (H, W, 4))


def test_fitness_mean_is_the_loss():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(3, H, W, CFG.channels)), jnp.float32)
    t = _target()
    fit = cell_fitness(x, t)
    assert fit.shape == (3, H, W)
    np.testing.assert_allclose(-fit.mean(axis=(-2, -1)) / 4, per_sample_loss(x, t), rtol=1e-6)
    np.testing.assert_allclose(fitness_loss(x, t), per_sample_loss(x, t), rtol=1e-6)
    # gain differs from pixel by a per-cell constant, territory is clipped alpha
    np.testing.assert_allclose(cell_fitness(x, t, "gain") - fit, jnp.sum(t**2, -1) + 0 * fit, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cell_fitness(x, t, "territory"), np.clip(x[..., 3], 0, 1))
    with pytest.raises(ValueError):
        cell_fitness(x, t, "nope")


def _fitness_i(x0, cfg, steps=3, hooks=None, params=None):
    params = _params() if params is None else params
    x, _ = rollout(params, x0, jax.random.key(3), steps, cfg, record=(), hooks=hooks)
    return cell_fitness(x, _target())[I]


@pytest.mark.parametrize("selfish", [False, True])
def test_gradient_isolation(selfish):
    """d fitness_i / d (any earlier state of a neighbour) is 0 with selfish credit and
    nonzero cooperatively; the cell's own path is intact in both."""
    cfg = ModelConfig(**{**CFG.__dict__, "neighbour_gradients": not selfish})
    x0 = _state()
    g0 = jax.grad(_fitness_i)(x0, cfg)  # w.r.t. the initial state
    # w.r.t. the state entering step 1 (a later state), through a perturbation hook
    def f_delta(delta):
        hook = {"state": lambda v, t: v + jnp.where(t == 1, 1.0, 0.0) * delta}
        return _fitness_i(x0, cfg, hooks=hook)
    g1 = jax.grad(f_delta)(jnp.zeros_like(x0))
    for g in (g0, g1):
        own = np.abs(np.asarray(g[I])).sum()
        others = np.abs(np.asarray(g)).sum(-1)
        others[I] = 0.0
        assert own > 1e-3
        if selfish:
            assert others.max() == 0.0
        else:
            assert others.max() > 1e-4


def _own_path_fitness(params, x0, rec, target):
    """Cell I's fitness recomputed along its own history only: its neighbours' Sobel
    reads, fire and life masks are taken from the recorded forward pass as constants."""
    c = CFG.channels
    xi = x0[I]
    for t in range(rec.perception.shape[0]):
        p = jnp.concatenate([xi, rec.perception[t][I][c:]])
        dx = jax.nn.relu(p @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]
        xi = (xi + dx * rec.fire[t][I]) * rec.alive[t][I]
    return -jnp.sum(jnp.square(xi[:4] - target[I]))


def test_selfish_parameter_gradient_is_the_own_path_gradient():
    x0, target, params = _state(), _target(), _params()
    _, rec = rollout(params, x0, jax.random.key(3), 3, CFG, record=("perception", "fire", "alive"))
    own = jax.grad(_own_path_fitness)(params, x0, rec, target)
    selfish_cfg = ModelConfig(**{**CFG.__dict__, "neighbour_gradients": False})
    selfish = jax.grad(lambda p: _fitness_i(x0, selfish_cfg, params=p))(params)
    coop = jax.grad(lambda p: _fitness_i(x0, CFG, params=p))(params)
    for k in params:
        np.testing.assert_allclose(selfish[k], own[k], rtol=1e-4, atol=1e-6)
    assert max(float(jnp.abs(coop[k] - own[k]).max()) for k in params) > 1e-4


def test_selfish_training_smoke():
    cfg = selfish_config(preset("tiny", train_steps=3))
    assert cfg.model.neighbour_gradients is False
    state = init_train_state(cfg)
    step = compiled_train_step(cfg)
    from nca.targets import load_target
    target = jnp.asarray(load_target(cfg.target, cfg.target_size, cfg.target_padding))
    w2 = np.asarray(state.params["w2"]).copy()
    for _ in range(3):
        state, loss = step(state, target)
    assert np.isfinite(float(loss))
    assert np.abs(np.asarray(state.params["w2"]) - w2).max() > 0

"""The update rule: perception kernels, alive masking, fire statistics, rollouts, hooks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nca.model import (
    ModelConfig, alive_mask, init_params, max_pool3, perceive, perception_kernels, rollout,
    seed_state, step,
)

CFG = ModelConfig()


def random_params(key, cfg=CFG, scale=0.3):
    k1, k2, k3 = jax.random.split(key, 3)
    p = init_params(k1, cfg)
    p["w2"] = jax.random.normal(k2, p["w2"].shape) * scale
    p["b1"] = jax.random.normal(k3, p["b1"].shape) * 0.1
    return p


def reference_perceive(x, angle_deg):
    """Depthwise 3x3 cross-correlation with XLA's conv, zero 'SAME' padding (the notebook's
    tf.nn.depthwise_conv2d), rearranged to band order."""
    k = perception_kernels(angle_deg)  # [3, 3, 3]
    c = x.shape[-1]
    kernel = np.tile(np.transpose(k, (1, 2, 0))[:, :, None, :], (1, 1, c, 1)).reshape(3, 3, 1, 3 * c)
    y = jax.lax.conv_general_dilated(x, jnp.asarray(kernel), (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)
    y = y.reshape(*y.shape[:-1], c, 3)  # interleaved c*3+k
    return jnp.concatenate([y[..., 0], y[..., 1], y[..., 2]], -1)


@pytest.mark.parametrize("angle", [0.0, 30.0, 90.0])
def test_perception_matches_depthwise_conv(angle):
    x = jax.random.uniform(jax.random.key(0), (2, 12, 10, 16))
    np.testing.assert_allclose(perceive(x, angle), reference_perceive(x, angle), atol=1e-5)


def test_sobel_measures_slope_along_x_and_y():
    h, w = 9, 11
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x = jnp.asarray(np.stack([2.0 * xx - 3.0 * yy] * 4, -1))[None]
    p = np.asarray(perceive(x))
    inner = (slice(None), slice(1, -1), slice(1, -1))
    # Sobel/8 has gain 1: d/dx of 2x is 2, d/dy of -3y is -3 (y grows downward in the array).
    np.testing.assert_allclose(p[inner][..., 4:8], 2.0, atol=1e-5)
    np.testing.assert_allclose(p[inner][..., 8:12], -3.0, atol=1e-5)


def test_rotated_perception_rotates_the_gradient():
    # A field increasing along +x; perception rotated by 90 deg reads it as (0, 1) -> (kx, ky)
    # = (cos*dx - sin*dy, sin*dx + cos*dy) = (0, 2).
    xx = np.tile(np.arange(8, dtype=np.float32), (8, 1))
    x = jnp.asarray(np.stack([2 * xx] * 4, -1))[None]
    p = np.asarray(perceive(x, 90.0))[0, 2:-2, 2:-2]
    np.testing.assert_allclose(p[..., 4:8], 0.0, atol=1e-5)
    np.testing.assert_allclose(p[..., 8:12], 2.0, atol=1e-5)


def test_perceive_commutes_with_grid_rotation():
    # Rotating the grid by 90 deg (np.rot90) and perceiving == perceiving then rotating,
    # with the derivative pair rotated accordingly: the stencil has no preferred direction.
    x = jax.random.uniform(jax.random.key(1), (10, 10, 4))
    p = np.asarray(perceive(x))
    pr = np.asarray(perceive(jnp.asarray(np.rot90(np.asarray(x)).copy())))
    rp = np.rot90(p)
    np.testing.assert_allclose(pr[..., 0:4], rp[..., 0:4], atol=1e-5)
    np.testing.assert_allclose(pr[..., 4:8], rp[..., 8:12], atol=1e-5)
    np.testing.assert_allclose(pr[..., 8:12], -rp[..., 4:8], atol=1e-5)


def test_max_pool_matches_reduce_window():
    a = jax.random.normal(jax.random.key(2), (3, 7, 9, 1))
    ref = jax.lax.reduce_window(a, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "SAME")
    np.testing.assert_array_equal(max_pool3(a), ref)


def test_dead_cells_stay_dead():
    # A live blob in one corner; far cells must stay exactly zero whatever the rule.
    params = random_params(jax.random.key(3), scale=1.0)
    params["b2"] = jnp.ones((16,))  # a rule that would write everywhere if allowed
    x = jnp.zeros((16, 16, 16)).at[2:4, 2:4, 3:].set(1.0)
    for t in range(3):
        x, _ = step(params, x, jax.random.key(t), CFG, t)
    assert float(jnp.abs(x[8:, :]).max()) == 0.0 and float(jnp.abs(x[:, 8:]).max()) == 0.0


def test_isolated_weak_cell_dies_and_alive_neighbourhood_counts():
    x = jnp.zeros((8, 8, 16)).at[4, 4, 3].set(0.05).at[4, 4, 5].set(0.7)
    params = init_params(jax.random.key(0))  # zero update: only the masks act
    y, cache = step(params, x, jax.random.key(0))
    assert float(jnp.abs(y).max()) == 0.0
    alive = alive_mask(jnp.zeros((8, 8, 16)).at[4, 4, 3].set(0.5))[..., 0]
    assert int(alive.sum()) == 9 and bool(alive[3, 3]) and not bool(alive[2, 4])


def test_untrained_model_does_nothing():
    x0 = seed_state(12, 12)
    x, _ = rollout(init_params(jax.random.key(0)), x0, jax.random.key(1), 10)
    np.testing.assert_array_equal(x, x0)


def test_fire_rate_statistics():
    cfg = ModelConfig(fire_rate=0.3)
    params = random_params(jax.random.key(4), cfg)
    x = jnp.ones((4, 32, 32, 16))
    _, traj = rollout(params, x, jax.random.key(5), 4, cfg, record=("fire",))
    n = traj.fire.size
    rate = float(traj.fire.mean())
    assert abs(rate - 0.3) < 4 * np.sqrt(0.3 * 0.7 / n)
    # independent across steps: consecutive masks agree as often as chance predicts
    agree = float((traj.fire[1:] == traj.fire[:-1]).mean())
    assert abs(agree - (0.3**2 + 0.7**2)) < 0.02


def test_update_is_applied_only_where_fired():
    params = random_params(jax.random.key(6))
    x = jax.random.uniform(jax.random.key(7), (16, 16, 16)) * 0.5 + 0.2  # all alive
    y, cache = step(params, x, jax.random.key(8))
    expected = (x + cache["update"] * cache["fire"]) * cache["alive"]
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert 0.3 < float(cache["fire"].mean()) < 0.7


def test_rollout_is_prefix_consistent_and_records():
    params = random_params(jax.random.key(9))
    x0 = seed_state(16, 16)
    key = jax.random.key(10)
    x30, tr = rollout(params, x0, key, 30, record=("state", "hidden", "alive"))
    x20, _ = rollout(params, x0, key, 20, record=())
    x30b, _ = rollout(params, x20, key, 10, t0=20, record=())
    np.testing.assert_array_equal(x30, x30b)
    assert tr.states.shape == (30, 16, 16, 16) and tr.hidden.shape == (30, 16, 16, 128)
    assert tr.perception is None
    np.testing.assert_array_equal(tr.states[-1], x30)
    _, sub = rollout(params, x0, key, 30, every=10)
    np.testing.assert_array_equal(sub.states, tr.states[9::10])


@pytest.mark.parametrize("budget_steps", [0, 1, 3, 10_000])
def test_rollout_draws_fire_masks_in_blocks_exactly_as_step_by_step(monkeypatch, budget_steps):
    # rollout draws many steps' fire masks in one call (blocks that fit FIRE_BLOCK_CELLS);
    # every block size -- 0 (step by step), 1, 3 steps, all at once -- gives the masks
    # ``step`` would draw from step_key(key, t), and so the same trajectory.
    import nca.model as model

    params = random_params(jax.random.key(13))
    x0 = seed_state(12, 12, batch=2)
    key = jax.random.key(14)
    monkeypatch.setattr(model, "FIRE_BLOCK_CELLS", budget_steps * 2 * 12 * 12)
    _, tr = rollout(params, x0, key, 12, record=("state", "fire"), t0=5)
    ts = 5 + jnp.arange(12)
    manual = jnp.stack([model.fire_mask(model.step_key(key, t), x0.shape, CFG.fire_rate) for t in ts])
    np.testing.assert_array_equal(tr.fire, manual.astype(jnp.float32))
    np.testing.assert_array_equal(model.fire_masks(key, ts, x0.shape, CFG.fire_rate), manual)
    x, states = x0, []
    for t in ts:
        x, _ = step(params, x, model.step_key(key, t))
        states.append(x)
    np.testing.assert_allclose(tr.states, jnp.stack(states), atol=1e-6)
    _, sub = rollout(params, x0, key, 12, record=("state",), t0=5, every=3, fast=True)
    np.testing.assert_allclose(sub.states, tr.states[2::3], rtol=1e-5, atol=1e-5)  # fast path: rounding


def test_active_steps_stops_early_and_matches_short_rollout():
    params = random_params(jax.random.key(11))
    x0 = seed_state(16, 16)
    key = jax.random.key(12)
    short, _ = rollout(params, x0, key, 7, record=())
    masked, _ = rollout(params, x0, key, 12, record=(), active_steps=jnp.int32(7))
    np.testing.assert_array_equal(short, masked)


def test_hooks_intervene_at_named_points():
    params = random_params(jax.random.key(13))
    x = jax.random.uniform(jax.random.key(14), (12, 12, 16)) * 0.5 + 0.2
    # Zeroing the update leaves live cells untouched.
    y, _ = step(params, x, jax.random.key(0), hooks={"update": lambda v, t: jnp.zeros_like(v)})
    np.testing.assert_allclose(y, x * alive_mask(x).astype(x.dtype), atol=0)
    # Knocking out hidden channel 7 of the state before perception: the cache shows it.
    ko = {"state": lambda v, t: v.at[..., 7].set(0.0)}
    _, cache = step(params, x, jax.random.key(0), hooks=ko)
    np.testing.assert_array_equal(cache["perception"][..., 7], 0.0)
    # Hooks see the global step index t.
    seen = {"fire": lambda v, t: jnp.where(t >= 2, jnp.zeros_like(v), v)}
    x0 = seed_state(12, 12)
    _, tr = rollout(params, x0, jax.random.key(1), 4, record=("fire",), hooks=seen)
    assert float(tr.fire[:2].sum()) > 0 and float(tr.fire[2:].sum()) == 0



def test_a_misspelt_hook_point_is_refused_not_silently_ignored():
    params = random_params(jax.random.key(13))
    x0 = seed_state(8, 8)
    for run in (lambda h: step(params, x0, jax.random.key(0), hooks=h),
                lambda h: rollout(params, x0, jax.random.key(0), 2, hooks=h)):
        with pytest.raises(ValueError, match=r"unknown hook point\(s\) \['hiden'\]"):
            run({"hiden": lambda v, t: v * 0})

def test_selfish_credit_stops_neighbour_gradients_only():
    cfg = ModelConfig(neighbour_gradients=False)
    params = random_params(jax.random.key(15), cfg)
    x = jax.random.uniform(jax.random.key(16), (9, 9, 16)) * 0.5 + 0.2

    def cell_out(x, c):
        y, _ = step(params, x, jax.random.key(0), ModelConfig(fire_rate=1.0, neighbour_gradients=c))
        return y[4, 4].sum()

    g_selfish = jax.grad(cell_out)(x, False)
    g_coop = jax.grad(cell_out)(x, True)
    assert float(jnp.abs(g_selfish[4, 4]).sum()) > 0
    np.testing.assert_array_equal(g_selfish.at[4, 4].set(0.0), 0.0)
    assert float(jnp.abs(g_coop.at[4, 4].set(0.0)).sum()) > 0

"""Cheater invasion (nca.selfish.invasion) and the comparison's invasion runner."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nca
from nca.model import ModelConfig, init_params
from nca.selfish import compare as cmp
from nca.selfish.invasion import invasion_curves, perturb_params, plant_ids, plant_mutant
from nca.selfish.training import AdversaryConfig, adversary_loss, adversary_train_step, init_adversary_state

CCFG = replace(cmp.comparison_preset("smoke"), host_grow=40, invasion_steps=30, invasion_every=10)
GRID = 40  # the published host on a smaller grid than its 72: same rule, 3x fewer cells


@pytest.fixture(scope="module")
def host():
    m = nca.load_model("distill:lizard/persistent")
    grown = cmp.host_states(m.params, m.model_config, GRID, CCFG.host_grow, jax.random.key(0))[0]
    return m, grown, jnp.asarray(m.target_image()[16:56, 16:56])


def test_mutant_equal_to_host_changes_nothing(host):
    m, grown, target = host
    same = cmp.run_invasion(m.params, m.params, m.model_config, grown, target, CCFG, jax.random.key(1))
    # the control: the core's own rollout of the host from the same state and keys
    _, ref = nca.grow(m, CCFG.invasion_steps, jax.random.key(1), x0=grown, t0=CCFG.host_grow,
                      every=CCFG.invasion_every)
    for mode, r in same.items():
        assert r["planted"] >= 1
        np.testing.assert_array_equal(r["frames"][0], np.asarray(ref.states))
        assert np.all(r["harm"] == 0.0)
    assert same["cell"]["planted"] == 1 and same["patch"]["planted"] > 1
    # a different mutant does change the body (so the check above can fail)
    other = cmp.run_invasion(m.params, perturb_params(m.params, jax.random.key(2), 0.5), m.model_config, grown,
                             target, CCFG, jax.random.key(1))
    assert np.abs(other["patch"]["frames"][0] - np.asarray(ref.states)).max() > 1e-3
    s = cmp.invasion_summary(other["patch"])
    assert 0.0 <= s["final_share"] <= 1.0 and s["planted"] == other["patch"]["planted"]


def test_plant_modes(host):
    _, grown, _ = host
    alive = np.asarray(grown[..., 3] > 0.1)
    for mode, size in (("patch", 3.0), ("cell", 0.0), ("fraction", 0.3)):
        ids = np.asarray(plant_ids(grown, mode, size, jax.random.key(0)))
        assert np.all((ids >= 0) == alive)
        assert (ids == 1).sum() >= 1
    ids = np.asarray(plant_mutant(grown, jnp.array([20, 20]), 3.0))
    yy, xx = np.nonzero(ids == 1)
    assert len(yy) > 1 and np.all((yy - 20) ** 2 + (xx - 20) ** 2 <= 9)
    frac = (np.asarray(plant_ids(grown, "fraction", 0.3, jax.random.key(0))) == 1).sum() / alive.sum()
    assert 0.2 < frac < 0.4
    with pytest.raises(ValueError):
        plant_ids(grown, "everywhere", 1.0, jax.random.key(0))


def test_invasion_curves_by_hand():
    ids = jnp.array([[[1, 0], [-1, 0]], [[-1, -1], [-1, 0]]])  # [T=2, 2, 2]
    states = jnp.zeros((2, 2, 2, 4)).at[..., 3].set(jnp.where(ids >= 0, 1.0, 0.0))
    target = jnp.zeros((2, 2, 4)).at[0, :, 3].set(1.0)  # body = top row
    c = invasion_curves(ids, states, states, target)
    np.testing.assert_array_equal(c["mutant_cells"], [1, 0])
    np.testing.assert_array_equal(c["host_cells"], [2, 1])
    np.testing.assert_allclose(c["mutant_share"], [1 / 3, 0.0])
    np.testing.assert_array_equal(c["overgrowth"], [1, 1])  # (1, 1) is alive outside the body
    np.testing.assert_array_equal(c["harm"], [0.0, 0.0])


def test_adversary_training_smoke():
    cfg = ModelConfig(hidden=8)
    k1, k2 = jax.random.split(jax.random.key(0))
    host = init_params(k1, cfg)
    host["w2"] = 0.02 * jax.random.normal(k2, host["w2"].shape)
    x = jnp.zeros((1, 12, 12, 16)).at[0, 4:8, 4:8, 3:].set(1.0)
    target = jnp.zeros((12, 12, 4)).at[3:9, 3:9].set(1.0)
    acfg = AdversaryConfig(steps=2, batch=1, rollout=3, patch_radius=1)
    state = init_adversary_state(acfg, host)
    step = jax.jit(lambda st: adversary_train_step(acfg, cfg, host, x, target, st))
    start = jax.tree.map(np.asarray, state.params)
    for _ in range(2):
        state, loss = step(state)
    assert np.isfinite(float(loss)) and float(loss) < 0  # minus the territory it holds
    assert max(np.abs(np.asarray(state.params[k]) - start[k]).max() for k in start) > 0
    # the host is frozen: no gradient reaches it, while the mutant gets one
    ids0 = plant_mutant(x[0], jnp.array([5, 5]), 1.0)[None]
    g_mut, g_host = jax.grad(adversary_loss, argnums=(0, 1))(state.params, host, x, ids0, jax.random.key(3),
                                                             target, acfg, cfg)
    assert all(float(jnp.abs(v).max()) == 0.0 for v in g_host.values())
    assert max(float(jnp.abs(v).max()) for v in g_mut.values()) > 0


def test_perturb_params_changes_every_leaf():
    p = init_params(jax.random.key(0), ModelConfig(hidden=8))
    q = perturb_params(p, jax.random.key(1), 0.1)
    for k in p:
        assert np.abs(np.asarray(q[k]) - np.asarray(p[k])).max() > 0
    same = perturb_params(p, jax.random.key(1), 0.0)
    for k in p:
        np.testing.assert_array_equal(np.asarray(same[k]), np.asarray(p[k]))

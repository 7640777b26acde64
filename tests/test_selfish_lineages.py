"""Competing lineages: the inheritance rule on hand-made grids, equal rules = the core,
K = 1 training gradient = the cooperative gradient (nca.selfish.lineages / training)."""

import jax
import jax.numpy as jnp
import numpy as np

from nca.config import preset
from nca.model import ModelConfig, init_params, rollout, seed_state, step
from nca.selfish.lineages import (controller, lineage_rollout, lineage_seed, lineage_shares, lineage_step,
                                  pad_hidden, parent_lineage, stack_params)
from nca.selfish.training import compiled_lineage_train_step, init_lineage_state, lineage_losses, own_gradients
from nca.targets import load_target
from nca.train import per_sample_loss

C = 6
DET = ModelConfig(channels=C, hidden=4, fire_rate=1.0)  # every cell fires: deterministic


def _grid(cells, h=7, w=7):
    """cells: {(y, x): (alpha, id)} -> (x [h, w, C], ids [h, w])."""
    x = np.zeros((h, w, C), np.float32)
    ids = np.full((h, w), -1, np.int32)
    for (y, xx), (a, i) in cells.items():
        x[y, xx, 3] = a
        ids[y, xx] = i
    return jnp.asarray(x), jnp.asarray(ids)


def _bias_rule(alpha, red=0.0):
    """A rule whose update is a constant: +alpha to alpha, +red to channel 0."""
    p = {"w1": jnp.zeros((3 * C, 4)), "b1": jnp.zeros(4), "w2": jnp.zeros((4, C)), "b2": jnp.zeros(C)}
    p["b2"] = p["b2"].at[3].set(alpha).at[0].set(red)
    return p


def test_parent_is_the_strongest_alive_neighbour():
    x, ids = _grid({(2, 1): (0.5, 0), (2, 3): (0.9, 1)}, 5, 5)
    par = np.asarray(parent_lineage(x, ids))
    assert par[2, 2] == 1  # both adjacent: the larger alpha wins
    assert par[1, 0] == 0 and par[3, 4] == 1  # only one alive neighbour
    assert par[0, 0] == -1 and par[4, 4] == -1 and par[0, 4] == -1  # no alive neighbour -> -1
    # exact tie: the first neighbour in raster order (dy, dx) wins
    x, ids = _grid({(2, 1): (0.5, 0), (2, 3): (0.5, 1)}, 5, 5)
    par = np.asarray(parent_lineage(x, ids))
    assert par[2, 2] == 0  # offset (0,-1) comes before (0,1)
    assert par[1, 2] == 0  # offsets (1,-1) before (1,1)
    x, ids = _grid({(2, 1): (0.5, 1), (2, 3): (0.5, 0)}, 5, 5)
    assert int(parent_lineage(x, ids)[2, 2]) == 1  # the tie follows position, not the id
    # alpha at or below the threshold is not alive and parents nothing
    x, ids = _grid({(2, 2): (0.1, 0)}, 5, 5)
    assert np.all(np.asarray(parent_lineage(x, ids)) == -1)
    ctrl = np.asarray(controller(*_grid({(2, 1): (0.5, 0), (2, 3): (0.9, 1)}, 5, 5)))
    assert ctrl[2, 1] == 0 and ctrl[2, 3] == 1 and ctrl[2, 2] == 1  # own id beats a stronger parent


def test_newborn_runs_and_inherits_its_parents_rule():
    params = stack_params([_bias_rule(0.3, red=0.0), _bias_rule(0.3, red=0.7)])
    x, ids = _grid({(3, 2): (1.0, 0), (3, 4): (0.5, 1)})
    x1, ids1 = lineage_step(params, x, ids, jax.random.key(0), DET)
    x1, ids1 = np.asarray(x1), np.asarray(ids1)
    alive = x1[..., 3] > 0.1
    assert np.all((ids1 >= 0) == alive)  # alive cells have a lineage, dead ones -1
    assert ids1[3, 3] == 0 and x1[3, 3, 0] == 0.0  # between both: lineage 0 (alpha 1 > 0.5) and its rule
    assert ids1[2, 5] == 1 and x1[2, 5, 0] > 0.5  # next to lineage 1 only
    assert ids1[3, 1] == 0 and ids1[2, 1] == 0
    assert ids1[3, 4] == 1 and x1[3, 4, 0] > 0.5  # the old cells keep their id and rule
    assert ids1[0, 0] == -1 and ids1[6, 6] == -1  # never reached
    # a lineage whose rule kills its own cells loses them; the neighbours it had are not inherited
    params = stack_params([_bias_rule(0.3), _bias_rule(-1.0)])
    x, ids = _grid({(3, 1): (1.0, 0), (3, 5): (0.5, 1)})
    _, ids1 = lineage_step(params, x, ids, jax.random.key(0), DET)
    assert np.all(np.asarray(ids1)[:, 4:] == -1) and np.asarray(ids1)[3, 1] == 0


def test_equal_rules_reproduce_the_core_rollout():
    cfg = ModelConfig(channels=C, hidden=16)
    k1, k2 = jax.random.split(jax.random.key(5))
    p = init_params(k1, cfg)
    p["w2"] = 0.05 * jax.random.normal(k2, p["w2"].shape)
    x0 = seed_state(16, 16, cfg)
    key = jax.random.key(7)
    _, ref = rollout(p, x0, key, 30, cfg)
    ids0 = jnp.where(x0[..., 3] > 0.1, 1, -1)
    _, _, traj = lineage_rollout(stack_params([p, p]), x0, ids0, key, 30, cfg)
    np.testing.assert_array_equal(np.asarray(traj.states), np.asarray(ref.states))
    assert np.asarray(traj.ids).max() == 1 and np.asarray(traj.ids).min() == -1

def test_padded_rule_is_the_same_function():
    cfg, wide_cfg = ModelConfig(channels=C, hidden=16), ModelConfig(channels=C, hidden=24)
    p = init_params(jax.random.key(5), cfg)
    p["w2"] = 0.05 * jax.random.normal(jax.random.key(6), p["w2"].shape)
    x = jax.random.uniform(jax.random.key(8), (8, 8, C))
    a, _ = step(p, x, jax.random.key(9), cfg)
    b, _ = step(pad_hidden(p, 24), x, jax.random.key(9), wide_cfg)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_one_lineage_gradient_is_the_cooperative_gradient():
    cfg = preset("tiny", rollout_min=6, rollout_max=9)
    g = cfg.grid_size
    target = jnp.asarray(load_target(cfg.target, cfg.target_size, cfg.target_padding))
    k1, k2 = jax.random.split(jax.random.key(1))
    p = init_params(k1, cfg.model)
    p["w2"] = 0.05 * jax.random.normal(k2, p["w2"].shape)
    x0 = seed_state(g, g, cfg.model, batch=2)
    ids0 = jnp.where(x0[..., 3] > 0.1, 0, -1)
    key, n = jax.random.key(4), jnp.asarray(7)
    grads, losses, _ = jax.jit(lambda q: own_gradients(lineage_losses, q, x0, ids0, key, target, cfg, n))(
        stack_params([p]))

    def coop(params):
        x, _ = rollout(params, x0, key, cfg.rollout_max - 1, cfg.model, record=(), active_steps=n)
        return jnp.mean(per_sample_loss(x, target))

    ref = jax.jit(jax.grad(coop))(p)
    for k in p:
        np.testing.assert_allclose(grads[k][0], ref[k], rtol=2e-4, atol=1e-7)
    assert float(jnp.abs(ref["w2"]).max()) > 0


def test_lineage_training_smoke():
    cfg = preset("tiny", train_steps=3)
    target = jnp.asarray(load_target(cfg.target, cfg.target_size, cfg.target_padding))
    state = init_lineage_state(cfg, 2)
    assert state.params["w1"].shape[0] == 2
    np.testing.assert_array_equal(np.asarray(lineage_shares(state.pool_ids[0], 2)), [0.5, 0.5])
    before = np.asarray(state.params["b2"]).copy()
    step = compiled_lineage_train_step(cfg)
    for _ in range(3):
        state, m = step(state, target)
    assert np.isfinite(float(m["loss"])) and m["lineage_loss"].shape == (2,)
    moved = np.abs(np.asarray(state.params["b2"]) - before).max(axis=1)
    assert np.all(moved > 0)  # both lineages learn
    ids = np.asarray(state.pool_ids)
    assert np.all((ids >= 0) == (np.asarray(state.pool)[..., 3] > 0.1))


def test_seed_positions_are_distinct():
    x, ids = lineage_seed(20, 20, ModelConfig(), 3)
    assert int((np.asarray(ids) >= 0).sum()) == 3 and set(np.asarray(ids).ravel()) == {-1, 0, 1, 2}
    assert float(x[..., 3].sum()) == 3.0


def test_isolated_credit_gives_each_rule_exactly_its_own_gradient():
    """With lineage-isolated gradients, d loss_j / d rule_k == 0 for j != k, so the
    gradient of the summed losses (what lineage_train_step follows) is each rule's own."""
    cfg = preset("tiny", rollout_min=6, rollout_max=9, remat=False)
    g = cfg.grid_size
    target = jnp.asarray(load_target(cfg.target, cfg.target_size, cfg.target_padding))
    rules = []
    for i in range(2):
        k1, k2 = jax.random.split(jax.random.key(10 + i))
        p = init_params(k1, cfg.model)
        p["w2"] = 0.05 * jax.random.normal(k2, p["w2"].shape)
        rules.append(p)
    params = stack_params(rules)
    x0, ids0 = lineage_seed(g, g, cfg.model, 2, batch=2)
    key, n = jax.random.key(4), jnp.asarray(8)

    @jax.jit
    def jac_and_sum(q):
        f = lambda q, iso=True: lineage_losses(q, x0, ids0, key, target, cfg, n, iso)[0]  # noqa: E731
        return jax.jacrev(f)(q), jax.grad(lambda q: jnp.sum(f(q)))(q), jax.jacrev(lambda q: f(q, False))(q)

    jac, gsum, leaky = jac_and_sum(params)
    assert float(jnp.abs(leaky["w2"][0, 1]).max()) > 0  # without isolation the lineages do interact
    for k in params:
        assert float(jnp.abs(jac[k][0, 1]).max()) == 0.0 and float(jnp.abs(jac[k][1, 0]).max()) == 0.0
        for i in range(2):
            np.testing.assert_allclose(gsum[k][i], jac[k][i, i], rtol=1e-5, atol=1e-8)
    assert all(float(jnp.abs(jac["w2"][i, i]).max()) > 0 for i in range(2))


def test_isolated_credit_survives_an_adversarial_grid():
    """The leak of issue 16: on a 12x12 grid of interleaved two-lineage cells under rules
    with large updates (cells flicker alive and dead, controllers change often, also in the
    last step), every cross-lineage term d loss_j / d rule_k must still be exactly 0. A
    cell is owned by the controller that made its last update, not by its final parent."""
    cfg = preset("tiny", rollout_min=6, rollout_max=9, remat=False, hidden=16, channels=8)
    h = w = 12
    rules = []
    for i in range(2):
        k1, k2, k3 = jax.random.split(jax.random.key(20 + i), 3)
        p = init_params(k1, cfg.model)
        p["w2"] = 1.5 * jax.random.normal(k2, p["w2"].shape)  # large updates
        p["b1"] = 0.5 * jax.random.normal(k3, p["b1"].shape)
        rules.append(p)
    params = stack_params(rules)
    kx, ki, kt = jax.random.split(jax.random.key(30), 3)
    x0 = jax.random.uniform(kx, (3, h, w, cfg.model.channels), minval=-0.2, maxval=0.6)
    ids0 = jax.random.randint(ki, (3, h, w), 0, 2)  # interleaved lineages; dead cells get -1
    target = jax.random.uniform(kt, (h, w, 4))
    key, n = jax.random.key(4), jnp.asarray(8)

    @jax.jit
    def jac_and_changes(q):
        f = lambda q: lineage_losses(q, x0, ids0, key, target, cfg, n)[0]  # noqa: E731
        x, ids, traj = lineage_rollout(q, x0, ids0, key, 8, cfg.model)
        ctrls = controller(traj.states, traj.ids)
        return jax.jacrev(f)(q), jnp.sum(ctrls[1:] != ctrls[:-1]), jnp.sum(ctrls[-1] != ctrls[-2])

    jac, changes, last_changes = jac_and_changes(params)
    assert int(changes) > 50 and int(last_changes) > 5  # the grid is adversarial
    for k in params:
        for i in range(2):
            assert float(jnp.abs(jac[k][i, i]).max()) > 0  # own credit is there
        assert float(jnp.abs(jac[k][0, 1]).max()) == 0.0, k
        assert float(jnp.abs(jac[k][1, 0]).max()) == 0.0, k

"""Selfish credit vs a private copy of the rule (nca.selfish.credit): the gap is the loop
through the neighbours, exactly 0 for a rule that does not read its neighbours."""

import jax
import jax.numpy as jnp
import numpy as np

from nca.model import ModelConfig, init_params, step
from nca.selfish.credit import private_gap, private_step

CFG = ModelConfig(channels=8, hidden=16)


def _params(seed=0, scale=0.1):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    p = init_params(k1, CFG)
    p["w2"] = scale * jax.random.normal(k2, p["w2"].shape)
    p["b1"] = 0.1 * jax.random.normal(k3, p["b1"].shape)
    return p


def _body():
    x = jax.random.uniform(jax.random.key(1), (12, 12, CFG.channels), minval=0.0, maxval=0.5)
    return x.at[..., 3].set(1.0)


def test_private_step_with_the_shared_rule_is_the_core_step():
    p, x = _params(), _body()
    mine = jnp.zeros((12, 12), bool).at[5, 5].set(True)
    np.testing.assert_array_equal(np.asarray(private_step(p, p, mine, x, jax.random.key(2), CFG)),
                                  np.asarray(step(p, x, jax.random.key(2), CFG)[0]))


def test_gap_is_zero_without_neighbour_reads_and_positive_with_them():
    target = jax.random.uniform(jax.random.key(3), (12, 12, 4))
    p = _params()
    blind = dict(p, w1=p["w1"].at[CFG.channels:].set(0.0))  # the Sobel bands read nothing
    g0 = private_gap(blind, CFG, _body(), target, jax.random.key(4), steps=8, n_cells=4)
    g1 = private_gap(p, CFG, _body(), target, jax.random.key(4), steps=8, n_cells=4)
    assert np.all(g0["per_cell"] < 1e-6) and g0["sum"] < 1e-6
    # the loop needs i, a neighbour and i again to fire in turn: most cells have one in 8 steps
    assert np.mean(g1["per_cell"] > 1e-5) >= 0.5 and g1["sum"] > 1e-4

"""Rollouts for the analyses: step indexing, activations, rotated perception, damage."""

import jax
import numpy as np
import pytest
from analysis_fixtures import lizard_states_60

import nca
from analysis.representation.axes import axis_angle_between, body_frame
from analysis.rollouts import activations, disc_damage, grow_states


@pytest.fixture(scope="module")
def lizard():
    return nca.load_model("distill:lizard/persistent")


def test_states_index_is_step_and_chunks_continue_exactly(lizard):
    s = lizard_states_60()
    assert s.shape == (61, 1, 72, 72, 16)
    assert (s[0, 0, ..., 3] > 0).sum() == 1  # index 0 is the seed
    more = grow_states(lizard, 20, jax.random.key(0), x0=s[40], t0=40)
    np.testing.assert_array_equal(more[-1], s[60])


def test_every_keeps_exactly_the_states_at_its_multiples(lizard):
    s = lizard_states_60()
    thin = grow_states(lizard, 60, jax.random.key(0), every=20)
    assert thin.shape == (4, 1, 72, 72, 16)
    np.testing.assert_array_equal(thin, s[::20])
    with pytest.raises(nca.NCAError, match="multiple of every"):
        grow_states(lizard, 50, jax.random.key(0), every=20)


def test_activations_are_computed_from_the_given_state(lizard):
    x = lizard_states_60()[30]  # [1, H, W, C]
    _, traj = nca.grow(lizard, 1, jax.random.key(9), x0=x, record=("perception", "hidden"))
    np.testing.assert_allclose(activations(lizard, x, "perception"), np.asarray(traj.perception[0]), atol=1e-6)
    np.testing.assert_allclose(activations(lizard, x, "mlp"), np.asarray(traj.hidden[0]), atol=1e-6)
    np.testing.assert_allclose(activations(lizard, x, "perception")[..., :16], x, atol=1e-6)


def test_rotated_perception_grows_body_rotated_counter_clockwise(lizard):
    lizard_states = lizard_states_60()
    ref = body_frame(lizard_states[60, 0, ..., 3])
    x = grow_states(lizard.rotated(90.0), 60, jax.random.key(0))[60, 0]
    assert lizard.rotated(90.0).model_config.angle_deg == 90.0 and lizard.model_config.angle_deg == 0.0
    rot = body_frame(x[..., 3])
    assert axis_angle_between(rot.axis_deg - ref.axis_deg, 90.0) < 5.0
    # counter-clockwise as viewed = np.rot90: the rotated body overlaps rot90 of the reference
    a = np.rot90(lizard_states[60, 0, ..., 3] > 0.1)
    b = x[..., 3] > 0.1
    c = np.rot90(lizard_states[60, 0, ..., 3] > 0.1, k=-1)
    assert (a & b).sum() / (a | b).sum() > (c & b).sum() / (c | b).sum() + 0.1


def test_disc_damage_is_a_disc_mask():
    m = disc_damage(jax.random.key(3), (40, 40))
    assert m.shape == (40, 40) and set(np.unique(m)) <= {0.0, 1.0} and 0 < m.sum() < 1600

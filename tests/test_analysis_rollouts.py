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


def _hex_ellipse(axis_deg: float, h: int = 48) -> np.ndarray:
    """alpha [h, h] of a 3:1 ellipse drawn in world space on the hex grid (cell (i, j) at
    (j - i/2, i sqrt(3)/2)), long axis at ``axis_deg`` (counter-clockwise, y up)."""
    from nca.formats.isonca import SQRT3_2

    i, j = np.mgrid[:h, :h].astype(float)
    x, y = j - i / 2, i * SQRT3_2
    x, y = x - ((h - 1) / 2 - (h - 1) / 4), y - (h - 1) / 2 * SQRT3_2
    t = np.deg2rad(axis_deg)
    a, b = x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)
    return ((a / 15) ** 2 + (b / 5) ** 2 <= 1).astype(np.float32)


@pytest.mark.parametrize("axis_deg", [0.0, 30.0, 75.0, 120.0])
def test_the_euclidean_frame_gives_a_hex_bodys_true_axis_and_the_array_frame_does_not(axis_deg):
    """Planted: a world-space ellipse on the hex grid. Resampled (``euclidean``), its long axis
    is the planted one; measured on the axial array, it is sheared away from it (the control:
    what the PCA report measured before). The square grid is returned untouched."""
    from analysis.rollouts import euclidean
    from nca.model import ModelConfig

    alpha = _hex_ellipse(axis_deg)
    hexcfg = ModelConfig(perception="laplacian", topology="hex")
    fixed = body_frame(euclidean(alpha[..., None], hexcfg)[..., 0])
    assert axis_angle_between(fixed.axis_deg, axis_deg) < 1.5, fixed.axis_deg  # measured: <= 0.6
    assert fixed.elongation == pytest.approx(3.0, rel=0.05)
    sheared = body_frame(alpha)  # the axial array, read as if square: mirrored and sheared
    assert axis_angle_between(sheared.axis_deg, axis_deg) > 4.0  # measured: 5-75 degrees off
    square = alpha[..., None]
    assert euclidean(square, ModelConfig()) is square


def test_reports_that_measure_on_the_array_say_so_for_hex_models_only(lizard):
    from analysis.rollouts import geometry_caveat

    hexm = nca.load_model("isonca:lizard")
    assert "sheared" in geometry_caveat([lizard, hexm])["geometry"]
    assert geometry_caveat([lizard]) == {}

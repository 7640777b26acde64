"""analysis.representation.pose's direction tests, on planted angles: the Rayleigh test and the
same-fire-masks axis agreement find a shared direction where there is one, and not where
there is none -- including axes that agree only because every model prefers the lattice's."""

import numpy as np
import pytest

from analysis.representation.pose import axis_agreement, rayleigh


def test_rayleigh_finds_a_preferred_direction_and_is_calibrated_on_uniform_angles():
    R, p = rayleigh(np.arange(16) * 22.5)  # evenly spread: no direction
    assert R < 1e-9 and p == 1.0
    R, p = rayleigh(np.full(16, 30.0))
    assert R == pytest.approx(1.0) and p < 1e-6
    rng = np.random.default_rng(0)
    uniform = np.array([rayleigh(rng.uniform(0, 360, 16))[1] for _ in range(4000)])
    assert 0.035 < (uniform < 0.05).mean() < 0.065
    concentrated = np.array([rayleigh(np.rad2deg(rng.vonmises(0, 2.0, 16)))[1] for _ in range(500)])
    assert (concentrated < 0.05).mean() > 0.9


def calls(make, rng, sets=120, draws=199):
    """How often axis_agreement says p < 0.05 on sets drawn by make(rng) -> [models, n]."""
    return np.mean([axis_agreement(make(rng), rng, draws)["p"] < 0.05 for _ in range(sets)])


def test_axis_agreement_finds_shared_axes_and_not_independent_or_lattice_bound_ones():
    rng = np.random.default_rng(1)

    def shared(r):  # each replicate's axis shared by 4 models, 15 degrees of model noise
        return (r.uniform(0, 180, 16)[None] + r.normal(0, 15, (4, 16))) % 180

    def independent(r):
        return r.uniform(0, 180, (4, 16))

    def lattice(r):  # the confound: every model prefers the lattice's axes, independently
        return (r.choice([0.0, 90.0], (4, 16)) + r.normal(0, 10, (4, 16))) % 180

    assert calls(shared, rng, sets=40) == 1.0
    assert calls(independent, rng) <= 0.1
    assert calls(lattice, rng) <= 0.1
    out = axis_agreement(shared(rng), rng, 199)
    assert out["mean_axis_difference_deg"] < 20 and 40 < out["null_median_deg"] < 50
    with pytest.raises(ValueError, match="models >= 2"):
        axis_agreement(np.zeros(16), rng)

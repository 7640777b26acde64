"""Subspace comparison, rotation bookkeeping, emergence steps."""

import numpy as np
import pytest

from analysis.representation.compare import (emergence_step, loading_angles_deg, map_angles_deg, matched_cosines,
                              measured_rotation, null_loading_angles_deg)
from analysis.representation.dissect import rotation_summary


def test_loading_angles_zero_for_same_span_and_90_for_orthogonal():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    a = q[:, :3].T
    mix = rng.normal(size=(3, 3))
    np.testing.assert_allclose(loading_angles_deg(a, mix @ a), 0, atol=1e-5)
    np.testing.assert_allclose(loading_angles_deg(a, q[:, 3:6].T), 90, atol=1e-5)
    # one shared direction, one orthogonal: angles (0, 90), ascending
    np.testing.assert_allclose(loading_angles_deg(q[:, [0, 1]].T, q[:, [0, 5]].T), [0, 90], atol=1e-5)
    assert matched_cosines(a, -a[::-1]) == pytest.approx(np.ones(3))
    with pytest.raises(ValueError):
        loading_angles_deg(a, np.zeros((3, 5)))


def test_map_angles_use_common_alive_cells_only():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(16, 16, 3))
    other = maps @ rng.normal(size=(3, 3)) + 5.0  # same span, offset (centring removes it)
    other[:4] = np.nan  # dead in b only: ignored
    angles, n = map_angles_deg(maps, other)
    assert n == 12 * 16
    np.testing.assert_allclose(angles, 0, atol=1e-5)
    angles, _ = map_angles_deg(maps, rng.normal(size=(16, 16, 3)))
    assert angles.min() > 30  # unrelated maps over 256 cells are far apart
    with pytest.raises(ValueError, match="too few"):
        map_angles_deg(maps, np.full((16, 16, 3), np.nan))


def test_measured_rotation_wraps_and_rotation_summary():
    assert float(measured_rotation(350, 20)) == pytest.approx(30)
    assert float(measured_rotation(20, 350)) == pytest.approx(-30)
    ref = {"body_axis_deg": 170.0, "components": [{"kind": "along-axis", "direction_deg": 350.0}]}
    rot = [{"body_axis_deg": 35.0, "components": [{"kind": "along-axis", "direction_deg": 44.0}]}]
    s = rotation_summary([45.0], ref, rot)
    assert s["components"][0]["measured_rotation_deg"] == [pytest.approx(54.0)]
    assert s["components"][0]["error_deg"] == [pytest.approx(9.0)]
    assert s["body_axis_rotation_deg"] == [pytest.approx(45.0)]


def test_emergence_step():
    steps = [5, 10, 15, 20, 25]
    assert emergence_step(steps, ["none", "radial", "none", "radial", "radial"]) == 20
    assert emergence_step(steps, ["radial"] * 5) == 5
    assert emergence_step(steps, ["radial", "radial", "none", "none", "none"]) is None


def test_null_loading_angles_grow_with_dimension():
    import jax

    small = null_loading_angles_deg(jax.random.key(0), 12, 6, samples=40)
    big = null_loading_angles_deg(jax.random.key(0), 128, 6, samples=40)
    assert np.all(np.diff(small) >= 0) and small[0] < 15 and small[-1] > 60
    assert big[0] > 60  # in 128 dimensions random subspaces are nearly orthogonal

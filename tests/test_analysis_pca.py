"""Cell-state PCA: planted ground truth end to end, maps, signs, options, real-model rotation."""

import numpy as np
import pytest
from analysis_fixtures import lizard_states_60

from analysis.representation.axes import axis_angle_between, direction_vector, wrap180
from analysis.representation.dissect import analyse_steps
from analysis.representation.pca import canonical_signs, fit_cell_pca, pc_maps, variance_captured
from nca.errors import NCAError


def planted_states(rng, size=64, radius=28.0, n_channels=16):
    """States [size, size, C] on a disc: a ramp at a random angle (std ~1.5), a sharp split
    at 90 deg to it (std 1), a radial map (std ~0.5), the rest noise (std 0.1), in shuffled
    hidden channels. Returns (states, ramp_deg, split_deg, channels of ramp/split/radial)."""
    r, c = np.mgrid[:size, :size].astype(float)
    u, v = c - size / 2, -(r - size / 2)
    alpha = (np.hypot(u, v) < radius).astype(float)
    ramp_deg = rng.uniform(0, 360)
    split_deg = np.mod(ramp_deg + rng.choice([90.0, -90.0]), 360)

    def proj(theta):
        d = direction_vector(theta)
        return u * d[0] + v * d[1]

    x = rng.normal(0, 0.1, (size, size, n_channels))
    ch = 4 + rng.permutation(n_channels - 4)[:3]
    x[..., ch[0]] += 3.0 * proj(ramp_deg) / radius
    x[..., ch[1]] += np.where(proj(split_deg) > 0, 1.0, -1.0)
    x[..., ch[2]] += 2.0 * np.hypot(u, v) / radius
    x[..., 3] = alpha
    return x * alpha[..., None], ramp_deg, split_deg, ch


@pytest.mark.parametrize("trial", range(3))
def test_planted_ground_truth_end_to_end(trial):
    rng = np.random.default_rng(trial)
    x, ramp_deg, split_deg, ch = planted_states(rng)
    _, _, res = analyse_steps([1], x[None, None, ..., 4:], x[None, None, ..., 3], n_components=4)
    comps = res["steps"][0]["components"]
    evr = [c["explained_variance_ratio"] for c in comps]
    assert evr[0] > evr[1] > evr[2] > 5 * evr[3]  # variances ordered as planted
    # each PC is its planted channel, signed so that channel's loading is positive
    loadings = np.array(res["pca"]["components"])
    for j in range(3):
        assert loadings[j, ch[j] - 4] > 0.97
    assert abs(float(wrap180(comps[0]["direction_deg"] - ramp_deg))) < 2.0
    assert abs(float(wrap180(comps[1]["direction_deg"] - split_deg))) < 2.0
    assert comps[0]["kind"] in ("along-axis", "across-axis") and comps[0]["profile"] == "ramp"
    assert comps[1]["kind"] in ("along-axis", "across-axis") and comps[1]["profile"] == "split"
    assert comps[2]["kind"] == "radial" and comps[2]["radial_association"] > 0.9
    assert comps[3]["kind"] == "none"


def test_pc_maps_nan_where_dead_and_scores_match_transform():
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(3, 2, 9, 11, 5))
    alive = rng.uniform(size=(3, 2, 9, 11)) > 0.4
    p = fit_cell_pca(feats, alive, 3)
    maps = pc_maps(p, feats, alive)
    assert maps.shape == (3, 2, 9, 11, 3)
    assert np.isnan(maps[~alive]).all() and np.isfinite(maps[alive]).all()
    np.testing.assert_allclose(maps[alive], p.transform(feats[alive]))
    # pooled scores are centred and their variances are the explained variances
    np.testing.assert_allclose(maps[alive].mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(maps[alive].var(0, ddof=1), p.explained_variance, rtol=1e-6)


def test_signs_canonical_and_independent_of_cell_order():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    alive = np.ones(300, bool)
    a = fit_cell_pca(x, alive, 4)
    b = fit_cell_pca(x[rng.permutation(300)], alive, 4)
    c = fit_cell_pca(x[::-1], alive, 4)
    np.testing.assert_allclose(a.components, b.components, atol=1e-8)
    np.testing.assert_allclose(a.components, c.components, atol=1e-8)
    idx = np.abs(a.components).argmax(1)
    assert (a.components[np.arange(4), idx] > 0).all()
    np.testing.assert_allclose(canonical_signs(-a.components), a.components)


def test_variance_captured_equals_evr_for_single_grid_fit_and_standardize():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(1, 10, 10, 4)) * np.array([1.0, 2.0, 0.5, 100.0])
    alive = np.ones((1, 10, 10), bool)
    p = fit_cell_pca(feats, alive, 3)
    np.testing.assert_allclose(variance_captured(p, feats, alive)[0], p.explained_variance_ratio, rtol=1e-6)
    assert abs(p.components[0, 3]) > 0.999  # the large-scale feature dominates unscaled
    ps = fit_cell_pca(feats, alive, 3, standardize=True)
    assert abs(ps.components[0, 3]) < 0.99 and ps.explained_variance_ratio[0] < 0.5


def test_too_few_alive_cells_is_a_clear_error():
    feats = np.zeros((1, 8, 8, 12))
    alive = np.zeros((1, 8, 8), bool)
    alive[0, 3, 3] = True
    with pytest.raises(NCAError, match="alive cells"):
        fit_cell_pca(feats, alive, 4)
    with pytest.raises(NCAError, match="step 7"):
        analyse_steps([7], feats[:, None], alive[:, None].astype(float), 4)
    with pytest.raises(NCAError, match="components"):
        fit_cell_pca(np.zeros((1, 8, 8, 3)), np.ones((1, 8, 8), bool), 4)


def test_rotated_copy_of_real_trajectory_rotates_found_axes():
    """np.rot90 of a published model's states (counter-clockwise as viewed) gives the same
    PCA and rotates every found direction and the body axis by +90 deg."""
    st = lizard_states_60()[[40, 60], 0]  # [2, H, W, C]
    rot = np.rot90(st, axes=(-3, -2))
    p0, _, r0 = analyse_steps([40, 60], st[:, None, ..., 4:], st[:, None, ..., 3], 5)
    p1, _, r1 = analyse_steps([40, 60], rot[:, None, ..., 4:], rot[:, None, ..., 3], 5)
    np.testing.assert_allclose(p0.components, p1.components, atol=1e-6)
    np.testing.assert_allclose(p0.explained_variance_ratio, p1.explained_variance_ratio, rtol=1e-6)
    n_axial = 0
    for b0, b1 in zip(r0["steps"], r1["steps"]):
        assert axis_angle_between(b1["body_axis_deg"] - b0["body_axis_deg"], 90.0) < 1.0
        for c0, c1 in zip(b0["components"], b1["components"]):
            if c0["association"] > 0.3:
                n_axial += 1
                assert abs(float(wrap180(c1["direction_deg"] - c0["direction_deg"] - 90))) < 2.0
            assert c1["radial_association"] == pytest.approx(c0["radial_association"], abs=1e-6)
            assert c1["kind"] == c0["kind"]
    assert n_axial >= 2  # the test measured something


def test_per_step_fits_match_single_step_pca_and_pooled_maps_are_shared():
    rng = np.random.default_rng(4)
    x0, _, _, _ = planted_states(rng, size=32, radius=13.0)
    x1, _, _, _ = planted_states(rng, size=32, radius=13.0)
    feats = np.stack([x0, x1])[:, None, ..., 4:]
    alpha = np.stack([x0, x1])[:, None, ..., 3]
    pooled, maps, res = analyse_steps([10, 20], feats, alpha, 3, per_step=True)
    for s in range(2):
        own = fit_cell_pca(feats[s], alpha[s] > 0.1, 3)
        np.testing.assert_allclose(res["steps"][s]["explained_variance_ratio_fit"], own.explained_variance_ratio)
        np.testing.assert_allclose(maps[s], pc_maps(own, feats[s], alpha[s] > 0.1))
    _, maps_pooled, res_pooled = analyse_steps([10, 20], feats, alpha, 3)
    np.testing.assert_allclose(maps_pooled, pc_maps(pooled, feats, alpha > 0.1))
    assert res_pooled["pca"]["fit_steps"] == [10, 20] and "explained_variance_ratio_fit" not in res_pooled["steps"][0]


@pytest.mark.parametrize("standardize", [False, True])
def test_fit_is_bit_identical_to_scikit_learn_full_svd_pca(standardize):
    """fit_cell_pca solves the PCA with scipy's SVD itself (importing scikit-learn costs ~1 s of
    every report's start); it must give exactly what scikit-learn's PCA(svd_solver="full") gave,
    on planted low-rank data and on isotropic noise (near-tied variances)."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(7)
    low_rank = rng.normal(size=(3, 500, 3)) @ rng.normal(size=(3, 12)) + 0.05 * rng.normal(size=(3, 500, 12))
    for feats in (low_rank.reshape(3, 20, 25, 12), rng.normal(size=(2, 20, 25, 12))):
        alive = rng.random(feats.shape[:-1]) < 0.7
        p = fit_cell_pca(feats, alive, 5, standardize=standardize)
        x = feats[alive].astype(np.float64)
        scale = x.std(0) if standardize else np.ones(x.shape[1])
        ref = PCA(n_components=5, svd_solver="full").fit((x - x.mean(0)) / np.where(scale > 1e-12, scale, 1.0))
        assert np.array_equal(p.components, canonical_signs(ref.components_))
        assert np.array_equal(p.explained_variance, ref.explained_variance_)
        assert np.array_equal(p.explained_variance_ratio, ref.explained_variance_ratio_)


def test_the_fit_and_the_profile_figure_need_no_scikit_learn(monkeypatch):
    """The report's path stays free of the scikit-learn import (about 1 s of each start), and
    without it the profile figure still draws each component's monotone fit: non-decreasing
    along the found direction (or with the sign of the radial association), not flat."""
    import sys

    from analysis.plots import fig_profiles

    for name in ("sklearn", "sklearn.decomposition", "sklearn.isotonic"):
        monkeypatch.setitem(sys.modules, name, None)  # any import of it now raises
    states, *_ = planted_states(np.random.default_rng(3), size=32, radius=12.0)
    _, maps, res = analyse_steps([1], states[None, None, ..., 4:], states[None, None, ..., 3], 3)
    comps = res["steps"][0]["components"]
    fig = fig_profiles(maps[0, 0], states[..., 3], res["steps"][0], 0.1)
    assert len(fig.axes) == 3
    for ax, c in zip(fig.axes, comps):
        x, fit = ax.lines[1].get_data()  # the black line, drawn in order of x
        sign = -1.0 if c["kind"] == "radial" and c["radial_association"] <= 0 else 1.0
        assert np.all(np.diff(x) >= 0) and np.all(sign * np.diff(fit) >= -1e-12), c["kind"]
        assert np.ptp(fit) > 0.1 * np.ptp(ax.lines[0].get_data()[1])

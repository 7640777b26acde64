"""Training dynamics (analysis.dynamics): transitions on planted loss curves, component
tracking in a common basis, weights along training."""

import numpy as np
import pytest

from analysis import dynamics as Dy

T = np.arange(1, 1501.0)


def _sig(z):
    return 1 / (1 + np.exp(-z))


CURVES = {
    "smooth_exponential": 0.1 * np.exp(-T / 300),
    "power_law": 0.1 * T ** -0.5,
    "exponential_to_a_floor": 0.002 + 0.05 * np.exp(-T / 200),
    # 80 % drop around step 600 on a power-law background; log-loss halfway at ~606
    "sharp_drop_on_power_law": 0.1 * T ** -0.3 * (1 - 0.8 * _sig((T - 600) / 8)),
    # flat, then a 90 % drop around step 400 and a slow decline; log-loss halfway at ~409
    "plateau_then_drop": 0.05 * (1 - 0.9 * _sig((T - 400) / 8)) * np.where(T > 400, (T / 400) ** -0.3, 1),
}
PLANTED = {"sharp_drop_on_power_law": 606, "plateau_then_drop": 409}


def _noisy(curve, seed, ar=0.6, sd=0.05):
    """Multiplicative log-normal noise with AR(1) correlation, as consecutive training losses."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, sd, len(curve))
    e = np.zeros_like(z)
    for i in range(len(z)):
        e[i] = ar * e[i - 1] + z[i] if i else z[i]
    return curve * 10 ** e


@pytest.mark.parametrize("name", list(CURVES))
def test_transitions_are_reported_with_an_interval_only_where_planted(name):
    r = Dy.detect_transitions(T, _noisy(CURVES[name], 0))
    if name in PLANTED:
        (tr,) = r["transitions"]
        lo, hi = tr["interval"]
        assert lo <= PLANTED[name] <= hi and hi - lo < 0.05 * PLANTED[name]
        assert tr["drop_log10"] > 0.5 and tr["delta_bic"] > 10 and tr["width_decades"] <= 0.04
    else:
        assert r["transitions"] == []
    assert r["reason"] is None and r["n_effective"] < r["n"]  # correlated noise counted as such


def test_smooth_curves_give_no_transition_over_noise_draws():
    found = sum(len(Dy.detect_transitions(T, _noisy(CURVES[c], s))["transitions"])
                for c in ("smooth_exponential", "power_law") for s in range(1, 6))
    assert found == 0


def test_the_old_largest_drop_measure_cannot_tell_the_two_apart_but_detection_can():
    """The issue's motivating failure, on log-spaced checkpoints."""
    kept = np.array([1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, 562, 1000, 1500])
    smooth = Dy.phase_change(kept, CURVES["smooth_exponential"][kept - 1])["share_of_total_drop"]
    sharp = Dy.phase_change(kept, CURVES["sharp_drop_on_power_law"][kept - 1])["share_of_total_drop"]
    assert abs(smooth - sharp) < 0.3  # both look alike to it
    r = Dy.detect_transitions(kept, CURVES["sharp_drop_on_power_law"][kept - 1])
    assert r["transitions"] == [] and "too few" in r["reason"]  # sparse: no claim either way


def test_two_planted_drops_are_both_found():
    c = 0.1 * T ** -0.2 * (1 - 0.7 * _sig((T - 150) / 3)) * (1 - 0.7 * _sig((T - 900) / 10))
    r = Dy.detect_transitions(T, _noisy(c, 2))
    steps = [t["step"] for t in r["transitions"]]
    assert len(steps) == 2 and 140 < steps[0] < 160 and 880 < steps[1] < 930


def test_onset_interval_brackets_the_first_checkpoint_that_holds_for_good():
    assert Dy.onset_interval([0, 1, 3, 10, 30], [False, True, False, True, True]) == {"step": 10, "after": 3}
    assert Dy.onset_interval([0, 1, 3], [True, True, True]) == {"step": 0, "after": None}
    assert Dy.onset_interval([0, 1, 3], [True, True, False]) is None


def test_weight_stats_and_map_correlation_on_planted_arrays():
    w0 = {"a": np.zeros(3), "b": np.ones(2)}
    w1 = {"a": np.array([3.0, 0, 0]), "b": np.array([1.0, 1.0])}
    ws = Dy.weight_stats(w1, w0)
    assert ws["distance_from_init"] == pytest.approx(3.0) and ws["weight_norm"] == pytest.approx(np.sqrt(11))
    r, c = np.indices((10, 10)).astype(float)
    maps_a = np.stack([r, c], -1)
    maps_b = np.stack([-c + 0.01 * r, np.sin(r * c)], -1)
    corr = Dy._map_corr(maps_a, maps_b, np.ones((10, 10), bool))
    assert corr[1, 0] > 0.99 and corr[0, 0] < 0.1  # the column map is found again, sign ignored


def test_dynamics_report_of_runs_that_never_grow_reports_nulls_with_reasons(tmp_path):
    import json
    import runpy
    from pathlib import Path

    from analysis import dynamics_report as DR
    from nca.config import preset
    from nca.errors import NCAError
    from nca.train import train

    root = Path(__file__).resolve().parents[1]
    run = tmp_path / "run"
    train(preset("tiny", train_steps=3, experiment="growing"), run, progress=False, log=lambda *_: None)
    s = DR.DynamicsReportSettings(runs=(run,), steps=8, knockouts=False, replicates=2, components=2)
    result = DR.run(s)  # the library pipeline, without the script
    DR.write(result, tmp_path / "rep")
    assert (tmp_path / "rep" / "index.html").stat().st_size > 10_000
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["figures"] == ["dense_loss.png", "abilities.png", "weights.png", "probes.png", "tracking.png",
                              "axes.png"]  # no knockouts: no knockout figure
    assert rep["across_runs"]["n_runs"] == 1 and rep["settings"]["knockouts"] is False
    r = rep["results"][0]
    assert r["dense_loss"]["transitions"]["transitions"] == [] and "too few" in r["dense_loss"]["transitions"]["reason"]
    d0 = r["checkpoints"][0]["development"]
    assert "null_reason" in d0["probe"] and "null_reason" in d0["tracking"]  # an untrained rule grows nothing
    assert d0["distance_from_init"] == 0.0
    assert r["series"]["onset"]["decodes_position"] is None
    other = tmp_path / "other"  # the same run, but its config says another architecture
    import shutil
    shutil.copytree(run, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["model"]["hidden"] = 16
    (other / "config.json").write_text(json.dumps(cfg))
    dyn = runpy.run_path(str(root / "scripts" / "dynamics_report.py"), run_name="dynamics_report")
    with pytest.raises(NCAError, match="different architectures"):
        dyn["main"]([str(run), str(other), "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()  # checked before anything is written


def test_component_significance_uses_the_spatial_null_a_ramp_passes_and_noise_does_not():
    """The null's calibration is tested in tests/test_axis_null.py; here only the wiring."""
    import jax

    from analysis.axis_null import NullSettings

    r, c = np.indices((32, 32)).astype(float)
    alpha = (((c - 16) / 13) ** 2 + ((r - 16) / 6) ** 2 <= 1).astype(float)
    rng = np.random.default_rng(0)
    settings = NullSettings(n_surrogates=39)
    # a core-periphery map (issue 23: a ramp along a 26-cell body's long axis is what a random
    # field of the body's size looks like, and the calibrated null no longer calls it)
    core = Dy._null_test((-np.hypot(c - 16, r - 16) / 3 + rng.normal(0, 0.3, c.shape))[..., None], alpha > 0.1,
                         alpha, 0.1, settings, jax.random.key(0))
    noise = Dy._null_test(rng.normal(0, 1, c.shape)[..., None], alpha > 0.1, alpha, 0.1, settings, jax.random.key(0))
    assert core["significant"] == [True] and core["radial_p_value"][0] <= 0.025
    assert noise["p_value"][0] > 0.05
    tiny = Dy._null_test(np.zeros((8, 8, 1)), np.eye(8, dtype=bool), np.eye(8), 0.1, settings, jax.random.key(0))
    assert tiny["significant"] is None and "fewer than" in tiny["null_reason"]

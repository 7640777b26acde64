"""nca.stats: the one home of the intervals every report prints (issue 25).

Checked against scipy's own distributions and a published Wilson value, and by coverage on
planted data: a 95 % interval must contain the true value about 95 % of the time, and a
broken one (z in place of t at small n) must not pass the same check.
"""

import numpy as np
import pytest
from scipy import stats as st

from nca import stats as S


def test_t_quantile_is_scipys_t_ppf():
    for df in (1, 2, 5, 30, 199):
        for q in (0.9, 0.975, 0.995):
            assert S.t_quantile(q, df) == pytest.approx(float(st.t.ppf(q, df)), rel=1e-12)


def test_mean_ci_is_the_student_t_interval():
    v = np.array([1.0, 2.5, 2.0, 4.0, np.nan])
    c = S.mean_ci(v)
    lo, hi = st.t.interval(0.95, 3, loc=v[:4].mean(), scale=st.sem(v[:4]))
    assert c["n"] == 4 and c["lo"] == pytest.approx(lo) and c["hi"] == pytest.approx(hi)
    assert S.mean_ci([3.0])["lo"] is None and "reason" in S.mean_ci([3.0])
    assert S.mean_ci([])["mean"] is None


def test_t_interval_covers_the_true_mean_95_percent_of_the_time_and_a_z_interval_at_n_4_does_not():
    rng = np.random.default_rng(0)
    draws = rng.normal(1.0, 2.0, (4000, 4))
    hits = np.mean([(c := S.mean_ci(d))["lo"] <= 1.0 <= c["hi"] for d in draws])
    assert 0.935 <= hits <= 0.965
    z_hits = np.mean(np.abs(draws.mean(1) - 1.0) <= 1.96 * draws.std(1, ddof=1) / 2)
    assert z_hits < 0.9  # the control: the same check fails an interval with the wrong quantile


def test_wilson_matches_the_published_value_and_the_proportion_forms_agree():
    lo, hi = S.wilson(0, 10)  # Brown, Cai & DasGupta (2001): 0/10 -> [0, 0.2775]
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    c = S.proportion_ci([True] * 3 + [False] * 7)
    assert (c["mean"], c["n"]) == (0.3, 10) and (c["lo"], c["hi"]) == S.wilson(3, 10)


def test_band_and_axis_forms_equal_mean_ci_per_column():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(5, 3))
    v[0, 1] = np.nan
    m, lo, hi = S.mean_ci_band(v, axis=0)
    ax = S.mean_ci_axis(v, axis=0)
    for j in range(3):
        c = S.mean_ci(v[:, j])
        assert (m[j], lo[j], hi[j]) == pytest.approx((c["mean"], c["lo"], c["hi"]))
        assert (ax["lo"][j], ax["hi"][j]) == pytest.approx((c["lo"], c["hi"]))


def test_the_selfish_experiments_and_the_reports_share_one_implementation():
    from analysis import stats as A
    from nca.selfish.experiments import interval, proportion_interval

    assert A.mean_ci is S.mean_ci and A.t_quantile is S.t_quantile
    iv = interval([1.0, None, 2.0, 4.0])
    ref = S.mean_ci([1.0, 2.0, 4.0])
    assert {k: iv[k] for k in ref} == ref and iv["values"] == [1.0, None, 2.0, 4.0]
    p = proportion_interval(3, 10)
    assert (p["k"], p["n"], p["mean"], p["p"]) == (3, 10, 0.3, 0.3) and (p["lo"], p["hi"]) == S.wilson(3, 10)
    assert proportion_interval(0, 0)["mean"] is None


def _null_redrawn():
    """bench/null_redrawn.py (a bench script, not a package module), loaded by path."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "null_redrawn.py"
    spec = importlib.util.spec_from_file_location("null_redrawn", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pooling_seeds_widens_the_interval_exactly_when_their_counts_are_over_dispersed():
    """The spatial null's redrawn design (docs/validation/spatial_null.md): per-seed counts of
    false calls pooled, intervals by bootstrap over seeds. Planted: 40 seeds x 50 maps with one
    rate for all (binomial) give dispersion ~1 and about the Clopper-Pearson width; seeds whose
    rates differ (a shared draw per seed, 1 % or 9 %) give the same mean, dispersion > 2 and
    a clearly wider interval -- what a binomial interval over all maps would hide."""
    pool = _null_redrawn().pool
    rng = np.random.default_rng(5)

    def runs(rates):
        return {s: {"fam": {t: {"k": int(rng.binomial(50, r)), "n": 50} for t in ("radial", "any_direction")}}
                for s, r in enumerate(rates)}

    def width(ci):
        return ci[1] - ci[0]

    same = pool(runs([0.05] * 40), tests=("radial", "any_direction"))[0]["radial"]
    mixed = pool(runs([0.01, 0.09] * 20), tests=("radial", "any_direction"))[0]["radial"]
    for row in (same, mixed):
        assert row["rate"] == pytest.approx(sum(row["per_seed_k"]) / 2000)
        assert row["cluster_boot_95"][0] <= row["rate"] <= row["cluster_boot_95"][1]
    assert 0.5 < same["dispersion"] < 1.6 and 0.7 < width(same["cluster_boot_95"]) / width(same["binomial_cp_95"]) < 1.3
    assert mixed["dispersion"] > 2 and width(mixed["cluster_boot_95"]) / width(mixed["binomial_cp_95"]) > 1.3

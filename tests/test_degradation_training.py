"""bench/degradation_training.py's comparison across trained models: the Welch interval of
the difference between two groups, on planted groups (a true difference and none)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import degradation_training as T  # noqa: E402


def _curves(auc, k50):
    return {"units": {"zero": {"growth": {"error": {"auc": {"mean": auc}, "k50": {"mean": k50}}}}}}


def test_welch_interval_excludes_zero_for_a_planted_difference_and_covers_it_for_none():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.4, 0.02, 4), rng.normal(0.6, 0.02, 4)
    d = T.welch_diff(a, b)
    assert d["lo"] > 0 and abs(d["mean"] - 0.2) < 0.05 and d["n"] == [4, 4]
    covered = 0
    for _ in range(200):  # no true difference: the 95 % interval covers 0 in about 95 % of draws
        d = T.welch_diff(rng.normal(0.5, 0.05, 4), rng.normal(0.5, 0.05, 4))
        covered += d["lo"] <= 0 <= d["hi"]
    assert covered >= 180
    assert T.welch_diff([0.5], [0.4, 0.6])["lo"] is None  # one model: no interval, said so


def test_compare_puts_each_group_and_the_difference_side_by_side():
    per = {"growing": [_curves(0.4, 0.6), _curves(0.5, 0.5)], "regenerating": [_curves(0.7, 0.2), _curves(0.8, 0.1)]}
    row = T.compare(per)["units/zero/growth"]
    assert row["error_auc"]["growing"]["per_model"] == [0.4, 0.5]
    assert abs(row["error_auc"]["diff_regenerating_minus_growing"]["mean"] - 0.3) < 1e-12
    assert abs(row["error_k50"]["diff_regenerating_minus_growing"]["mean"] + 0.4) < 1e-12
    assert "gap_attack" not in row  # error order only: no gap claimed

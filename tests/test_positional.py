"""Positional information (analysis.development.positional): probes and bits on planted states whose
hidden channels encode body position exactly, only nonlinearly, or not at all."""

from types import SimpleNamespace

import jax
import numpy as np
import pytest

from analysis.development import positional as P
from analysis.representation.axes import body_frame
from nca.errors import NCAError
from nca.model import ModelConfig

H = W = 32
B = 4  # replicates


def _body():
    """An elongated ellipse, long axis at 30 deg (image view). alpha [H, W]."""
    r, c = np.indices((H, W)).astype(float)
    u, v = c - 15.5, -(r - 15.5)
    t = np.deg2rad(30.0)
    a = u * np.cos(t) + v * np.sin(t)
    b = -u * np.sin(t) + v * np.cos(t)
    return ((a / 13) ** 2 + (b / 6) ** 2 <= 1).astype(np.float32)


ALPHA = _body()
FRAME = body_frame(ALPHA)
GRID = P.coordinate_grid((H, W), FRAME)
ALIVE = ALPHA > 0.1


def _states(code: str, seed: int = 0) -> np.ndarray:
    """[B, H, W, 16] planted states: alpha = the body; hidden channels 4.. encode the
    along-axis coordinate per ``code``; channels not used carry independent noise (sd 0.1,
    the scale of a quiet NCA channel)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((B, H, W, 16), np.float32)
    x[..., 3] = ALPHA
    x[..., 4:] = rng.normal(0, 0.1, (B, H, W, 12))
    a = GRID[..., 0] / np.abs(GRID[..., 0][ALIVE]).max()  # along, in [-1, 1] on the body
    if code == "exact":
        x[..., 4] = a + rng.normal(0, 0.01, (B, H, W))
    elif code == "nonlinear":
        # (cos(pi a), sin(2 pi a)): invertible on the body but nearly uncorrelated with a
        x[..., 4] = np.cos(np.pi * a) + rng.normal(0, 0.01, (B, H, W))
        x[..., 5] = np.sin(2 * np.pi * a) + rng.normal(0, 0.01, (B, H, W))
    elif code == "smooth_noise":
        # a different smooth random field in every replicate: position-like within one
        # rollout, but nothing shared across rollouts
        from scipy.ndimage import gaussian_filter
        for b in range(B):
            x[b, ..., 4] = gaussian_filter(rng.normal(0, 1, (H, W)), 4) * 20
    x[..., :3] = 0
    return x * ALIVE[None, ..., None]


def _groups(x):
    f = [x[b][ALIVE][:, 4:] for b in range(B)]
    y = [GRID[ALIVE] for _ in range(B)]
    return f, y


def _mean_r2(scores, probe, coord=0):
    return float(np.nanmean(scores[probe]["r2"][:, coord]))


@pytest.mark.parametrize("rho", [0.0, 0.6, 0.9])
def test_ksg_recovers_the_information_of_a_gaussian_pair_in_bits(rho):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((2000, 2))
    y = rho * z[:, 0] + np.sqrt(1 - rho ** 2) * z[:, 1]
    est = P.ksg_mi(z[:, 0], y, 3, jax.random.key(0))
    assert est == pytest.approx(float(P.gaussian_mi_bits(rho)), abs=0.07)


def test_ksg_of_a_vector_x_equals_that_of_its_informative_part_plus_nothing():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((2000, 3))
    y = 0.9 * z[:, 0] + np.sqrt(1 - 0.81) * z[:, 1]
    est = P.ksg_mi(np.stack([z[:, 0], z[:, 2]], 1), y, 3, jax.random.key(0))  # z2: an irrelevant dimension
    assert est == pytest.approx(float(P.gaussian_mi_bits(0.9)), abs=0.12)


def test_exact_code_is_decoded_by_both_probes_and_the_shuffled_control_finds_nothing():
    s = P.probe_scores(*_groups(_states("exact")), jax.random.key(0))
    assert _mean_r2(s, "ridge") > 0.99 and _mean_r2(s, "knn") > 0.97
    assert _mean_r2(s, "shuffled_ridge") < 0.05 and _mean_r2(s, "shuffled_knn") < 0.05
    assert np.nanmean(s["ridge"]["bits"][:, 0]) > 3  # > 3 bits: ~8+ distinguishable positions
    assert np.nanmax(s["shuffled_ridge"]["bits"]) < 0.05 and np.nanmax(s["shuffled_knn"]["bits"]) < 0.05


def test_nonlinear_code_is_decoded_only_by_the_nonlinear_probe():
    s = P.probe_scores(*_groups(_states("nonlinear")), jax.random.key(0))
    assert _mean_r2(s, "knn") > 0.8  # measured 0.88 (10 noise channels blur the neighbours)
    assert _mean_r2(s, "ridge") < 0.15  # measured 0.06
    assert np.nanmean(s["knn"]["bits"][:, 0]) > 1.5 > np.nanmean(s["ridge"]["bits"][:, 0])


@pytest.mark.parametrize("code", ["none", "smooth_noise"])
def test_states_without_shared_position_code_decode_nothing_and_carry_no_bits(code):
    f, y = _groups(_states(code))
    s = P.probe_scores(f, y, jax.random.key(0))
    for probe in ("ridge", "knn"):
        assert _mean_r2(s, probe) < 0.05, probe
        assert np.nanmean(s[probe]["bits"]) < 0.05, probe
    fi = P.feature_information(f, y, jax.random.key(0))
    assert np.nanmean(fi["bits"], 0).max() < 0.1


def test_ksg_counts_a_smooth_field_unique_to_each_rollout_as_information_the_decoding_bound_does_not():
    """Why the reports use the decoding bound: within one rollout a smooth random field is a
    function of position, so KSG (cells as independent samples) reports bits for it."""
    f, y = _groups(_states("smooth_noise"))
    ksg = P.ksg_mi(f[0][:, 0], y[0][:, 0], 3, jax.random.key(0))
    bound = np.nanmean(P.feature_information(f, y, jax.random.key(0))["bits"][:, 0, 0])
    assert ksg > 0.5 and bound < 0.1


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.9])
def test_decoding_bound_equals_the_information_of_a_gaussian_pair(rho):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((4000, 2)) * 10  # 10 px sd: the entropy is counted at 1 px
    y = rho * z[:, 0] + np.sqrt(1 - rho ** 2) * z[:, 1]
    # the conditional mean E[y | x] = rho x is the optimal decoder
    assert P.decoding_bits(y, rho * z[:, 0]) == pytest.approx(float(P.gaussian_mi_bits(rho)), abs=0.05)
    assert P.decoding_bits(y, np.full_like(y, y.mean())) < 0.01  # a decoder that knows nothing


def test_per_channel_information_finds_the_planted_channel_and_the_null_stays_at_zero():
    f, y = _groups(_states("exact"))
    fi = P.feature_information(f, y, jax.random.key(0))
    bits = np.nanmean(fi["bits"][..., 0], 0)  # [F], about the along-axis coordinate
    assert int(np.argmax(bits)) == 0 and bits[0] > 3
    assert np.delete(bits, 0).max() < 0.1
    assert np.nanmax(fi["shuffled_bits"]) < 0.05


def test_probe_direction_points_along_the_planted_channel():
    f, y = _groups(_states("exact"))
    d = P.probe_direction(np.concatenate(f), np.concatenate(y)[:, 0])
    assert abs(d[0]) > 0.99


def test_pipeline_on_planted_states_reports_null_before_there_is_a_body():
    model = SimpleNamespace(model_config=ModelConfig())
    body = _states("exact")
    states = np.stack([np.zeros_like(body), body * 0, body])  # [3, B, H, W, C]: steps 0, 1, 2
    states[1, :, 16, 16, 3] = 1.0  # one cell at step 1
    settings = P.PositionalSettings(steps=2, every=1, replicates=B, n_pcs=2)
    r = P.positional_from_states(model, states, settings, jax.random.key(0))
    first, last = r["per_step"]
    assert "fewer than" in first["null_reason"] and "knn" not in first
    assert last["ridge"]["along"]["r2"]["mean"] > 0.99 and last["ridge"]["along"]["r2"]["n"] == B
    assert last["shuffled_knn"]["along"]["r2"]["hi"] < 0.1
    assert r["frame"]["axis_deg"] == pytest.approx(30.0, abs=1.0)
    assert r["information"]["feature_bits"][0]["along"]["mean"] > 3


def test_a_model_that_never_grows_is_one_clear_error():
    with pytest.raises(NCAError, match="grows no body"):
        P.reference_frame(np.zeros((2, 8, 8)))


def test_interval_is_the_t_interval_over_seeds():
    iv = P.interval([1.0, 2.0, 3.0, np.nan])
    assert iv["n"] == 3 and iv["mean"] == 2.0
    assert iv["hi"] - 2.0 == pytest.approx(4.302653 * 1.0 / np.sqrt(3), rel=1e-5)
    assert P.interval([])["mean"] is None

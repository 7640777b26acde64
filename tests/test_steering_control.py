"""Steering's random control, matched in norm (issue 23, item 2).

A dose is one absolute unit for every direction: the L2 norm of the total push added to a
steered cell's state over the window (state units). A direction is *specific* at a dose
only when its effect lies outside the band of norm-matched random directions there: the
95 % prediction interval of one more random direction's effect, and beyond every random
direction drawn (so the false-positive rate is <= 2 / (R + 1) whatever their distribution).
Planted rules: a rule that reads one direction (found), an almost isotropic rule (no
direction special: not called special at matched norm, but called special when the
special direction is pushed 3x harder, as doses counted in each direction's own sd did:
the confound of the audit)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis.causal import steering as S
from analysis.development.positional import reference_frame
from nca.errors import NCAError
from nca.model import ModelConfig, init_params

CFG = ModelConfig()
SIZE, STEPS, REPS, R = 20, 8, 4, 16
DOSES = (-2.0, 0.0, 1.0, 2.0)


def _bar():
    x = np.zeros((SIZE, SIZE, 16), np.float32)
    x[8:12, 4:16, 3] = 1.0  # a horizontal bar of alive cells; hidden channels 0
    return x


def _unit(rng, n=12):
    v = rng.standard_normal(n)
    return v / np.linalg.norm(v)


def _rule(ws, gain):
    """Planted rule: red (channel 0) += gain * sum_k relu(w_k . hidden) in firing cells.
    ws: [K, 12] read from the identity band's hidden channels (4..15)."""
    p = jax.tree.map(np.asarray, init_params(jax.random.key(0), CFG))
    p = {k: np.zeros_like(v) for k, v in p.items()}
    p["w1"][4:16, :len(ws)] = np.asarray(ws).T
    p["w2"][:len(ws), 0] = gain
    return jax.tree.map(jnp.asarray, p)


def _embed(vs):
    d = np.zeros((len(vs), 16), np.float32)
    d[:, 4:] = np.asarray(vs)
    return d


def _effects(params, dirs, alphas=None):
    """Mean loss effect (vs dose 0) per direction and dose: [D, N]; replicate effects [D, N, B]."""
    body = _bar()
    frame = reference_frame(body[None, ..., 3])
    x0 = jnp.asarray(np.repeat(body[None], REPS, 0))
    m = S.steering_measures(params, CFG, x0, jax.random.key(3), dirs, DOSES, 0, STEPS, np.ones((SIZE, SIZE)),
                            STEPS, np.zeros((SIZE, SIZE, 4), np.float32), frame, per_step=alphas)
    return S.effects(m["loss"], DOSES)


@pytest.fixture(scope="module")
def planted():
    rng = np.random.default_rng(0)
    u = _unit(rng)
    randoms = np.stack([_unit(rng) for _ in range(R)])
    iso = np.stack([_unit(rng) for _ in range(128)])  # many read-out directions: close to isotropic
    special = _unit(rng)  # exchangeable with the random ones under the isotropic rule
    return {"u": u, "randoms": randoms, "reader": _rule([u], 0.05), "iso": _rule(iso, 0.05 / 16),
            "special": special}


def test_pushes_have_one_absolute_norm_for_every_direction():
    """(a) Doses are one unit: every direction's per-step push has the same L2 norm, and a
    do-nothing rule ends with every steered cell displaced by exactly |dose|, whatever the
    direction's spread in the body (the old unit scaled each by its own sd)."""
    per = S.push_per_step(DOSES, 0, STEPS)
    assert per.shape == (len(DOSES),)
    np.testing.assert_allclose(per * STEPS, DOSES, rtol=1e-6)
    rng = np.random.default_rng(1)
    dirs = _embed([_unit(rng) for _ in range(3)] + [np.eye(12)[2]])
    params = init_params(jax.random.key(0), CFG)  # zero output layer: the rule does nothing
    body = _bar()
    x0 = jnp.asarray(body[None])
    fin = S.steered_states(params, CFG, x0, jax.random.key(1), dirs, DOSES, 0, STEPS, np.ones((SIZE, SIZE)), STEPS)
    alive = body[..., 3] > 0
    norms = np.linalg.norm(fin[:, :, 0][..., alive, :] - body[alive], axis=-1)  # [D, N, cells]
    for j, dose in enumerate(DOSES):
        np.testing.assert_allclose(norms[:, j], abs(dose), atol=1e-5)
        assert np.ptp(norms[:, j]) < 1e-5  # identical across directions
    with pytest.raises(NCAError, match="unit"):
        S.steered_states(params, CFG, x0, jax.random.key(1), 3 * dirs, DOSES, 0, STEPS, np.ones((SIZE, SIZE)), STEPS)


def test_a_direction_the_rule_reads_is_found_specific(planted):
    """(b) The planted rule reads direction u: pushing along u raises the loss; norm-matched
    random directions raise it only by their positive cosine with u."""
    dirs = _embed(np.concatenate([planted["u"][None], planted["randoms"]]))
    mean, _ = _effects(planted["reader"], dirs)
    spec = S.specificity(mean[0], mean[1:], DOSES)
    assert spec["outside"] == [False, None, True, True]  # dose 0 is the reference: no test
    assert spec["specific_doses"] == [1.0, 2.0]
    assert spec["z"][3] > 3


def test_a_direction_no_different_from_random_is_not_called_specific(planted):
    """(b) Under an almost isotropic rule the 'special' direction (here PC1-like: 3x the
    random directions' spread in the body) does what random directions do. At matched norm
    it is not specific at any dose; pushed by its own sd (the old unit: 3x the norm) it
    would have been called specific at every dose -- the confound, reproduced."""
    dirs = _embed(np.concatenate([planted["special"][None], planted["randoms"]]))
    mean, _ = _effects(planted["iso"], dirs)
    assert np.all(np.abs(mean[1:, 3]) > 0)  # random pushes do act
    spec = S.specificity(mean[0], mean[1:], DOSES)
    assert spec["specific_doses"] == [] and not any(spec["outside"][j] for j in (0, 2, 3))
    old = np.asarray(S.push_per_step(DOSES, 0, STEPS))[None].repeat(len(dirs), 0)
    old[0] *= 3.0  # sd-based doses: PC1's sd was 2-3x a random direction's (audit)
    mean_old, _ = _effects(planted["iso"], dirs, alphas=old)
    assert S.specificity(mean_old[0], mean_old[1:], DOSES)["specific_doses"] == [-2.0, 1.0, 2.0]


def test_random_band_false_positive_rate_and_power_on_planted_numbers():
    """The band's false-positive rate on a direction drawn like the random ones: <= 5 % for
    normal effects (the prediction interval is exact), <= 2 / (R + 1) for any exchangeable
    ones (here heavy-tailed, Student t with 2 df: measured 6.9 %), up to 3 standard errors
    of n = 4000 draws; its power against an effect 5 sd of the random ones away is > 0.8."""
    rng = np.random.default_rng(2)
    n, doses = 4000, (0.0, 1.0)
    for draw, bound in ((rng.standard_normal, 0.05), (lambda s: rng.standard_t(2, s), 2 / (R + 1))):
        fp = [S.specificity(np.array([0, draw(1)[0]]), np.c_[np.zeros(R), draw(R)], doses)["outside"][1]
              for _ in range(n)]
        assert np.mean(fp) < bound + 3 * np.sqrt(bound * (1 - bound) / n)
    hit = [S.specificity(np.array([0, 5.0]), np.c_[np.zeros(R), rng.standard_normal(R)], doses)["outside"][1]
           for _ in range(1000)]
    assert np.mean(hit) > 0.8


def test_leave_one_out_false_positive_rate_counts_random_directions_called_specific():
    rng = np.random.default_rng(3)
    eff = np.c_[np.zeros(R), rng.standard_normal((R, 2))]
    fpr = S.random_false_positives(eff, (0.0, 1.0, 2.0))
    assert fpr[0] is None and all(f["n"] == R and 0 <= f["mean"] <= 1 for f in fpr[1:])
    eff[0, 1] = 50.0  # one wild random direction is called specific by the others
    assert S.random_false_positives(eff, (0.0, 1.0, 2.0))[1]["mean"] == pytest.approx(1 / R)


def test_across_models_pools_each_models_own_band():
    """Two models where pc1 is outside its band, one where it is not: 2/3 outside, z
    averaged over the three models."""
    def rep(z, outside):
        spec = {"z": [None, z], "outside": [None, outside]}
        return {"settings": {"doses": [0.0, 5.0]}, "direction_names": ["pc1", "random1"],
                "directions": {"pc1": {"specificity": {"length": spec},
                                       "effect": {"length": [{"mean": 0.0}, {"mean": 2.0 * z}]}}},
                "random_band": {"length": {"sd": [None, 2.0]}}}

    out = S.across_models([rep(4.0, True), rep(5.0, True), rep(0.5, False)], "length")
    assert out["n_models"] == 3 and out["pc1"]["outside"][0] is None
    assert out["pc1"]["outside"][1]["mean"] == pytest.approx(2 / 3) and out["pc1"]["outside"][1]["n"] == 3
    assert out["pc1"]["z"][1]["mean"] == pytest.approx(9.5 / 3) and out["pc1"]["z"][1]["lo"] < 0.5
    assert out["pc1"]["effect"][1]["mean"] == pytest.approx(19 / 3)


def test_outside_count_sets_the_hits_against_what_chance_gives():
    fp = {"mean": 0.05, "lo": 0.0, "hi": 0.2, "n": 20}
    steer = {"settings": {"doses": [0.0, 5.0]}, "direction_names": ["pc1", "probe:along", "random1"],
             "directions": {"pc1": {"specificity": {"length": {"outside": [None, True]}, "loss": {"outside": [None, False]}}},
                            "probe:along": {"specificity": {"length": {"outside": [None, False]},
                                                            "loss": {"outside": [None, False]}}},
                            "random1": {}},
             "random_false_positives": {"length": [None, fp], "loss": [None, fp]}}
    oc = S.outside_count(steer)
    assert oc["tests"] == 4 and oc["outside"] == 1 and oc["cells"] == ["pc1 length 5"]
    assert oc["expected_by_chance"] == pytest.approx(0.2)


def test_effects_are_paired_with_the_same_replicates_unsteered_run():
    v = np.array([[[10.0, 20.0], [12.0, 25.0], [np.nan, np.nan]]])  # [D=1, N=3 (doses 0, 1, 2), B=2]
    mean, per = S.effects(v, (0.0, 1.0, 2.0))
    np.testing.assert_allclose(per[0, 1], [2.0, 5.0])
    assert mean[0, 0] == 0 and mean[0, 1] == pytest.approx(3.5) and np.isnan(mean[0, 2])  # no body: no effect

"""Self-repair (McGrath et al. 2023's direct/total/compensation, analysis.causal.repair) on planted
rules: permanent erasure and passive relaxation are not repair at any horizon; two identical
integral controllers repair fully and the compensation is attributed to the twin; the same
rule with the twin's feedback cut repairs nothing.

The planted rules are 8-channel CAs on a uniform 6x6 grid with fire rate 1 (deterministic),
built from ReLU pieces of the identity perception band (the Sobel bands are never read).
Before the fix, the old measure (1 - total / sum of one-step effects along the clean run)
scored the erasing rule 0.97 at h = 40 and the relaxing rule 0.20 / 0.68 / 0.83 at
h = 10 / 60 / 120 (issue 13)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis.causal.repair import RepairSettings, repair_curves
from nca.model import ModelConfig

CFG = ModelConfig(channels=8, hidden=4, fire_rate=1.0)
GRID = 6


def planted(units, bias):
    """units: list of (input weights {perception index: w}, input bias, output weights
    {channel: w}); bias: {channel: b2}. -> params of an 8-channel, 4-unit rule."""
    w1, b1 = np.zeros((24, 4), np.float32), np.zeros(4, np.float32)
    w2, b2 = np.zeros((4, 8), np.float32), np.zeros(8, np.float32)
    for j, (win, bin_, wout) in enumerate(units):
        for i, w in win.items():
            w1[i, j] = w
        b1[j] = bin_
        for ch, w in wout.items():
            w2[j, ch] = w
    for ch, b in bias.items():
        b2[ch] = b
    return {k: jnp.asarray(v) for k, v in dict(w1=w1, b1=b1, w2=w2, b2=b2).items()}


def start(**channels):
    x = np.zeros((2, GRID, GRID, 8), np.float32)  # 2 replicates (identical: fire rate 1)
    x[..., 3] = 1.0
    for name, v in channels.items():
        x[..., int(name[1:])] = v
    return jnp.asarray(x)


def erasing_rule():
    """Channel 6 (constant 1) licenses life: dRGBA = -10 + 10 relu(c6). Without it every
    channel of every cell goes to -10: all die, nothing regrows (pulse recovery 0)."""
    return planted([({6: 1.0}, 0.0, {0: 10.0, 1: 10.0, 2: 10.0, 3: 10.0})], {0: -10.0, 1: -10.0, 2: -10.0, 3: -10.0})


def relaxing_rule(lam=0.05, beta=0.02):
    """alpha relaxes to 1 - beta (1 - c6) / lam: d alpha = lam (1 - alpha) - beta + beta relu(c6).
    Ablating c6 moves the set point to 0.6; only alpha's own leak reacts."""
    return planted([({3: 1.0}, 0.0, {3: -lam}), ({6: 1.0}, 0.0, {3: beta})], {3: lam - beta})


def twin_rule(w=0.1, lam=0.2, g=0.05, twin_feedback=True):
    """alpha = w (a + b) - lam alpha each step, a = c4 and b = c5 two identical integral
    controllers of alpha's error: da = db = g (1 - alpha). Ablating a's read, b integrates
    the error up until alpha is back at 1: full compensation by the twin. twin_feedback
    False: b is constant (no reaction), so nothing compensates."""
    return planted([({3: 1.0}, 0.0, {3: -lam, 4: -g, 5: -g if twin_feedback else 0.0}),
                    ({4: 1.0}, 0.0, {3: w}), ({5: 1.0}, 0.0, {3: w})],
                   {4: g, 5: g if twin_feedback else 0.0})


def mediation_rule(lam=0.05):
    """No compensation anywhere: channel 4 (constant 1) drives R (R <- 0.5 relu(c4) each step)
    and a second, mediated output: c5 follows c4 (dc5 = lam (c4 - c5)) and G <- 0.5 relu(c5).
    Ablating c4's read, R is lost at once and G fades as c5 decays; nothing undoes anything."""
    return planted([({0: 1.0}, 0.0, {0: -1.0}), ({4: 1.0}, 0.0, {0: 0.5, 5: lam}),
                    ({5: 1.0}, 0.0, {5: -lam, 1: 0.5}), ({1: 1.0}, 0.0, {1: -1.0})], {})


def follower_rule(lam=0.05):
    """A passive copying channel: c5 follows c4 (dc5 = lam (c4 - c5)) and inhibits R, which
    is R <- 0.5 relu(c4 - c5 + 1) (0.5 in the clean run, c4 = c5 = 1). Ablating c4's read
    removes R's drive; then c5, copying the now-absent c4, leaks away and releases R. No part
    senses the loss or acts to undo it: c5 only tracks what it copies."""
    return planted([({0: 1.0}, 0.0, {0: -1.0}), ({4: 1.0, 5: -1.0}, 1.0, {0: 0.5}),
                    ({4: 1.0}, 0.0, {5: lam}), ({5: 1.0}, 0.0, {5: -lam})], {})


HORIZONS = (10, 40, 120)


@pytest.fixture(scope="module")
def results():
    s = RepairSettings(horizons=HORIZONS, chunk=8)
    key = jax.random.key(0)
    return {
        "erase": repair_curves(erasing_rule(), CFG, start(c6=1.0), key, 0, [6], s),
        "relax": repair_curves(relaxing_rule(), CFG, start(c6=1.0), key, 0, [6], s),
        "twin": repair_curves(twin_rule(), CFG, start(c4=1.0, c5=1.0), key, 0, [4], s),
        "cut": repair_curves(twin_rule(twin_feedback=False), CFG, start(c4=1.0, c5=1.0), key, 0, [4], s),
        "mediation": repair_curves(mediation_rule(), CFG, start(c0=0.5, c1=0.5, c4=1.0, c5=1.0), key, 0, [4], s),
        "follower": repair_curves(follower_rule(), CFG, start(c0=0.5, c4=1.0, c5=1.0), key, 0, [4], s),
    }


def at(r, h):
    return next(a for a in r["per_channel"][0]["at"] if a["h"] == h)


def test_permanent_erasure_is_not_repair_at_any_horizon(results):
    r = results["erase"]
    for h in HORIZONS:
        a = at(r, h)
        assert a["direct"]["mean"] > 0.3  # the ablation does a lot ...
        assert abs(a["repair_fraction"]["mean"]) < 0.02  # ... and nothing undoes it
        assert a["pulse_recovery"]["mean"] == pytest.approx(0.0, abs=1e-6)  # one step kills for good
        assert a["compensating"] == []


def test_pure_relaxation_is_not_repair_at_any_horizon(results):
    r = results["relax"]
    for h in HORIZONS:
        a = at(r, h)
        assert a["total"]["mean"] > 0.05
        assert abs(a["repair_fraction"]["mean"]) < 0.02, (h, a["repair_fraction"])
        assert a["compensating"] == []


def test_identical_twin_controller_gives_full_repair_attributed_to_the_twin(results):
    r = results["twin"]
    assert at(r, 10)["repair_fraction"]["mean"] < at(r, 120)["repair_fraction"]["mean"]  # it takes time
    a = at(r, 120)
    assert a["direct"]["mean"] > 0.15
    assert a["repair_fraction"]["mean"] > 0.9
    shares = {x["channel"]: x["share"]["mean"] for x in a["attribution"]}
    assert shares[5] == pytest.approx(1.0, abs=0.02)
    assert all(abs(shares[k]) < 1e-6 for k in (6, 7))  # never read: no part in the repair
    assert a["compensating"] == [5]


def test_without_the_twins_feedback_nothing_compensates(results):
    r = results["cut"]
    for h in HORIZONS:
        a = at(r, h)
        assert a["direct"]["mean"] > 0.15
        assert abs(a["repair_fraction"]["mean"]) < 0.02
        assert a["compensating"] == []


def test_summary_reports_every_horizon_with_an_interval_over_replicates(results):
    s = results["twin"]["summary"]
    assert [x["h"] for x in s] == list(HORIZONS)
    assert all(x["median_repair_fraction"]["n"] == 2 for x in s)
    c = results["twin"]["per_channel"][0]["curves"]
    assert len(c["direct"]["mean"]) == 120 and len(c["total"]["lo"]) == 120


def test_unit_attribution_names_the_twins_reader_and_accounts_for_the_compensation():
    s = RepairSettings(horizons=(10, 120), attribute=False, attribute_units=True, top_units=4)
    r = repair_curves(twin_rule(), CFG, start(c4=1.0, c5=1.0), jax.random.key(0), 0, [4], s)
    a = r["per_channel"][0]["at"][1]["units"]
    shares = {u["unit"]: u["share"]["mean"] for u in a["top_units"]}
    # unit 2 reads the twin b: its rising output undoes the loss; unit 0 (alpha's leak)
    # pulls alpha down as it recovers (negative share); unit 1 reads the ablated a: 0
    assert max(shares, key=shares.get) == 2 and shares[2] > 1.0 and shares[0] < 0
    assert abs(shares.get(1, 0.0)) < 1e-6
    # linear rule, no clipping, no deaths: the first-order sum is the measured compensation
    assert a["sum_of_units"]["mean"] == pytest.approx(a["measured_along_direct"]["mean"], abs=1e-3)
    assert a["measured_along_direct"]["mean"] > 0.9
    assert r["summary"][1]["median_compensation_along_direct"]["mean"] == pytest.approx(a["measured_along_direct"]["mean"])
    cut = repair_curves(twin_rule(twin_feedback=False), CFG, start(c4=1.0, c5=1.0), jax.random.key(0), 0, [4], s)
    u = cut["per_channel"][0]["at"][1]["units"]
    assert all(abs(x["share"]["mean"]) < 1e-6 for x in u["top_units"])


def defs(r, h):
    return at(r, h)["definitions"]


def test_negative_repair_is_what_a_rule_without_compensation_scores_when_the_channel_has_a_second_output(results):
    """The lizard's shape (repair fraction falling below 0 with the horizon) from a rule with
    no compensation at all: the total effect includes the mediated output (G through c5),
    which both direct definitions exclude. Expected: 1 - sqrt(1 + m^2), m = 1 - 0.95^(h-1)
    (the share of G lost): -0.066, -0.322, -0.413 at h = 10, 40, 120. Along the direct
    effect (R) the reaction changes nothing: compensation along d = 0."""
    r = results["mediation"]
    for h in HORIZONS:
        m = 1 - 0.95 ** (h - 1)
        for name in ("others_frozen", "update_frozen"):
            d = defs(r, h)[name]
            assert d["direct"]["mean"] == pytest.approx(0.25, abs=1e-4)
            assert d["repair_fraction"]["mean"] == pytest.approx(1 - np.sqrt(1 + m * m), abs=2e-3), (h, name)
            assert d["along_direct"]["mean"] == pytest.approx(0.0, abs=1e-4)
        assert at(r, h)["compensating"] == []
    s = {x["h"]: x for x in r["summary"]}
    assert s[120]["update_frozen"]["median_repair_fraction"]["mean"] == pytest.approx(1 - np.sqrt(2), abs=3e-3)
    assert s[120]["others_frozen"]["median_along_direct"]["mean"] == pytest.approx(0.0, abs=1e-4)


def test_a_passive_copying_channel_scores_as_repair_under_both_definitions(results):
    """What a positive score can be without any backup: c5 only copies c4 and leaks when c4
    is gone; the repair fraction is 1 - 0.95^(h-1) (0.37, 0.86, 1.00) under both direct
    definitions and along d, and c5 is listed as the compensating channel. So a positive
    repair fraction and a compensating channel do not mean a backup (docs/validation/repair.md)."""
    r = results["follower"]
    for h in HORIZONS:
        expect = 1 - 0.95 ** (h - 1)
        for name in ("others_frozen", "update_frozen"):
            d = defs(r, h)[name]
            assert d["repair_fraction"]["mean"] == pytest.approx(expect, abs=2e-3), (h, name)
            assert d["along_direct"]["mean"] == pytest.approx(expect, abs=2e-3)
    assert at(r, 120)["compensating"] == [5]


def test_the_update_frozen_definition_counts_the_readouts_own_relaxation_as_repair(results):
    """McGrath et al.'s direct path freezes everything downstream of the ablated write,
    the readout's own dynamics included: alpha's leak, which the 'others frozen' definition
    keeps in the direct path (repair 0), reacts in the total run only, so under 'update
    frozen' pure relaxation scores as repair. At h = 40: direct alpha 1 - 0.02 * 40 = 0.2,
    total 1 - 0.4 (1 - 0.95^40) = 0.651: repair 1 - 0.349 / 0.8 = 0.56."""
    r = results["relax"]
    d = defs(r, 40)
    assert abs(d["others_frozen"]["repair_fraction"]["mean"]) < 0.02
    assert d["update_frozen"]["repair_fraction"]["mean"] == pytest.approx(1 - (1 - 0.651) / 0.8, abs=0.01)
    assert d["update_frozen"]["direct"]["mean"] == pytest.approx(0.4, abs=1e-3)
    for h in HORIZONS:  # erasure reads nothing of the readout: 0 under both
        assert abs(defs(results["erase"], h)["update_frozen"]["repair_fraction"]["mean"]) < 0.02, h
    # the twin rule with the twin's feedback cut has alpha's leak (-0.2 alpha) too: under
    # "update frozen" alpha falls 0.1 a step (direct 1 - 0.1 h, seen 0 from h = 10) while the
    # total relaxes to 0.5 + 0.5 * 0.8^h, so at h = 10 repair = 1 - (1 - 0.554) = 0.554
    d = defs(results["cut"], 10)
    assert abs(d["others_frozen"]["repair_fraction"]["mean"]) < 0.02
    assert d["update_frozen"]["repair_fraction"]["mean"] == pytest.approx(0.5 + 0.5 * 0.8 ** 10, abs=0.01)

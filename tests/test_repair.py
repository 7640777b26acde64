"""Self-repair (McGrath et al. 2023's direct/total/compensation, analysis.repair) on planted
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

from analysis.repair import RepairSettings, repair_curves
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
        assert a["backups"] == []


def test_pure_relaxation_is_not_repair_at_any_horizon(results):
    r = results["relax"]
    for h in HORIZONS:
        a = at(r, h)
        assert a["total"]["mean"] > 0.05
        assert abs(a["repair_fraction"]["mean"]) < 0.02, (h, a["repair_fraction"])
        assert a["backups"] == []


def test_identical_twin_controller_gives_full_repair_attributed_to_the_twin(results):
    r = results["twin"]
    assert at(r, 10)["repair_fraction"]["mean"] < at(r, 120)["repair_fraction"]["mean"]  # it takes time
    a = at(r, 120)
    assert a["direct"]["mean"] > 0.15
    assert a["repair_fraction"]["mean"] > 0.9
    shares = {x["channel"]: x["share"]["mean"] for x in a["attribution"]}
    assert shares[5] == pytest.approx(1.0, abs=0.02)
    assert all(abs(shares[k]) < 1e-6 for k in (6, 7))  # never read: no part in the repair
    assert a["backups"] == [5]


def test_without_the_twins_feedback_nothing_compensates(results):
    r = results["cut"]
    for h in HORIZONS:
        a = at(r, h)
        assert a["direct"]["mean"] > 0.15
        assert abs(a["repair_fraction"]["mean"]) < 0.02
        assert a["backups"] == []


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

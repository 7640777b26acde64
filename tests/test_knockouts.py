"""Knockout atlas: unread channels have no effect, a planted backup pair shows positive
epistasis and is flagged, the batched (vmapped) knockouts equal one-by-one hooked rollouts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nca
from analysis.causal import knockouts as K
from nca.model import ModelConfig


def or_model():
    """A hand-built CA on 8 channels: every cell keeps alpha = 1 while channel 4 OR channel
    5 is on and channel 6 is on; channel 7 is never read.

    d alpha = relu(a) + relu(b) - relu(a + b - 1) + relu(c6) - 2 (= OR(a, b) + c6 - 2 for
    0/1 inputs), every other update is 0; fire rate 1, so it is deterministic."""
    cfg = ModelConfig(channels=8, hidden=4, fire_rate=1.0)
    w1 = np.zeros((24, 4), np.float32)
    b1 = np.zeros(4, np.float32)
    w1[4, 0] = 1.0                      # h0 = relu(a)
    w1[5, 1] = 1.0                      # h1 = relu(b)
    w1[4, 2] = w1[5, 2] = 1.0           # h2 = relu(a + b - 1)
    b1[2] = -1.0
    w1[6, 3] = 1.0                      # h3 = relu(c6)
    w2 = np.zeros((4, 8), np.float32)
    w2[:, 3] = [1.0, 1.0, -1.0, 1.0]
    b2 = np.zeros(8, np.float32)
    b2[3] = -2.0
    params = {k: jnp.asarray(v) for k, v in dict(w1=w1, b1=b1, w2=w2, b2=b2).items()}
    x0 = np.zeros((1, 8, 8, 8), np.float32)
    x0[..., 3:] = 1.0
    target = np.zeros((8, 8, 4), np.float32)
    target[..., 3] = 1.0
    return cfg, params, x0, target


def test_planted_backup_pair_has_positive_epistasis_and_unread_channel_no_effect():
    cfg, params, x0, target = or_model()
    start = K.Start("growth", x0, 0, 6)
    abl = K.none_ablation(8) + K.channel_ablations(K.singles_and_pairs([4, 5, 6, 7]), 8)
    loss, _ = K.ablation_losses(params, cfg, start, jax.random.key(0), target, abl, chunk=4)
    mean = loss.mean(1)
    ref, empty = float(mean[0]), K.empty_loss(target)
    assert ref == 0.0 and empty == pytest.approx(0.25)
    eff = dict(zip(abl.labels, K.normalised_effect(mean, ref, empty)))
    assert eff["7"] == 0.0                          # never read: exactly no effect
    assert eff["4"] == 0.0 and eff["5"] == 0.0      # each alone is backed up by the other
    assert eff["6"] == pytest.approx(1.0)           # essential: the body dies
    assert eff["4+5"] == pytest.approx(1.0)         # both gone: dies
    single = {c: eff[str(c)] for c in (4, 5, 6, 7)}
    pairs = {(a, b): eff[f"{a}+{b}"] for a, b in K.singles_and_pairs([4, 5, 6, 7])[4:]}
    e = K.epistasis(np.array([single[c] for c in (4, 5, 6, 7)]), pairs, {4: 0, 5: 1, 6: 2, 7: 3})
    assert e[0, 1] == pytest.approx(1.0) and e[1, 0] == e[0, 1]
    assert abs(e[2, 3]) < 1e-6 and abs(e[0, 2]) < 1e-6  # 6 already kills alone
    flagged = K.redundant_pairs(single, pairs)
    assert [f["pair"] for f in flagged] == [[4, 5]]


def test_atlas_on_the_hand_built_model_reports_the_backup_pair():
    cfg, params, x0, target = or_model()
    # this model only keeps cells alive (it cannot grow from the seed): start from x0
    a = K.atlas(params, cfg, target, jax.random.key(0),
                K.AtlasSettings(8, (4, 5, 6, 7), K.Assay(grow_steps=3, persist_steps=3, regrow_steps=3, replicates=2),
                                chunk=8), x0=np.repeat(x0, 2, 0))  # 2 replicates: a pair is flagged only with an interval
    g = a["conditions"]["growth"]
    assert g["labels"] == ["4", "5", "6", "7"]
    e = np.array(g["epistasis"], float)
    assert e[0, 1] > 0.0 and [r["pair"] for r in g["redundant"]] == [[4, 5]]
    r = g["redundancy"]  # buffering can flag any pair: all 6 are tested; 6 is lethal alone (buffering 0)
    assert (r["eligible_units"], r["eligible_pairs"], r["tested_pairs"]) == (4, 6, 6)
    assert [f["pair"] for f in r["flagged"]] == [["4", "5"]]
    assert [f["pair"] for f in r["flagged_scaled_epistasis"]] == [["4", "5"]]  # the old rule agrees here
    assert g["effect_ci"][2]["mean"] == pytest.approx(1.0) and g["effect_ci"][2]["n"] == 2


def test_directions_knocked_out_in_pairs_find_the_backup_pair_too():
    # "PCs" that are the channel directions of 4 and 5 (and 6): their joint ablation is the
    # backup pair; 6 alone is lethal, so the pairs with it have buffering 0
    cfg, params, x0, target = or_model()
    eye = np.eye(8, dtype=np.float32)
    extra = K.direction_ablations([eye[4:5], eye[5:6], eye[6:7]], ["d4", "d5", "d6"], 8)
    a = K.atlas(params, cfg, target, jax.random.key(0),
                K.AtlasSettings(8, (4, 7), K.Assay(grow_steps=3, persist_steps=3, regrow_steps=3, replicates=2),
                                chunk=8), x0=np.repeat(x0, 2, 0), extra=extra)
    g = a["conditions"]["growth"]
    assert g["extra_pairs"]["labels"] == ["d4+d5", "d4+d6", "d5+d6"]
    assert g["extra_pairs"]["effect"] == pytest.approx([1.0, 1.0, 1.0])
    r = g["extra_redundancy"]
    assert (r["eligible_units"], r["eligible_pairs"], r["tested_pairs"]) == (3, 3, 3)
    assert [f["pair"] for f in r["flagged"]] == [["d4", "d5"]]
    assert "extra_pairs" not in a["conditions"]["persistence"]
    assert "pairs" not in a["conditions"]["regeneration"]


@pytest.fixture(scope="module")
def lizard():
    return nca.load_model("distill:lizard/regenerating")


def test_unread_channel_of_a_real_model_has_exactly_zero_effect(lizard):
    c = 9
    w1 = np.array(lizard.params["w1"])
    w1[[c, 16 + c, 32 + c]] = 0.0  # the update rule never reads channel 9
    params = {**lizard.params, "w1": jnp.asarray(w1)}
    seed = np.asarray(nca.seed_state(40, 40, lizard.model_config, batch=1))
    start = K.Start("growth", seed, 0, 40)
    abl = K.none_ablation(16) + K.channel_ablations([(c,), (5,)], 16)
    loss, img = K.ablation_losses(params, lizard.model_config, start, jax.random.key(3),
                                  np.zeros((40, 40, 4), np.float32) + 0.5, abl)
    assert loss[1, 0] == loss[0, 0]
    np.testing.assert_array_equal(img[1], img[0])
    assert abs(loss[2, 0] - loss[0, 0]) > 1e-4  # a channel it reads does change the body


def test_batched_knockouts_equal_single_hooked_rollouts(lizard):
    cfg = lizard.model_config
    seed = np.asarray(nca.seed_state(32, 32, cfg, batch=2))
    key = jax.random.key(1)
    target = np.asarray(jax.random.uniform(jax.random.key(2), (32, 32, 4)))
    means = np.linspace(-0.3, 0.3, 16).astype(np.float32)
    abl = K.channel_ablations([(6,), (4, 11)], 16, channel_means=means)
    loss, _ = K.ablation_losses(lizard.params, cfg, K.Start("growth", seed, 5, 30), key, target, abl, chunk=2)
    for i, chans in enumerate([(6,), (4, 11)]):
        def hook(v, t, chans=chans):
            alive = nca.model.alive_mask(v, 0.1)
            v = v.at[..., list(chans)].set(0.0)
            return v + alive * jnp.zeros(16).at[jnp.array(chans)].set(means[list(chans)])
        x, _ = nca.grow(lizard, 30, key, x0=jnp.asarray(seed), hooks={"state": hook}, t0=5, record=())
        expect = np.asarray(nca.train.per_sample_loss(nca.to_rgba(x), jnp.asarray(target)))
        np.testing.assert_allclose(loss[i], expect, rtol=1e-4, atol=1e-7)


def test_channel_knockouts_as_unread_weights_equal_the_state_hook_knockouts(lizard):
    cfg = lizard.model_config
    seed = np.asarray(nca.seed_state(32, 32, cfg, batch=2))
    key = jax.random.key(6)
    target = np.asarray(jax.random.uniform(jax.random.key(7), (32, 32, 4)))
    start = K.Start("growth", seed, 3, 30)
    sets = [(), (6,), (4, 11)]
    fast, img = K.read_ablation_losses(lizard.params, cfg, start, key, target, sets, chunk=3)
    hooked, img_h = K.ablation_losses(lizard.params, cfg, start, key, target,
                                      K.none_ablation(16) + K.channel_ablations(sets[1:], 16), chunk=3)
    np.testing.assert_allclose(fast, hooked, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(img, img_h, atol=1e-4)
    assert abs(fast[2] - fast[0]).max() > 1e-4


def test_effect_normalisation_and_bad_cut():
    assert K.normalised_effect([0.1, 0.55, 1.0], 0.1, 1.0).tolist() == pytest.approx([0.0, 0.5, 1.0])
    with pytest.raises(ValueError):
        K.Assay(cut="diagonal")


def test_knockout_report_end_to_end(tmp_path, capsys):
    import json
    import runpy
    from pathlib import Path

    from nca.errors import NCAError

    script = runpy.run_path(str(Path(__file__).parents[1] / "scripts" / "knockout_report.py"), run_name="ko")
    out = tmp_path / "ko"
    argv = ["distill:lizard/regenerating", "--out", str(out), "--size", "32", "--grow", "30", "--persist", "10",
            "--regrow", "10", "--pcs", "2", "--repair-at", "2,5", "--chunk", "32", "--pairs", "regeneration",
            "--replicates", "2", "--units", "persistence", "--unit-pairs", "4", "--random-unit-pairs", "3", "--quiet"]
    assert script["main"](argv) == 0
    rep = json.loads((out / "report.json").read_text())
    res = rep["results"][0]
    g = res["atlas"]["conditions"]["regeneration"]
    assert g["labels"] == [str(c) for c in range(4, 16)] + ["PC1", "PC2"]
    assert len(g["pairs"]["labels"]) == 66 and np.array(g["epistasis"], dtype=float).shape == (12, 12)
    assert g["effect_ci"][0]["n"] == 2 and len(g["effect_replicates"][0]) == 2
    assert {"eligible_pairs", "tested_pairs", "verdict", "flagged"} <= set(g["redundancy"])
    assert g["extra_pairs"]["labels"] == ["PC1+PC2"] and "pc_redundancy_verdict" in res["summary"]["regeneration"]
    assert "pairs" not in res["atlas"]["conditions"]["growth"]
    assert len(res["units"]["effect"]["mean"]) == 128 and res["units"]["condition"] == "persistence"
    sel = res["units"]["pair_selection"]
    assert res["units"]["redundancy"]["tested_pairs"] == 7 and (sel["most_similar"], sel["random"]) == (4, 3)
    assert sel["population"] == res["units"]["redundancy"]["eligible_pairs"] == 128 * 127 // 2
    assert {"buffering", "scaled_epistasis"} <= set(g["redundancy"]["pairs"][0])
    assert len(g["diverged"]) == 14 and "diverged_replicates" in res["summary"]["growth"]
    d = res["repair"]["per_channel"][0]["at"][1]["definitions"]
    assert set(d) == {"others_frozen", "update_frozen"} and d["others_frozen"]["repair_fraction"] == \
        res["repair"]["per_channel"][0]["at"][1]["repair_fraction"]
    assert "median_along_direct" in res["summary"]["repair"]["by_horizon"][0]["update_frozen"]
    assert [x["h"] for x in res["repair"]["summary"]] == [2, 5] and len(res["repair"]["per_channel"]) == 12
    assert len(res["repair"]["per_channel"][0]["at"][1]["attribution"]) == 11
    assert len(res["repair"]["per_channel"][0]["at"][1]["units"]["top_units"]) == 5
    assert [x["h"] for x in res["summary"]["repair"]["by_horizon"]] == [2, 5]
    assert "median_compensation_along_direct" in res["summary"]["repair"]["by_horizon"][1]
    assert {"effects.png", "gallery.png", "epistasis_regeneration.png", "repair.png", "units.png"} <= set(rep["figures"])
    cap = capsys.readouterr()
    assert "unit pairs" in cap.out  # results on stdout
    assert "diverged rollouts" in cap.out + cap.err and "(update frozen)" in cap.out + cap.err
    with pytest.raises(SystemExit) as e:  # argparse: one error line, exit 2
        script["main"](["distill:lizard/regenerating", "--out", str(out), "--grow", "0"])
    assert e.value.code == 2
    with pytest.raises(NCAError, match="pairs"):
        script["main"](["distill:lizard/regenerating", "--out", str(out), "--pairs", "sideways"])


def test_target_on_grid_keeps_the_seed_cell_aligned():
    t = np.zeros((9, 9, 4), np.float32)
    t[4, 4] = 1.0  # the seed cell of a 9 grid
    t[0, 0] = 0.5
    big = K.target_on_grid(t, 13)
    assert big[6, 6, 0] == 1.0 and big[2, 2, 0] == 0.5 and big.sum() == t.sum()
    small = K.target_on_grid(t, 5)
    assert small[2, 2, 0] == 1.0 and small.shape == (5, 5, 4)
    np.testing.assert_array_equal(K.target_on_grid(t, 9), t)


def split_unit_model():
    """8 channels, 4 units, fire rate 0.5. Units 0 and 1 are two half-weight copies of one
    unit that keeps the body alive: each reads c6 (= 1) and writes +0.5 to alpha, against a
    bias of -0.5. Either alone keeps d alpha >= 0 (the body stays at alpha = 1 as seen); both
    gone, alpha falls 0.5 per firing and the cells die. Unit 2 writes to channel 7, which is
    never read; unit 3 is unused."""
    cfg = ModelConfig(channels=8, hidden=4, fire_rate=0.5)
    w1, b1 = np.zeros((24, 4), np.float32), np.zeros(4, np.float32)
    w2, b2 = np.zeros((4, 8), np.float32), np.zeros(8, np.float32)
    w1[6, 0] = w1[6, 1] = w1[6, 2] = 1.0
    w2[0, 3] = w2[1, 3] = 0.5
    w2[2, 7] = 0.3
    b2[3] = -0.5
    params = {k: jnp.asarray(v) for k, v in dict(w1=w1, b1=b1, w2=w2, b2=b2).items()}
    x0 = np.zeros((3, 8, 8, 8), np.float32)
    x0[..., 3] = 1.0
    x0[..., 6] = 1.0
    target = np.zeros((8, 8, 4), np.float32)
    target[..., 3] = 1.0
    return cfg, params, x0, target


def test_half_weight_copies_of_a_unit_are_flagged_as_a_backup_pair_each_alone_near_zero():
    cfg, params, x0, target = split_unit_model()
    u = K.unit_atlas(params, cfg, target, jax.random.key(0), K.Start("persistence", x0, 0, 12),
                     K.UnitAtlasSettings(max_pairs=6, chunk=8))
    eff = np.array(u["effect"]["mean"])
    assert np.all(np.abs(eff) < 1e-6)  # every single knockout, the copies included, is harmless
    r = u["redundancy"]
    assert r["eligible_units"] == 4 and r["eligible_pairs"] == 6 and r["tested_pairs"] == 6
    assert [f["pair"] for f in r["flagged"]] == [[0, 1]]
    f = r["flagged"][0]
    assert f["effect_double"]["mean"] == pytest.approx(1.0)
    assert f["scaled_epistasis"]["mean"] == pytest.approx(-1.0) and f["scaled_epistasis"]["n"] == 3
    others = [p for p in r["pairs"] if p["pair"] != [0, 1]]
    assert all(abs(p["effect_double"]["mean"]) < 1e-6 for p in others)  # negative controls: nothing
    assert "1 flagged of 6 tested (6 eligible)" == r["verdict"]
    g = r["eligible_group"]  # all four out at once: the body dies although the singles sum to 0
    assert g["units"] == 4 and g["effect"]["mean"] == pytest.approx(1.0) and g["excess"]["mean"] == pytest.approx(1.0)


def test_unit_knockout_by_output_weights_equals_zeroing_the_hidden_activation(lizard):
    cfg = lizard.model_config
    seed = np.asarray(nca.seed_state(32, 32, cfg, batch=2))
    key = jax.random.key(4)
    target = np.asarray(jax.random.uniform(jax.random.key(5), (32, 32, 4)))
    sets = [(3,), (17, 90)]
    loss = K.unit_ablation_losses(lizard.params, cfg, K.Start("growth", seed, 0, 30), key, target,
                                  K.unit_sets_mask(sets, cfg.hidden), chunk=2)
    for i, s in enumerate(sets):
        hook = lambda v, t, s=s: v.at[..., list(s)].set(0.0)  # noqa: E731
        x, _ = nca.grow(lizard, 30, key, x0=jnp.asarray(seed), hooks={"hidden": hook}, record=())
        expect = np.asarray(nca.train.per_sample_loss(nca.to_rgba(x), jnp.asarray(target)))
        np.testing.assert_allclose(loss[i], expect, rtol=1e-4, atol=1e-6)
    assert abs(loss[1] - loss[0]).max() > 1e-5  # the two knockouts differ


def test_unit_and_read_knockouts_of_any_count_share_one_compiled_program(lizard):
    """Chunks are padded to ``chunk`` and both weight knockouts run in one program: a
    condition compiles once however many knockouts of either kind it runs (the knockout
    report compiled 5 programs for 3 conditions before), and the padding changes nothing."""
    cfg = lizard.model_config
    start = K.Start("persistence", np.asarray(nca.seed_state(12, 12, cfg, batch=1)), 7, 4)
    key, target = jax.random.key(1), np.zeros((12, 12, 4), np.float32)
    before = K._weight_rollouts._cache_size()
    units = K.unit_ablation_losses(lizard.params, cfg, start, key, target, K.unit_sets_mask([(3,), (5, 9)], cfg.hidden),
                                   chunk=4)
    reads = [K.read_ablation_losses(lizard.params, cfg, start, key, target, sets, chunk=4)[0]
             for sets in ([(4,)], [(4,), (6,), (7, 8), (9,), (10,)])]
    assert K._weight_rollouts._cache_size() == before + 1
    assert units.shape == (2, 1) and reads[0].shape == (1, 1) and reads[1].shape == (5, 1)
    np.testing.assert_array_equal(reads[0][0], reads[1][0])  # alone or beside others: the same


def test_large_singles_no_longer_make_the_question_vacuous_and_the_strict_count_is_kept():
    # the published lizard's hidden channels all have single effects >= 0.2: under the old
    # rule (both singles < 0.1) "no backup pairs" was true by construction. Buffering asks
    # each pair: here singles of 0.3 and a double of 2.0 (each single does 15 % of it) is
    # flagged, but not by the strict variant; an additive pair (0.3 + 0.3 = 0.6) is not
    rng = np.random.default_rng(0)
    single = 0.3 + 0.01 * rng.standard_normal((3, 5))
    double = np.stack([2.0 + 0.01 * rng.standard_normal(5), 0.6 + 0.01 * rng.standard_normal(5)])
    r = K.redundancy(["4", "5", "6"], single, [(0, 1), (0, 2)], double, 3, 3)
    assert [f["pair"] for f in r["flagged"]] == [["4", "5"]] and r["flagged_strict"] == []
    assert r["pairs"][1]["buffering"]["mean"] == pytest.approx(0.5, abs=0.03)
    assert r["verdict"] == "1 flagged of 2 tested (3 eligible)"
    assert K.redundancy(["4"], single[:1], [], np.zeros((0, 5)), 0, 1)["verdict"] == "none eligible"


def test_scaled_epistasis_follows_segre():
    # synthetic lethality: -1; multiplicative: 0; the double no worse than the worse single: +1
    assert K.scaled_epistasis(0.0, 0.0, 1.0) == pytest.approx(-1.0)
    assert K.scaled_epistasis(0.5, 0.5, 0.75) == pytest.approx(0.0)
    assert K.scaled_epistasis(0.5, 0.2, 0.5) == pytest.approx(1.0)
    assert np.isnan(K.scaled_epistasis(1.0, 1.0, 1.0))  # singles already lethal: undefined


def test_knockout_report_library_run_and_write_compare_two_models(tmp_path):
    """The library pipeline without the script: settings -> run -> write; two models get
    the spread across models (mean, sd, each value and a 95% interval over the models)."""
    import json

    from analysis.reports import knockouts as KR

    s = KR.KnockoutReportSettings(
        models=("distill:lizard/regenerating", "distill:lizard/persistent"), command="library test",
        knockouts=K.KnockoutSettings(grow=24, persist=4, regrow=4, replicates=2, pcs=0, pairs=(),
                                     unit_condition=None, repair_at=(), size=32))
    ticks = []
    result = KR.run(s, progress=ticks.append)
    assert sum(ticks) == KR.rollouts([nca.load_model(m) for m in s.models], s)
    KR.write(result, tmp_path)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["models"] == list(s.models) and rep["command"] == "library test"
    assert rep["figures"] == ["effects.png", "gallery.png", "effects_models.png", "spread_essential.png"]
    assert all((tmp_path / f).stat().st_size > 1000 for f in rep["figures"])
    ess = rep["spread"]["growth"]["essential_channels"]
    assert ess["values"] == [r["summary"]["growth"]["essential_channels"] for r in rep["results"]]
    assert ess["ci"]["n"] == 2 and ess["mean"] == pytest.approx(np.mean(ess["values"]))
    page = (tmp_path / "index.html").read_text()
    assert "Knockout atlas: distill:lizard/regenerating, distill:lizard/persistent" in page and "library test" in page
    lines = KR.summary_lines(result)
    assert len(lines) == 4 and lines[2].startswith("distill:lizard/persistent: essential channels growth ")
    assert lines[1].startswith("distill:lizard/regenerating: diverged rollouts (counted at the maximal effect) growth 0")


def diverging_model():
    """8 channels, fire rate 1, every cell alive (alpha = 1, never updated). Unit 0 reads
    c5 - c4 and writes 2x to c5: with c4 = 10 (a brake) relu(1 - 10) = 0 and nothing moves;
    knock c4 out and c5 triples every step, overflowing to inf and then NaN (inf - inf in
    the Sobel stencils) within 100 steps. Channel 6 is never read."""
    cfg = ModelConfig(channels=8, hidden=4, fire_rate=1.0)
    w1, b1 = np.zeros((24, 4), np.float32), np.zeros(4, np.float32)
    w2, b2 = np.zeros((4, 8), np.float32), np.zeros(8, np.float32)
    w1[5, 0], w1[4, 0] = 1.0, -1.0
    w2[0, 5] = 2.0
    params = {k: jnp.asarray(v) for k, v in dict(w1=w1, b1=b1, w2=w2, b2=b2).items()}
    x0 = np.zeros((3, 8, 8, 8), np.float32)
    x0[..., 3], x0[..., 4], x0[..., 5] = 1.0, 10.0, 1.0
    target = np.zeros((8, 8, 4), np.float32)
    target[..., 3] = 1.0
    return cfg, params, x0, target


def test_a_diverging_knockout_is_the_maximal_effect_counted_in_n_not_dropped():
    # before issue 23 the NaN losses were dropped by the interval (PC1 of the lizard: "n = 1"
    # of 5) and the mean effect was NaN; now each diverged replicate counts as the worst loss
    cfg, params, x0, target = diverging_model()
    eye = np.eye(8, dtype=np.float32)
    extra = K.direction_ablations([eye[4:5]], ["brake"], 8, means=[[0.0]])  # the state-hook path
    a = K.atlas(params, cfg, target, jax.random.key(0),
                K.AtlasSettings(8, (4, 6), K.Assay(grow_steps=100, persist_steps=3, regrow_steps=3, replicates=3),
                                chunk=4), x0=x0, extra=extra)
    g = a["conditions"]["growth"]
    assert g["labels"] == ["4", "6", "brake"]
    assert g["diverged"] == [3, 0, 3]  # every replicate of both knockout paths diverged
    worst = K.max_loss(target)
    assert worst == pytest.approx(1.0) and g["max_effect"] == pytest.approx((1.0 - 0.0) / 0.25)
    for i in (0, 2):
        ci = g["effect_ci"][i]
        assert ci["n"] == 3 and ci["mean"] == pytest.approx(4.0) and np.isfinite(g["effect"][i])
    assert g["effect"][1] == 0.0 and g["effect_ci"][1]["n"] == 3
    s = K.summarise(a)
    assert s["growth"]["diverged_knockouts"] == 2 and s["growth"]["diverged_replicates"] == 6
    losses, bad = K.clip_diverged([[0.1, np.nan], [np.inf, 0.2]], 9.0)
    assert losses.tolist() == [[0.1, 9.0], [9.0, 0.2]] and bad.tolist() == [[False, True], [True, False]]


def colour_backup_model():
    """8 channels, 8 units, fire rate 1, all cells alive (alpha = 1 never updated); the target
    is alpha 1 and R = G = B = 0.2. Each colour is reset every step to 0.2 x its licence:
    R <- 0.2 OR(c4, c5) (relu(c4) + relu(c5) - relu(c4 + c5 - 1)), G <- 0.2 relu(c6), B <- 0.2
    relu(c7). So c4 and c5 are perfect backups of each other for R (either alone suffices);
    c6 and c7 are independent (each carries its own colour). Losing one colour costs 0.01 of
    the 0.28 empty-grid loss: an effect of 0.036, the function's small share of the body."""
    cfg = ModelConfig(channels=8, hidden=8, fire_rate=1.0)
    w1, b1 = np.zeros((24, 8), np.float32), np.zeros(8, np.float32)
    w2, b2 = np.zeros((8, 8), np.float32), np.zeros(8, np.float32)
    for j, ch in enumerate((0, 1, 2)):  # units 0-2: each colour's own value, subtracted
        w1[ch, j], w2[j, ch] = 1.0, -1.0
    w1[4, 3], w2[3, 0] = 1.0, 0.2       # relu(c4)
    w1[5, 4], w2[4, 0] = 1.0, 0.2       # relu(c5)
    w1[4, 5] = w1[5, 5] = 1.0           # relu(c4 + c5 - 1)
    b1[5], w2[5, 0] = -1.0, -0.2
    w1[6, 6], w2[6, 1] = 1.0, 0.2       # G <- relu(c6)
    w1[7, 7], w2[7, 2] = 1.0, 0.2       # B <- relu(c7)
    params = {k: jnp.asarray(v) for k, v in dict(w1=w1, b1=b1, w2=w2, b2=b2).items()}
    x0 = np.zeros((2, 6, 6, 8), np.float32)
    x0[..., :3], x0[..., 3], x0[..., 4:] = 0.2, 1.0, 1.0
    target = np.zeros((6, 6, 4), np.float32)
    target[..., :3], target[..., 3] = 0.2, 1.0
    return cfg, params, x0, target


def test_a_perfect_backup_of_one_colour_is_flagged_whatever_its_share_of_the_body():
    cfg, params, x0, target = colour_backup_model()
    a = K.atlas(params, cfg, target, jax.random.key(0),
                K.AtlasSettings(6, (4, 5, 6, 7), K.Assay(grow_steps=4, persist_steps=2, regrow_steps=2, replicates=2),
                                chunk=8), x0=x0)
    g = a["conditions"]["growth"]
    eff = dict(zip(g["labels"], g["effect"]))
    pe = dict(zip(g["pairs"]["labels"], g["pairs"]["effect"]))
    share = 0.01 / 0.28
    assert eff["4"] == pytest.approx(0.0, abs=1e-6) and eff["5"] == pytest.approx(0.0, abs=1e-6)
    assert eff["6"] == pytest.approx(share, rel=1e-3) and pe["4+5"] == pytest.approx(share, rel=1e-3)
    assert pe["6+7"] == pytest.approx(2 * share, rel=1e-3)  # independent parts: additive
    r = g["redundancy"]
    assert r["eligible_pairs"] == 6 and r["tested_pairs"] == 6
    assert [f["pair"] for f in r["flagged"]] == [["4", "5"]]  # the backup, and only it
    rows = {"+".join(p["pair"]): p for p in r["pairs"]}
    assert rows["4+5"]["buffering"]["mean"] == pytest.approx(1.0)
    assert rows["6+7"]["buffering"]["mean"] == pytest.approx(0.5, abs=1e-3)  # additive: not a backup
    assert rows["4+6"]["buffering"]["mean"] == pytest.approx(0.0, abs=1e-3)  # 6 alone does all of it
    assert rows["5+7"]["buffering"]["mean"] == pytest.approx(0.0, abs=1e-3)
    # the old measure misses it: scaled epistasis = -effect(ij) when the singles are 0
    assert rows["4+5"]["scaled_epistasis"]["mean"] == pytest.approx(-share, rel=1e-2)
    assert r["flagged_scaled_epistasis"] == []
    assert r["flagged_strict"] == r["flagged"]
    assert r["buffering_counts"]["0.8"] == 1 and r["buffering_counts"]["0.9"] == 1  # 6+7 sits at 0.5 exactly


def test_buffering_definition_on_textbook_cases():
    assert K.buffering(0.0, 0.0, 0.04) == pytest.approx(1.0)    # perfect backup, tiny function
    assert K.buffering(0.5, 0.5, 1.0) == pytest.approx(0.5)     # additive
    assert K.buffering(1.0, 0.0, 1.0) == pytest.approx(0.0)     # one single does it all
    assert K.buffering(-0.1, 0.0, 0.2) == pytest.approx(1.0)    # a helpful single counts as 0
    assert np.isnan(K.buffering(0.0, 0.0, 0.0))                 # no double effect: undefined


def test_unit_pairs_beyond_the_most_alike_are_drawn_uniformly_and_counted():
    w2 = np.asarray(jax.random.normal(jax.random.key(3), (12, 8)))
    pairs, how, sim = K.choose_unit_pairs(w2, jax.random.key(0), 5, 7)
    allp = [(i, j) for i in range(12) for j in range(i + 1, 12)]
    sims = K.output_similarity(w2, range(12))
    top5 = sorted(allp, key=lambda p: -sims[p])[:5]
    assert pairs[:5] == top5 and how == ["similar"] * 5 + ["random"] * 7
    assert len(set(pairs)) == 12 and not set(pairs[5:]) & set(top5)
    assert K.choose_unit_pairs(w2, jax.random.key(0), 5, 7)[0] == pairs  # reproducible: one named stream
    assert K.choose_unit_pairs(w2, jax.random.key(1), 5, 7)[0][5:] != pairs[5:]
    everything, how_all, _ = K.choose_unit_pairs(w2, jax.random.key(0), 60, 6)
    assert everything == allp and set(how_all) == {"all"}

"""Error and attack tolerance (analysis/causal/degradation.py): planted controls and the CA path.

Planted controls run the real ordering/summary code on evaluators whose answer is known:
* graceful: every one of 32 parts carries a copy of the function; the body fails only when
  all but 3 are gone (effect = 1 when fewer than 4 remain);
* brittle: one part (17) carries it (effect = 1 when it is removed);
* negative control for the gap: every part carries an equal, additive share (effect = k / n):
  the order cannot matter, so the attack - error gap must be ~ 0.
Each planted effect gets per-replicate noise, so intervals are real intervals.
"""

import jax
import numpy as np
import pytest

from analysis.causal import degradation as D
from analysis.reports import degradation as R
from nca.errors import NCAError

P = 32
KS = (0, 1, 2, 4, 8, 16, 24, 28, 29, 30, 31, 32)


def _noisy(f, b=3, sd=0.02, seed=0):
    rng = np.random.default_rng(seed)

    def evaluate(removed):
        e = f(np.asarray(removed, bool)).astype(float)[:, None]
        return e + rng.normal(0, sd, (len(removed), b)) * (removed.any(1)[:, None])

    return evaluate


graceful = _noisy(lambda r: (P - r.sum(1) < 4).astype(float))
brittle = _noisy(lambda r: r[:, 17].astype(float))
additive = _noisy(lambda r: r.sum(1) / P)


def _curves(ev, draws=20, seed=1, **kw):
    cv = D.degradation_curves(ev, P, KS, draws, np.random.default_rng(seed), **kw)
    return cv, D.summarise_curves(cv, P)


def test_graceful_rule_tolerates_random_and_targeted_loss_until_most_parts_are_gone():
    cv, s = _curves(graceful)
    # error and attack both fail only at k = 29 of 32 (fewer than 4 left)
    assert s["error"]["k50"]["mean"] == pytest.approx(29 / 32)
    assert s["attack"]["k50"]["mean"] == pytest.approx(29 / 32)
    assert s["greedy"]["k50"]["mean"] == pytest.approx(29 / 32)
    assert abs(s["gap_attack"]["mean"]) < 0.02 and s["error"]["auc"]["mean"] < 0.15


def test_brittle_rule_fails_at_once_under_attack_and_at_a_random_k_under_error():
    cv, s = _curves(brittle)
    assert cv["attack_order"][0] == 17 and cv["greedy_order"][0] == 17
    assert s["attack"]["k50"]["mean"] == pytest.approx(1 / 32)
    assert s["greedy"]["k50"]["mean"] == pytest.approx(1 / 32)
    # at random, part 17 is lost at a uniform position: mean k50 well above the attack's
    assert s["error"]["k50"]["mean"] > 0.25
    assert s["gap_attack"]["lo"] > 0.3  # attack is far worse than chance, with its interval
    # graceful vs brittle separate under both orders
    _, g = _curves(graceful)
    assert g["attack"]["k50"]["lo"] > s["attack"]["k50"]["hi"] or g["attack"]["k50"]["hi"] is None
    assert g["error"]["auc"]["hi"] < s["error"]["auc"]["lo"]


def test_additive_rule_has_no_gap_between_orders():
    """Negative control: when every part carries an equal share, worst-first is no worse
    than random: the gap's interval contains 0 (a measure that always finds a gap fails)."""
    _, s = _curves(additive)
    g = s["gap_attack"]
    assert g["lo"] <= 0 <= g["hi"] and abs(g["mean"]) < 0.02
    assert s["error"]["k50"]["mean"] == pytest.approx(s["attack"]["k50"]["mean"], abs=2 / 32)


def test_false_positive_rate_and_power_of_the_gap():
    """Over 40 noise seeds (5 replicates, 8 draws), the gap's 95 % interval excludes 0 for the
    additive rule (no true gap) in at most 5 (nominal 2; measured 4 % over 200 seeds, see
    docs/validation/degradation.md), and for the brittle rule (true gap) in every seed."""
    fp = power = 0
    for seed in range(40):
        _, s = _curves(_noisy(lambda r: r.sum(1) / P, b=5, seed=100 + seed), draws=8, seed=seed, greedy=False)
        fp += not (s["gap_attack"]["lo"] <= 0 <= s["gap_attack"]["hi"])
        _, s = _curves(_noisy(lambda r: r[:, 17].astype(float), b=5, seed=100 + seed), draws=8, seed=seed,
                       greedy=False)
        power += s["gap_attack"]["lo"] > 0
    assert fp <= 5 and power == 40


def test_greedy_finds_a_backup_pair_that_single_effects_miss():
    """Part 9 is part 3's backup: its single effect is 0, the pair is fatal; every other part
    has a small additive share (0.02) and part 3 the largest single effect (0.05). Ranked by
    single effect, attack removes 9 last; greedy's marginal re-ranking removes it second."""
    def f(r):
        return np.minimum(1.0, 0.02 * r[:, np.arange(P) != 9].sum(1) + 0.03 * r[:, 3]
                          + (r[:, 3] & r[:, 9]))

    cv, s = _curves(_noisy(f, sd=0.002), greedy_pool=0)
    assert list(cv["greedy_order"][:2]) == [3, 9]
    assert s["greedy"]["mean"][KS.index(2)] > 0.9 and s["attack"]["mean"][KS.index(2)] < 0.2
    assert s["gap_greedy"]["lo"] > s["gap_attack"]["hi"]


def test_bad_input_is_one_clear_line():
    with pytest.raises(NCAError, match="beyond the number of parts"):
        D.degradation_curves(additive, P, (0, 33), 2, np.random.default_rng(0))
    with pytest.raises(NCAError, match="draws"):
        D.degradation_curves(additive, P, KS, 0, np.random.default_rng(0))
    with pytest.raises(NCAError, match="draws"):
        D.DegradationSettings(draws=0)
    with pytest.raises(NCAError, match="modes"):
        D.DegradationSettings(modes=("half",))


# --------------------------------------------------------------------------- the CA path

@pytest.fixture(scope="module")
def lizard():
    import nca

    return nca.load_model("distill:lizard/regenerating")


def _variant():
    """A Laplacian-perception rule with no alive masking (2 perception bands, not 3): the
    shapes of the isotropic and texture NCAs, random but active weights."""
    from nca.model import ModelConfig, init_params

    cfg = ModelConfig(channels=8, hidden=96, perception="laplacian", life="none")
    p = init_params(jax.random.key(3), cfg)
    p["w2"] = 0.05 * jax.random.normal(jax.random.key(4), (cfg.hidden, cfg.channels))
    return p, cfg


@pytest.fixture(params=["lizard", "variant"])
def rule(request, lizard):
    """(params, cfg) of the published lizard and of a variant rule: removals index the
    model's own perception bands and hidden layer, not the article's three."""
    return (lizard.params, lizard.model_config) if request.param == "lizard" else _variant()


def test_unit_mean_ablation_equals_holding_the_activation_at_the_hidden_hook(rule):
    """Mean ablation as weights (w2 row zeroed, b2 shifted) = h_j := mean_j at the hidden hook."""
    from analysis.causal.knockouts import Start
    from nca.model import rollout, seed_state

    params, cfg = rule
    x0 = np.asarray(seed_state(32, 32, cfg, batch=1))
    st = Start("growth", x0, 0, 12)
    means = np.linspace(0.0, 0.3, cfg.hidden).astype(np.float32)
    removed = np.zeros((1, cfg.hidden), bool)
    removed[0, [3, 50, 77]] = True
    target = np.zeros((32, 32, 4), np.float32)
    key = jax.random.key(0)
    loss = D.unit_losses(params, cfg, st, key, target, removed, means, chunk=2)
    idx = np.array([3, 50, 77])

    def hook(h, t):
        return h.at[..., idx].set(means[idx])

    x, _ = rollout(params, x0, key, 12, cfg, record=(), hooks={"hidden": hook})
    from nca.model import to_rgba
    from nca.train import per_sample_loss

    ref = np.asarray(per_sample_loss(to_rgba(x), target))
    np.testing.assert_allclose(loss[0], ref, rtol=1e-4, atol=1e-7)


def test_run_model_small(lizard):
    s = D.DegradationSettings(grow=24, persist=8, regrow=8, replicates=2, draws=2, unit_ks=(0, 64, 128),
                              parts=("units", "channels"), modes=("zero",), conditions=("growth",),
                              attack=False, greedy=False, size=32, chunk=8)  # orders: the planted tests
    r = D.run_model(lizard, s)
    u = r["curves"]["units"]["zero"]["growth"]
    assert u["error"]["mean"][0] == 0.0  # nothing removed = the reference, same program
    assert u["error"]["mean"][-1] > 0.9  # every unit zeroed: nothing grows
    c = r["curves"]["channels"]["zero"]["growth"]
    assert len(c["ks"]) == 13 and abs(c["error"]["mean"][0]) < 1e-9 and c["error"]["mean"][-1] > 0.5
    with pytest.raises(NCAError, match="beyond the number of parts"):
        D.run_model(lizard, D.DegradationSettings(unit_ks=(0, 129), grow=8))


def test_channel_zeroing_as_weights_equals_zeroing_the_state(rule):
    """channel_zero_losses (w1 rows) = ablation_losses with zero fill at the state hook."""
    from analysis.causal.knockouts import Start, ablation_losses, channel_ablations
    from nca.model import seed_state

    params, cfg = rule
    x0 = np.asarray(seed_state(32, 32, cfg, batch=2))
    st = Start("growth", x0, 0, 12)
    target = np.zeros((32, 32, 4), np.float32)
    key = jax.random.key(1)
    removed = np.zeros((2, cfg.channels - 4), bool)
    last = cfg.channels - 5
    removed[0, [1, 2]] = True
    removed[1, last] = True
    fast = D.channel_zero_losses(params, cfg, st, key, target, removed, chunk=2)
    dense, _ = ablation_losses(params, cfg, st, key, target, channel_ablations([(5, 6), (4 + last,)], cfg.channels),
                               chunk=2)
    np.testing.assert_allclose(fast, dense, rtol=1e-4, atol=1e-7)


def test_script_writes_the_report_and_refuses_bad_input(tmp_path, capsys, lizard):
    import dataclasses
    import json

    from scripts import degradation_report as S

    out = tmp_path / "r"
    flags = ["--grow", "24", "--persist", "8", "--regrow", "8", "--draws", "2", "--unit-ks", "0,64,128",
             "--modes", "zero", "--conditions", "growth", "--no-greedy", "--size", "32", "--chunk", "8", "--quiet"]
    assert S.main(["distill:lizard/regenerating", "--out", str(out), "--parts", "units"] + flags) == 0
    rep = json.loads((out / "report.json").read_text())
    assert set(rep) >= {"models", "settings", "conventions", "results", "figures", "timing_s"}
    assert (out / "index.html").read_bytes().count(b"docs/degradation.md") and (out / "curves_units.png").exists()
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("distill:lizard/regenerating units/zero/growth: error k50")
    with pytest.raises(NCAError, match="beyond the number of parts"):
        S.main(["distill:lizard/regenerating", "--out", str(tmp_path / "a"), "--unit-ks", "0,200"])
    assert not (tmp_path / "a").exists()  # refused before the folder was claimed
    with pytest.raises(SystemExit):  # argparse: "error: argument --cell-attack: expected an integer >= 0"
        S.main(["distill:lizard/regenerating", "--out", str(tmp_path / "c"), "--cell-attack", "-1"])
    assert "--cell-attack" in capsys.readouterr().err
    with pytest.raises(NCAError, match="draws must be >= 1"):
        S.main(["distill:lizard/regenerating", "--out", str(tmp_path / "b"), "--draws", "0"])
    dead = dataclasses.replace(lizard, params={k: np.zeros_like(v) for k, v in lizard.params.items()})
    with pytest.raises(NCAError, match="does not grow"):
        R.run(R.DegradationReportSettings(("dead",), D.DegradationSettings(grow=8, size=32)), models=[dead])

def test_kill_masks_are_nested_and_count_the_alive_cells():
    alive = np.zeros((2, 6, 6), bool)
    alive[0, 1:5, 1:5] = True  # 16 cells
    alive[1, 2:4, 2:4] = True  # 4 cells
    k = D.kill_masks(alive, (0.25, 0.5, 1.0), 3, np.random.default_rng(0))
    killed = (k == 0)
    assert killed.sum((3, 4)).tolist() == [[[4, 1], [8, 2], [16, 4]]] * 3
    assert not (killed & ~alive[None, None]).any()  # only alive cells are killed
    assert (killed[:, 1] >= killed[:, 0]).all() and (killed[:, 2] >= killed[:, 1]).all()


def test_cell_curve_zero_is_intact_and_all_killed_is_empty(lizard):
    from analysis.causal.knockouts import Assay, assay_starts, empty_loss, target_on_grid

    cfg = lizard.model_config
    key = jax.random.key(0)
    st = assay_starts(lizard.params, cfg, key, 32, Assay(24, 8, 8, "left", 2))["persistence"]
    target = target_on_grid(lizard.target_image(), 32)
    cv = D.cell_curve(lizard.params, cfg, st, key, target, empty_loss(target), (0.5, 1.0), 1,
                      np.random.default_rng(0), chunk=4)
    assert cv["ks"] == [0, 50, 100]
    assert np.all(cv["error"][:, 0] == 0) and cv["error"][0, -1].min() > 0.9


def test_removing_every_pc_equals_holding_every_hidden_channel_at_its_mean(lizard):
    """The PCs span the 12 hidden channels: removing all of them (mean ablation) is holding
    every hidden channel at its alive-cell mean, whatever the basis (k = 12 of both curves)."""
    s = D.DegradationSettings(grow=24, persist=8, regrow=8, replicates=2, draws=1, parts=("pcs", "channels"),
                              channel_modes=("mean",), conditions=("growth",), attack=False, greedy=False,
                              size=32, chunk=13)
    r = D.run_model(lizard, s)["curves"]
    p, c = r["pcs"]["mean"]["growth"]["error"]["mean"], r["channels"]["mean"]["growth"]["error"]["mean"]
    assert p[0] == 0.0 and c[0] == 0.0 and len(p) == len(c) == 13
    assert p[-1] == pytest.approx(c[-1], rel=1e-3, abs=1e-4)


# --------------------------------------------------------------------------- pooled curves (speed)

def test_pooled_curves_equal_each_curve_run_alone(lizard):
    """run_model pools every unit and zeroed-channel curve of a condition (WeightRows: each
    distinct removal set rolled out once); the numbers must be those of each curve run alone
    through degradation_curves with its own evaluator (the code before pooling), bit for bit."""
    from analysis.causal.knockouts import Assay, assay_starts, empty_loss, replicate_effects, target_on_grid
    from analysis.rollouts import grow_states

    s = D.DegradationSettings(grow=24, persist=4, regrow=8, replicates=2, draws=2, unit_ks=(0, 1, 2, 8, 128),
                              parts=("units", "channels"), conditions=("persistence",), size=24, chunk=8,
                              greedy_pool=3)
    r = D.run_model(lizard, s)
    cfg, key = lizard.model_config, jax.random.key(s.seed)
    target = target_on_grid(lizard.target_image(), 24)
    st = assay_starts(lizard.params, cfg, key, 24, Assay(24, 4, 8, "left", 2))["persistence"]
    states = grow_states(lizard, 24, key, size=24)[:, 0]
    umeans = D.unit_means_of(lizard.params, states[[12, 24]], cfg)
    for part, mode, n in (("units", "zero", cfg.hidden), ("units", "mean", cfg.hidden), ("channels", "zero", 12)):
        if part == "units":
            def loss(m, mode=mode):
                return D.unit_losses(lizard.params, cfg, st, key, target, m, umeans if mode == "mean" else None, 8)
        else:
            def loss(m):
                return D.channel_zero_losses(lizard.params, cfg, st, key, target, m, 8)
        ref = loss(np.zeros((1, n), bool))[0]

        def ev(m, loss=loss, ref=ref):
            return replicate_effects(np.concatenate([ref[None], loss(m)]), empty_loss(target))

        rng = np.random.default_rng(np.random.SeedSequence([s.seed, D._stream(part, mode, "persistence")]))
        alone = D.degradation_curves(ev, n, s.unit_ks if part == "units" else range(13), 2, rng, greedy_pool=3)
        pooled = r["raw"][part][mode]["persistence"]
        for k in ("error", "attack", "greedy", "single", "greedy_order"):
            np.testing.assert_array_equal(pooled[k], alone[k], err_msg=f"{part} {mode} {k}")
    asked = sum(c["evaluations"] for m in r["raw"].values() for c in m.values() for c in c.values())
    assert r["rollouts"]["persistence"]["distinct"] < asked  # shared sets ran once


def test_weight_rows_roll_out_a_repeated_row_once(lizard):
    from analysis.causal.knockouts import Start
    from nca.model import seed_state

    cfg = lizard.model_config
    st = Start("growth", np.asarray(seed_state(32, 32, cfg, batch=2)), 0, 6)
    pool = D.WeightRows(lizard.params, cfg, st, jax.random.key(0), np.zeros((32, 32, 4), np.float32), chunk=4)
    removed = np.zeros((3, cfg.hidden), bool)
    removed[1, 5] = removed[2, 5] = True  # rows 1 and 2 are the same set
    a = pool.losses(*D.weight_rows(lizard.params, cfg, "units", "zero", removed))
    assert pool.rollouts == 2 and pool.padded == 4
    b = pool.losses(*D.weight_rows(lizard.params, cfg, "units", "zero", removed[::-1]))  # all cached
    assert pool.rollouts == 2
    np.testing.assert_array_equal(a[1], a[2])
    np.testing.assert_array_equal(b, a[::-1])
    assert not np.array_equal(a[0], a[1])  # the removal changes the body: a real rollout, not a copy


# --------------------------------------------------------------------------- cells, worst first

def _cell_grid():
    alive = np.zeros((2, 16, 16), bool)
    alive[:, 2:14, 2:14] = True  # 144 alive cells per replicate, 9 patches of 4 x 4
    return alive


def _cell_rule(f, alive, sd=0.01, seed=0):
    rng = np.random.default_rng(seed)

    def evaluate(keep):
        killed = (np.asarray(keep) == 0) & alive[None]
        e = np.stack([f(killed[i]) for i in range(len(keep))]).astype(float)  # [N, B]
        return e + rng.normal(0, sd, e.shape) * killed.any((2, 3))
    return evaluate


def test_attack_kill_masks_kill_the_worst_patch_first_nested_and_counted():
    alive = _cell_grid()
    alive[1, 2:6, 2:6] = False  # replicate 1 lacks patch 0's cells: 128 alive
    pid = D.patch_ids(alive, 4)
    rank = np.array([15, 10, 5, 0, 6, 9, 1, 2, 3, 4, 7, 8, 11, 12, 13, 14])
    keep = D.attack_kill_masks(alive, pid, rank, (0.1, 0.5, 1.0))
    killed = keep == 0
    assert killed.sum((2, 3)).tolist() == [[14, 13], [72, 64], [144, 128]]
    assert not (killed & ~alive[None]).any() and (killed[1] >= killed[0]).all() and (killed[2] >= killed[1]).all()
    # replicate 0's first 14 cells: patch 15's 4 alive cells (12..13 x 12..13), then 10 of patch 10's 16
    assert (killed[0, 0] == (pid[0] == 15)).sum() == 256 - 10 and (killed[0, 0] & (pid[0] == 10)).sum() == 10


def test_cell_attack_finds_the_patch_that_carries_the_body_and_no_gap_when_cells_share_it():
    """Planted: the body fails when any cell of the square 8..11 (patch 10 of 4 x 4 patches)
    dies (brittle: attack fails at the first fraction, error later); negative control: the
    effect is the fraction of cells killed (additive: the order cannot matter, gap ~ 0)."""
    alive = _cell_grid()
    fr = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    brittle = _cell_rule(lambda k: k[:, 8:12, 8:12].any((1, 2)), alive)
    cv = D.cell_curves(brittle, alive, fr, 8, np.random.default_rng(0), patch=4)
    s = D.summarise_curves(cv, 100)
    assert cv["attack_order"][0] == 10 and s["attack"]["k50"]["mean"] == pytest.approx(0.1)
    assert s["error"]["k50"]["mean"] > 0.1 and s["gap_attack"]["lo"] > 0
    additive = _cell_rule(lambda k: k.sum((1, 2)) / 144, alive)
    s = D.summarise_curves(D.cell_curves(additive, alive, fr, 8, np.random.default_rng(0), patch=4), 100)
    g = s["gap_attack"]
    assert g["lo"] <= 0 <= g["hi"] and abs(g["mean"]) < 0.02
    with pytest.raises(NCAError, match="patch"):
        D.cell_curves(additive, alive, fr, 8, np.random.default_rng(0), patch=-1)
    with pytest.raises(NCAError, match="cell_attack"):
        D.DegradationSettings(cell_attack=-1)


def test_unit_means_are_the_steps_own_hidden_activations_for_any_perception(rule):
    """unit_means_of reads the step's "hidden" cache: for a Laplacian rule too (whose
    perception the article's Sobel recomputation would get wrong), the mean over alive cells."""
    from nca.model import rollout, seed_state

    params, cfg = rule
    x0 = np.asarray(seed_state(24, 24, cfg, batch=1))
    _, rec = rollout(params, x0, jax.random.key(2), 6, cfg, record=("state", "hidden"))
    # hidden[t] is computed from the state *before* step t: x0, then states[:-1]
    states = np.concatenate([x0[None], np.asarray(rec.states)[:-1]])[:, 0]
    hidden = np.asarray(rec.hidden)[:, 0]
    alive = states[..., 3] > cfg.alive_threshold
    np.testing.assert_allclose(D.unit_means_of(params, states, cfg), hidden[alive].mean(0), rtol=1e-5, atol=1e-6)


def test_the_default_unit_grid_follows_the_models_hidden_width():
    """A model of any width gets a unit curve without --unit-ks (the isotropic demo has 192
    units, a tiny run 32): the article's grid, scaled; itself at 128."""
    assert D.unit_grid(128) == D.UNIT_KS
    assert D.unit_grid(32) == (0, 1, 2, 4, 8, 12, 16, 20, 24, 28, 32)
    assert D.unit_grid(192)[-1] == 192 and len(D.unit_grid(192)) == len(D.UNIT_KS)

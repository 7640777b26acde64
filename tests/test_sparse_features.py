"""Sparse dictionary features: planted sparse directions are recovered and beat the shuffled
null, dense Gaussian cells do not; the feature hook removes exactly one feature's contribution;
the causal test finds a planted essential feature and gives a never-read one no effect; bad
input is one line; the report runs end to end."""

import dataclasses
import json
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis.representation import sparse_features as S
from nca.errors import NCAError

ROOT = Path(__file__).resolve().parents[1]
SMALL = S.SAEConfig(n_features=8, k=2, steps=600, batch=256, lr=1e-2)


def planted(n, dim=8, k=4, p=0.2, seed=0, noise=0.02):
    """n cells, each a sum of a few of k known unit directions (each on with probability p,
    magnitude in [0.5, 2]) plus a little noise -> (cells [n, dim], directions [k, dim])."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(k, dim))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    codes = (rng.random((n, k)) < p) * rng.uniform(0.5, 2.0, (n, k))
    return (codes @ d + noise * rng.normal(size=(n, dim))).astype(np.float32), d


def _gain(x, cfg, seeds=(0, 1)):
    fit = S.fit_and_score(x[:3000], x[3000:], cfg, seeds)
    null = S.fit_and_score(x[:3000], x[3000:], cfg, seeds, shuffle_rng=np.random.default_rng(7))
    return fit, np.array(fit["fve"]) - np.array(null["fve"])


def test_the_sae_recovers_planted_sparse_directions_and_beats_the_shuffled_null():
    x, truth = planted(4000)
    fit, gain = _gain(x, SMALL)
    cos = S.match_directions(fit["params"]["W_dec"], truth)
    assert cos.min() > 0.9, cos
    assert min(fit["fve"]) > 0.9
    assert gain.min() > 0.1, gain  # sparse structure beyond the null, in every fit
    assert fit["l0"][0] <= SMALL.k


def test_dense_gaussian_cells_show_no_sparse_structure_beyond_the_null():
    x = np.random.default_rng(3).normal(size=(4000, 8)).astype(np.float32)
    _, gain = _gain(x, SMALL)
    assert np.abs(gain).max() < 0.03, gain
    # and a random direction is no better recovered than chance: nothing planted to find
    rnd = np.random.default_rng(4).normal(size=(4, 8))
    fit = S.fit_and_score(x[:3000], x[3000:], SMALL, [0])
    assert S.match_directions(fit["params"]["W_dec"], rnd).min() < 0.9


def test_decoder_rows_stay_unit_norm_and_topk_keeps_at_most_k_features():
    x, _ = planted(2000)
    p, losses = S.train_sae(jnp.asarray(x), jax.random.key(0), SMALL)
    assert np.allclose(np.linalg.norm(np.asarray(p["W_dec"]), axis=1), 1.0, atol=1e-5)
    a = np.asarray(S.encode(p, jnp.asarray(x), "topk", 2))
    assert (a >= 0).all() and ((a > 0).sum(1) <= 2).all()
    assert float(losses[-50:].mean()) < float(losses[:50].mean())


def test_the_feature_hook_removes_exactly_one_features_contribution_on_living_cells():
    x, _ = planted(2000, dim=12)
    cfg = S.SAEConfig(n_features=6, k=2, steps=50, batch=64)
    stand = S.Standardiser.fit(x)
    p, _ = S.train_sae(jnp.asarray(stand(x)), jax.random.key(1), cfg)
    p = jax.tree.map(np.asarray, p)
    v = np.zeros((5, 5, 16), np.float32)
    v[..., 4:] = x[:25].reshape(5, 5, 12)
    v[..., 3] = 1.0
    v[0, 0, 3] = 0.0  # a dead cell
    sel = np.eye(6, dtype=np.float32)[2]
    out = np.asarray(S.feature_hook(p, stand, sel, p["W_dec"][2], cfg)(jnp.asarray(v), 0))
    a = np.asarray(S.encode(p, jnp.asarray(stand(v[..., 4:])), "topk", 2))[..., 2]
    want = v[..., 4:] - stand.scale * a[..., None] * p["W_dec"][2]
    want[0, 0] = v[0, 0, 4:]
    assert np.allclose(out[..., 4:], want, atol=1e-5)
    assert np.array_equal(out[..., :4], v[..., :4])
    assert (a > 0).any()  # the test removes something
    none = np.asarray(S.feature_hook(p, stand, np.zeros(6, np.float32), p["W_dec"][2], cfg)(jnp.asarray(v), 0))
    assert np.array_equal(none, v)


def test_removing_a_planted_essential_feature_kills_the_body_and_a_never_read_one_does_nothing():
    from analysis.causal.knockouts import Start

    from test_knockouts import or_model

    cfg, params, x0, target = or_model()  # channel 6 essential, channel 7 never read
    sae = {"W_enc": np.eye(4, dtype=np.float32), "b_enc": np.zeros(4, np.float32),
           "W_dec": np.eye(4, dtype=np.float32), "b_dec": np.zeros(4, np.float32)}
    stand = S.Standardiser(np.zeros(4, np.float32), 1.0)
    sae_cfg = S.SAEConfig(n_features=4, sparsity="l1")  # a = relu(hidden channels): feature i = channel 4 + i
    model = SimpleNamespace(model_config=cfg, params=params)
    eff = S.feature_effects(model, sae, stand, sae_cfg, Start("growth", np.repeat(x0, 2, 0), 0, 6),
                            jax.random.key(0), target, jax.random.key(1), chunk=4)
    assert eff["effect"].shape == (4, 2) and eff["control"].shape == (4, 2)
    assert np.allclose(eff["effect"][2], 1.0)  # channel 6 removed: as an empty grid
    assert np.array_equal(eff["effect"][3], np.zeros(2))  # channel 7 never read: exactly nothing
    assert np.array_equal(eff["effect"][[0, 1]], np.zeros((2, 2)))  # 4 and 5 back each other up
    assert np.allclose(np.linalg.norm(eff["directions"], axis=1), 1.0)


def test_removing_a_planted_essential_mlp_unit_feature_kills_the_body_and_a_never_active_one_does_nothing():
    from analysis.causal.knockouts import Start
    from test_knockouts import or_model

    cfg, params, x0, target = or_model()  # hidden unit 3 = relu(channel 6) keeps alpha up
    b_enc = np.zeros(4, np.float32)
    b_enc[1] = -100.0  # feature 1 is never active: removing it removes nothing
    sae = {"W_enc": np.eye(4, dtype=np.float32), "b_enc": b_enc, "W_dec": np.eye(4, dtype=np.float32),
           "b_dec": np.zeros(4, np.float32)}
    stand = S.Standardiser(np.zeros(4, np.float32), 1.0)
    model = SimpleNamespace(model_config=cfg, params=params)
    eff = S.feature_effects(model, sae, stand, S.SAEConfig(n_features=4, sparsity="l1"),
                            Start("growth", np.repeat(x0, 2, 0), 0, 6), jax.random.key(0), target,
                            jax.random.key(1), chunk=4, layer="mlp")
    assert np.allclose(eff["effect"][3], 1.0)  # unit 3 removed at the hidden hook: the body dies
    assert np.array_equal(eff["effect"][1], np.zeros(2)) and np.array_equal(eff["control"][1], np.zeros(2))


@pytest.mark.parametrize("make, match", [
    (lambda: S.SAEConfig(n_features=0), "at least 1 feature"),
    (lambda: S.SAEConfig(n_features=4, k=5), "1 <= k <= features"),
    (lambda: S.SAEConfig(sparsity="dense"), "sparsity must be one of"),
    (lambda: S.SAEConfig(n_features=400).check_data(10**6, 12), "more than 32 x the input"),
    (lambda: S.SAEConfig(n_features=64).check_data(100, 12), "need at least 10 cells per feature"),
    (lambda: S.SAEConfig(n_features=32, k=12).check_data(10**5, 12), "reconstructs any cell"),
])
def test_a_senseless_dictionary_is_one_clear_error(make, match):
    with pytest.raises(NCAError, match=match):
        make()


def test_bad_report_settings_are_one_clear_error():
    from analysis.reports.features import FeaturesSettings

    with pytest.raises(NCAError, match="held out"):
        FeaturesSettings("m", rollouts=1)
    with pytest.raises(NCAError, match="multiple of every"):
        FeaturesSettings("m", grow=25, every=10)
    with pytest.raises(NCAError, match="condition must be"):
        FeaturesSettings("m", condition="regeneration")
    with pytest.raises(NCAError, match="layer must be one of"):
        FeaturesSettings("m", layer="perception")


def test_a_model_with_no_living_cells_is_one_clear_error():
    import nca
    from analysis.reports import features as FR

    m = nca.load_model("distill:lizard/regenerating")
    p = {k: jnp.zeros_like(v) for k, v in m.params.items()}
    p["b2"] = p["b2"].at[3].set(-1.0)  # alpha falls: the seed dies on its first steps
    dying = dataclasses.replace(m, params=p, name="dying")
    s = FR.FeaturesSettings("dying", S.SAEConfig(n_features=4, k=2, steps=10), grow=4, every=2, size=12,
                            untrained=False)
    with pytest.raises(NCAError, match="living cells"):
        FR.run(s, model=dying)


def _run_script(args, capsys):
    old = sys.argv
    sys.argv = ["features_report.py", *map(str, args)]
    try:
        runpy.run_path(str(ROOT / "scripts" / "features_report.py"), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old
    return code, capsys.readouterr()


def test_features_report_end_to_end(tmp_path, capsys):
    out = tmp_path / "f"
    code, cap = _run_script(["distill:lizard/regenerating", "--out", out, "--size", "32", "--grow", "40",
                             "--every", "20", "--rollouts", "2", "--fits", "2", "--features", "4", "--k", "2",
                             "--train-steps", "100", "--effect-steps", "8", "--replicates", "2", "--quiet"], capsys)
    assert code in (0, None), cap.err
    rep = json.loads((out / "report.json").read_text())
    assert {"controls.png", "maps.png", "effects.png", "gallery.png", "index.html"} <= {p.name for p in out.iterdir()}
    rec = rep["reconstruction"]["model"]
    assert rec["cells"]["fve"]["n"] == 2 and 0 < rec["cells"]["fve"]["mean"] <= 1
    assert rec["gain"]["n"] == 2 and rec["n_test_cells"] > 0
    assert "cells" in rep["reconstruction"]["untrained"] or "reason" in rep["reconstruction"]["untrained"]
    assert len(rep["features"]) == 4 and all(f["effect"]["n"] == 2 for f in rep["features"])
    assert sorted(rep["order_by_effect"]) == [0, 1, 2, 3]
    assert "FVE" in cap.out and cap.out.strip().splitlines()[-1].startswith(f"wrote {out}/index.html")


def test_the_script_turns_a_senseless_dictionary_into_one_error_line(tmp_path, capsys):
    code, cap = _run_script(["distill:lizard/regenerating", "--out", tmp_path / "f", "--features", "4", "--k", "5"],
                            capsys)
    assert code == 2 and cap.err.startswith("error: ") and len(cap.err.strip().splitlines()) == 1, cap.err
    assert not (tmp_path / "f").exists()

"""Damage assays (panel masks, recovery rule, batched regrowth) and training dynamics
(phase change, onsets, measures at kept checkpoints)."""

import json
import runpy
from pathlib import Path

import jax
import numpy as np
import pytest

import nca
from analysis.development import damage_assays as D
from analysis.development import dynamics as Dy
from nca.damage import Cut
from nca.config import preset
from nca.errors import NCAError
from nca.train import train

ROOT = Path(__file__).resolve().parents[1]


def test_panel_masks():
    key = jax.random.key(0)
    left = D.damage_masks("cut_left", key, 2, 30, 30)
    np.testing.assert_array_equal(left[0], Cut(0, "left").mask(30, 30))
    np.testing.assert_array_equal(D.damage_masks("square", key, 1, 30, 30)[0], Cut(0, "square").mask(30, 30))
    stripe = D.damage_masks("stripe", key, 1, 32, 32)[0]
    assert stripe.any(1).sum() == 4 and stripe.all(1).sum() == 4  # full-width band, H//8 rows
    ring = D.damage_masks("ring", key, 1, 40, 40)[0]
    assert not ring[20, 20] and ring[20, 20 + 7] and not ring[20, 39]  # hole, band, outside
    scatter = D.damage_masks("scatter", key, 3, 40, 40)
    assert 0.45 < scatter.mean() < 0.55 and not np.array_equal(scatter[0], scatter[1])
    circles = D.damage_masks("circles", key, 2, 40, 40)
    assert circles.any((1, 2)).all() and not np.array_equal(circles[0], circles[1])
    with pytest.raises(ValueError):
        D.damage_masks("hexagon", key, 1, 8, 8)


def test_the_discs_drawn_at_cell_positions_are_the_articles_discs():
    """``_circles_at`` on the square grid's positions equals ``nca.damage.circle_masks`` for the
    same key, so the hex grid's discs are the same draws, placed in the Euclidean frame."""
    from nca.damage import circle_masks

    key = jax.random.key(3)
    ii, jj = D.wound_grid(40, 36)
    np.testing.assert_array_equal(D._circles_at(key, 5, ii, jj), np.asarray(circle_masks(key, 5, 40, 36)) > 0)


def test_hex_wounds_have_their_shape_in_the_bodys_frame_not_on_the_array():
    """On the hex grid (axial coordinates) the ring erases exactly the cells whose lattice
    point lies 0.12-0.22 of the grid from the seed's, and the left cut the cells left of the
    seed's lattice point; the square grid's masks applied to the hex array (the control: a
    sheared ring, a slanted cut) do not."""
    from types import SimpleNamespace

    from analysis.rollouts import cell_positions

    key, n = jax.random.key(0), 40
    rows, cols = np.mgrid[:n, :n]
    pos = cell_positions(rows.ravel(), cols.ravel(), SimpleNamespace(topology="hex")).reshape(n, n, 2)
    centre = pos[n // 2, n // 2]
    dist = np.hypot(*(pos - centre).transpose(2, 0, 1)) / n
    in_band = (dist >= 0.12 - 1e-9) & (dist <= 0.22 + 1e-9)
    np.testing.assert_array_equal(D.damage_masks("ring", key, 1, n, n, "hex")[0], in_band)
    assert not np.array_equal(D.damage_masks("ring", key, 1, n, n)[0], in_band)  # the array's ring is sheared
    left = pos[..., 0] < centre[0] - 1e-9
    np.testing.assert_array_equal(D.damage_masks("cut_left", key, 1, n, n, "hex")[0], left)
    assert (D.damage_masks("cut_left", key, 1, n, n)[0] != left).sum() > n  # the array's half is slanted
    square = D.damage_masks("square", key, 1, n, n, "hex")[0]
    side = pos[square]
    assert np.ptp(side[:, 0]) <= n // 3 and np.ptp(side[:, 1]) <= n // 3  # a square in world units
    for kind in ("stripe", "circles", "scatter"):
        assert D.damage_masks(kind, key, 2, n, n, "hex").shape == (2, n, n)


def test_recovery_rule():
    steps = np.arange(6) * 10
    control = np.full((6, 3), 0.01)
    loss = control + np.array([[0.1, 0.1, 0.1], [0.05, 0.2, 0.1], [0.02, 0.2, 0.005],
                               [0.005, 0.2, 0.02], [0.001, 0.2, 0.005], [0.0, 0.2, 0.009]])
    r = D.recovery(loss, control, steps, empty=1.0, rel_tol=0.1, abs_tol=0.002)
    # replicate 0 stays within 10% of the initial gap from step 30; replicate 1 never recovers;
    # replicate 2 dips at step 20, relapses at 30, recovers for good at 40
    assert r["time_to_recover"] == [30, None, 40]
    assert r["success"] == [True, False, True]
    np.testing.assert_allclose(r["recovery_fraction"][:, 0], [0, 0.5, 0.8, 0.95, 0.99, 1.0])


def test_panel_on_the_lizard_regrows_and_the_control_has_no_gap():
    m = nca.load_model("distill:lizard/regenerating")
    p = D.Protocol(grow_steps=80, regrow_steps=60, replicates=2, every=20)
    r = D.run_panel(m.params, m.model_config, m.target_image(), jax.random.key(0), 72, p, ("cut_left", "ring"))
    assert r["steps"] == [0, 20, 40, 60]
    left = r["damages"]["cut_left"]
    gap = np.array(left["loss"]) - np.array(r["control"]["loss"])
    assert np.all(gap[0] > 0.005) and np.all(gap[-1] < 0.5 * gap[0])  # damaged, then regrowing
    assert 0.2 < np.mean(left["erased_fraction"]) < 0.9
    assert r["damages"]["ring"]["unseen_in_training"] and not left["unseen_in_training"]
    assert r["snapshots"]["cut_left"].shape == (3, 72, 72, 4)
    assert r["snapshots"]["cut_left"][0, :, :36, 3].max() == 0.0  # the wound, right after the cut


def test_phase_change_and_onset():
    steps = [0, 1, 2, 3, 6, 10, 18]
    loss = [0.1, 0.1, 0.09, 0.09, 0.01, 0.009, 0.008]
    pc = Dy.phase_change(steps, loss)
    assert (pc["from_step"], pc["to_step"]) == (3, 6) and pc["share_of_total_drop"] > 0.8
    assert Dy.onset(steps, [False, True, False, False, True, True, True]) == 6
    assert Dy.onset(steps, [True] * 6 + [False]) is None


def test_dynamics_report_on_a_tiny_run(tmp_path):
    run = tmp_path / "run"
    train(preset("tiny", train_steps=6, experiment="growing"), run, progress=False, log=lambda *_: None)
    dyn = runpy.run_path(str(ROOT / "scripts" / "dynamics_report.py"), run_name="dynamics_report")
    assert dyn["main"]([str(run), "--out", str(tmp_path / "rep"), "--steps", "10", "--long", "12"]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    s = rep["results"][0]["series"]
    assert s["steps"] == [0, 1, 2, 3, 6]
    # step 0 is the do-nothing init: the seed never grows, so nothing can be knocked out
    ck0 = rep["results"][0]["checkpoints"][0]
    assert ck0["knockouts"]["grown"] is False and all(e is None for e in ck0["knockouts"]["effect"])
    assert {"loss", "loss_long", "n_axial", "essential_channels", "phase_change", "onset"} <= set(s)
    assert (tmp_path / "rep" / "index.html").stat().st_size > 10_000
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "config.json").write_text((run / "config.json").read_text())
    with pytest.raises(NCAError, match="kept checkpoint"):
        dyn["main"]([str(tmp_path / "bare"), "--out", str(tmp_path / "x")])


def test_damage_report_with_two_models_shows_spread(tmp_path, capsys):
    rep = runpy.run_path(str(ROOT / "scripts" / "damage_report.py"), run_name="damage_report")
    out = tmp_path / "d"
    argv = ["distill:lizard/regenerating", "distill:lizard/persistent", "--out", str(out), "--grow", "60",
            "--regrow", "20", "--every", "10", "--replicates", "2", "--damages", "square,stripe"]
    assert rep["main"](argv + ["--quiet"]) == 0
    first = capsys.readouterr()
    assert first.err == "" and "distill:lizard/persistent square" in first.out and "wrote " in first.out
    before = (out / "report.json").read_bytes()
    # the same model and settings replace their report (--quiet is not a setting); results
    # go to stdout, the progress bar to stderr (issue 25: `> out.txt` captured nothing)
    assert rep["main"](argv) == 0
    again = capsys.readouterr()
    assert "damage" in again.err and "%" in again.err and "distill:lizard/persistent square" not in again.err
    assert again.out.splitlines()[:-1] == first.out.splitlines()[:-1]  # the last line: its timing
    strip = lambda b: {k: v for k, v in json.loads(b).items() if k not in ("timing_s", "command")}  # noqa: E731
    assert strip((out / "report.json").read_bytes()) == strip(before)
    r = json.loads((out / "report.json").read_text())
    assert r["models"] == ["distill:lizard/regenerating", "distill:lizard/persistent"]
    s = r["summary"]["square"]["success_rate"]
    assert len(s["values"]) == 2 and s["mean"] == pytest.approx(np.mean(s["values"]))
    assert s["ci"]["n"] == 2 and s["ci"]["mean"] == pytest.approx(s["mean"])
    assert set(r["figures"]) == {"recovery.png", "success.png", "time.png", "gallery.png", "recovery_models.png"}
    iv = r["results"][1]["intervals"]["square"]
    assert iv["success_rate"]["n"] == 2 and 0 <= iv["success_rate"]["lo"] <= iv["success_rate"]["mean"] <= 1
    assert iv["erased_fraction"]["n"] == 2 and iv["erased_fraction"]["lo"] <= iv["erased_fraction"]["mean"]
    assert all((out / f).stat().st_size > 1000 for f in r["figures"])
    with pytest.raises(SystemExit) as e:  # argparse: one error line, exit 2
        rep["main"](["distill:lizard/regenerating", "--out", str(out), "--regrow", "0"])
    assert e.value.code == 2
    with pytest.raises(NCAError, match="hexagon"):
        rep["main"](["distill:lizard/regenerating", "--out", str(out), "--damages", "square,hexagon"])
    with pytest.raises(NCAError, match="unknown published model"):
        rep["main"](["distill:lizard/sideways", "--out", str(out)])

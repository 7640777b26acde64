"""Sweeps (nca.sweep) and their results table (analysis.reports.sweep).

A grid expands to configs x seeds with stable names; runs that differ only in seed, target,
lr and fire rate train as one vmapped program (per-model targets and hyperparameters) and
equal the same runs trained as plain populations or alone, in one process or two; two
processes given different sweeps, or a second sweep into a held folder, are refused in one
line before anything is written; the scores find a body where there is one (a published model) and none
where there is none (an untrained model scores the empty grid's loss); the table's
intervals are over seeds.
"""

import csv
import io
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import nca
from analysis.reports.sweep import (ScoreSettings, config_table, score_model, to_csv, to_html, varied_fields)
from nca.config import preset
from nca.errors import NCAError
from nca.model import init_params
from nca.multiseed import read_job, train_seeds
from nca.sweep import Sweep, expand, groups, parse_axis, train_sweep
from test_distributed import error_lines, finish, free_port

QUIET = dict(progress=False, log=lambda *_: None)


def test_axes_parse_to_typed_values_and_bad_ones_are_one_line():
    assert parse_axis("lr=1e-3,2e-3") == ("lr", (0.001, 0.002))
    assert parse_axis("fire-rate=0.5,0.75") == ("fire_rate", (0.5, 0.75))
    assert parse_axis("hidden=32") == ("hidden", (32,))
    assert parse_axis("target=lizard,butterfly") == ("target", ("lizard", "butterfly"))
    for text, pattern in [("lr", "FIELD=V1,V2"), ("speed=1", "not a config field"), ("seed=1,2", "--seeds"),
                          ("hidden=3.5", "not int"), ("lr=1,1", "repeat")]:
        with pytest.raises(NCAError, match=pattern):
            parse_axis(text)


def test_a_grid_expands_to_configs_times_seeds_with_names():
    base = preset("tiny")
    names, cfgs, varied = expand(Sweep(base, (("lr", (1e-3, 2e-3)), ("hidden", (16, 32))), seeds=(0, 1)))
    assert names[:3] == ["lr0.001_hidden16/seed_0", "lr0.001_hidden16/seed_1", "lr0.001_hidden32/seed_0"]
    assert len(names) == 8 and len(set(names)) == 8
    assert [(c.lr, c.model.hidden, c.seed) for c in cfgs[:3]] == [(1e-3, 16, 0), (1e-3, 16, 1), (1e-3, 32, 0)]
    assert varied[3] == {"lr": 1e-3, "hidden": 32, "seed": 1}
    # the hidden width is static in the compiled step, lr a traced argument: 2 programs of 4 runs
    assert groups(cfgs) == [[0, 1, 4, 5], [2, 3, 6, 7]]
    names, cfgs, _ = expand(Sweep(base, configs=({"lr": 1e-3}, {"fire_rate": 0.75}), seeds=(3,)))
    assert names == ["lr0.001/seed_3", "fire_rate0.75/seed_3"] and cfgs[1].model.fire_rate == 0.75
    with pytest.raises(NCAError, match="not both"):
        Sweep(base, (("lr", (1e-3,)),), ({"lr": 1e-3},))
    with pytest.raises(NCAError, match=r"config hidden0: .*hidden must be >= 1"):
        expand(Sweep(base, (("hidden", (0,)),)))


def test_seeds_and_targets_share_one_program_and_equal_plain_populations(tmp_path):
    base = preset("tiny", train_steps=3, checkpoint_every=3, keep_checkpoints="none")
    sweep = Sweep(base, (("target", ("lizard", "butterfly")),), seeds=(0, 1))
    names, cfgs, _ = expand(sweep)
    assert groups(cfgs) == [[0, 1, 2, 3]]  # one vmapped program, a target per model
    _, results = train_sweep(sweep, tmp_path / "sw", **QUIET)
    assert [r["run"] for r in results] == names and all(r["step"] == 3 for r in results)
    assert read_job(tmp_path / "sw") == (names, cfgs)
    for target in ("lizard", "butterfly"):
        alone = train_seeds(preset("tiny", train_steps=3, checkpoint_every=3, keep_checkpoints="none",
                                   target=target), tmp_path / target, [0, 1], **QUIET)
        for i, s in enumerate((0, 1)):
            got = nca.load_model(tmp_path / "sw" / f"target{target}" / f"seed_{s}")
            for name in got.params:
                np.testing.assert_allclose(np.asarray(got.params[name]), np.asarray(alone.params[name][i]),
                                           rtol=1e-4, atol=1e-6)
    lizard0 = nca.load_model(tmp_path / "sw" / "targetlizard" / "seed_0").params["w1"]
    butterfly0 = nca.load_model(tmp_path / "sw" / "targetbutterfly" / "seed_0").params["w1"]
    assert not np.allclose(np.asarray(lizard0), np.asarray(butterfly0))  # the targets really differed


HYPER_BASE = dict(train_steps=3, checkpoint_every=3, keep_checkpoints="none")
# three configs that share every shape: lr, and the fire rate, each varied once
HYPER_CONFIGS = ({"lr": 1e-3}, {"lr": 4e-3}, {"lr": 1e-3, "fire_rate": 0.75})


@pytest.fixture(scope="module")
def hyper_sweep(tmp_path_factory):
    """The sweep of HYPER_CONFIGS trained in this process, and the number of programs built."""
    from nca.multiseed import _population_step

    out = tmp_path_factory.mktemp("hyper") / "sw"
    sweep = Sweep(preset("tiny", **HYPER_BASE), configs=HYPER_CONFIGS, seeds=(5,))
    _population_step.cache_clear()
    _, results = train_sweep(sweep, out, **QUIET)
    return sweep, out, results, _population_step.cache_info().misses


def params_of(run_dir):
    return {k: np.asarray(v) for k, v in nca.load_model(run_dir).params.items()}


def test_lr_and_fire_rate_sweeps_are_one_program_that_equals_each_config_trained_alone(tmp_path, hyper_sweep):
    from nca.train import train

    sweep, out, results, programs = hyper_sweep
    names, cfgs, _ = expand(sweep)
    assert groups(cfgs) == [[0, 1, 2]] and programs == 1  # one vmapped program for the three
    assert [r["step"] for r in results] == [3, 3, 3]
    got = [params_of(out / n) for n in names]
    for i, cfg in enumerate(cfgs):  # each config alone: plain train(), its lr and fire rate static
        train(cfg, tmp_path / f"alone{i}", **QUIET)
        alone = params_of(tmp_path / f"alone{i}")
        for k in alone:
            np.testing.assert_allclose(got[i][k], alone[k], rtol=1e-4, atol=1e-6)
    # negative: the hyperparameters really reached the program (same seed, different runs)
    for j in (1, 2):
        assert not np.allclose(got[0]["w1"], got[j]["w1"], rtol=1e-3, atol=1e-5), names[j]
    # the metrics record each run's own lr
    lrs = [next(csv.DictReader(open(out / n / "metrics.csv")))["lr"] for n in names]
    assert lrs == ["0.001", "0.004", "0.001"]


def test_configs_that_differ_in_shape_are_separate_programs():
    _, cfgs, _ = expand(Sweep(preset("tiny"), configs=({"lr": 1e-3}, {"hidden": 16}, {"batch_size": 4},
                                                        {"fire_rate": 0.75, "lr": 2e-3}), seeds=(0,)))
    assert groups(cfgs) == [[0, 3], [1], [2]]


@pytest.fixture(scope="module")
def published():
    return nca.load_model("distill:lizard/regenerating")


def test_scores_find_a_body_where_there_is_one_and_none_where_there_is_none(published):
    m = published
    s = ScoreSettings(grow_steps=100, persist_steps=20, regrow_steps=60, replicates=2, seed=0)
    target = m.target_image()
    got = score_model(m.params, m.model_config, target, m.grid_size, s)
    empty = got["empty_loss"]
    # planted: the published regenerating lizard grows, holds and regrows its cut half
    assert np.all(got["growth"] < 0.1 * empty) and np.all(got["persistence"] < 0.1 * empty)
    assert np.all(got["regeneration"] < 0.25 * empty)
    cut = score_model(m.params, m.model_config, target, m.grid_size,
                      ScoreSettings(grow_steps=100, persist_steps=20, regrow_steps=1, replicates=2, seed=0))
    assert np.all(got["regeneration"] < 0.5 * cut["regeneration"])  # the score saw the regrowth
    # negative: an untrained model (zero last layer) grows nothing -> the empty grid's loss
    zero = score_model(init_params(jax.random.key(0), m.model_config), m.model_config, target, m.grid_size, s)
    for k in ("growth", "persistence", "regeneration"):
        np.testing.assert_allclose(zero[k], empty, rtol=0.02)


def test_the_table_takes_intervals_over_seeds():
    def run(lr, seed, g):
        ci = {"mean": g, "lo": g - 0.01, "hi": g + 0.01, "n": 4}
        return {"values": {"lr": lr, "seed": seed}, "final_loss": g / 2, "empty_loss": 0.04,
                "growth": ci, "persistence": ci, "regeneration": ci}

    runs = [run(1e-3, s, g) for s, g in enumerate((0.010, 0.012, 0.014))] + [run(2e-3, 0, 0.03)]
    table = config_table(runs, ["lr", "seed"])
    assert [r["config"] for r in table] == [{"lr": 1e-3}, {"lr": 2e-3}]
    a = table[0]["growth"]
    assert a["n"] == 3 and a["mean"] == pytest.approx(0.012)
    # t interval over the 3 seed means: 0.012 +- t(0.975, 2) * 0.002 / sqrt(3)
    assert a["hi"] - a["mean"] == pytest.approx(4.302653 * 0.002 / 3 ** 0.5, rel=1e-5)
    assert table[1]["growth"]["lo"] is None  # one seed: no interval, not a fake one
    rows = list(csv.DictReader(io.StringIO(to_csv(table, ["lr", "seed"]))))
    assert rows[0]["lr"] == "0.001" and rows[0]["n_seeds"] == "3" and rows[1]["growth_lo"] == ""
    page = to_html(table, ["lr", "seed"], ScoreSettings())
    assert "0.0120 [" in page and "(n=3)" in page and "(n=1)" in page


def test_varied_fields_are_those_that_differ():
    names, cfgs, _ = expand(Sweep(preset("tiny"), (("lr", (1e-3, 2e-3)),), seeds=(0, 1)))
    assert varied_fields(cfgs) == ["lr", "seed"]


@pytest.mark.parametrize("args, pattern", [
    (["--vary", "speed=1,2"], "not a config field"),
    (["--vary", "lr=1e-3", "--configs", "x.json"], "not both"),
    (["--resume", "--vary", "lr=1e-3"], "saved configs"),
    (["--configs", "{tmp}/missing.json"], "cannot read --configs"),
    (["--coordinator", "localhost:1"], "together"),
])
def test_sweep_script_bad_input_is_one_line(tmp_path, args, pattern, monkeypatch, capsys):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["sweep.py", "--out", str(tmp_path / "sw"), *args, "--quiet"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "sweep.py"), run_name="__main__")
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and pattern in err, err
    assert not (tmp_path / "sw" / "job.json").exists()


def test_a_results_folder_with_foreign_files_is_refused_before_scoring(tmp_path, monkeypatch, capsys):
    # --results DIR is a report folder like any other (nca.cli.claim_report_dir): files no
    # report wrote are refused in one line, and left as they were
    results = tmp_path / "mine"
    results.mkdir()
    (results / "thesis.tex").write_text("precious")
    monkeypatch.setattr(sys, "argv", ["sweep.py", "--out", str(tmp_path / "sw"), "--score-only",
                                      "--results", str(results), "--quiet"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "sweep.py"), run_name="__main__")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "did not write (thesis.tex)" in err, err
    assert sorted(p.name for p in results.iterdir()) == ["thesis.tex"]


def launch_sweep(args, pid: int, port: int):
    args = [*args, "--coordinator", f"localhost:{port}", "--num-processes", "2", "--process-id", str(pid),
            "--heartbeat-timeout", "5", "--init-timeout", "120", "--quiet"]
    return subprocess.Popen([sys.executable, "scripts/sweep.py", *map(str, args)], cwd=Path(__file__).resolve().parents[1],
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_processes_given_different_sweeps_for_one_folder_are_refused_before_writing(tmp_path):
    out, port = tmp_path / "sw", free_port()
    common = ["--out", out, "--preset", "tiny", "--train-steps", "2", "--seeds", "0"]
    procs = [launch_sweep([*common, "--vary", vary], i, port) for i, vary in enumerate(("lr=1e-3,2e-3", "lr=1e-3,3e-3"))]
    for i, p in enumerate(procs):
        rc, _, err = finish(p, timeout=240)
        lines = error_lines(err)
        assert rc == 2 and "Traceback" not in err and len(lines) == 1, err[-3000:]
        assert f"process {1 - i} was started with another job than process {i}" in lines[0], lines
    assert not (out / "job.json").exists() and not list(out.glob("*/seed_0/config.json"))


def test_two_processes_train_the_lr_and_fire_rate_sweep_like_one(tmp_path, hyper_sweep):
    sweep, ref, _, _ = hyper_sweep
    names, _, _ = expand(sweep)
    configs = tmp_path / "configs.json"
    configs.write_text(json.dumps(list(HYPER_CONFIGS)))
    out, port = tmp_path / "sw", free_port()
    args = ["--out", out, "--preset", "tiny", "--configs", configs, "--seeds", "5", "--train-steps", "3",
            "--checkpoint-every", "3", "--keep-checkpoints", "none", "--grow-steps", "2", "--persist-steps", "1",
            "--regrow-steps", "1", "--replicates", "2"]
    procs = [launch_sweep(args, i, port) for i in (0, 1)]
    for p in procs:
        rc, _, err = finish(p)
        assert rc == 0 and not error_lines(err), err[-3000:]
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["run"], r["process"]) for r in rows] == [(names[0], "0"), (names[1], "1"), (names[2], "0")]
    for n in names:  # process 0 vmaps runs 0 and 2 (lr, fire rate differ), process 1 run 1 alone
        got, want = params_of(out / n), params_of(ref / n)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6)
    assert (out / "results.csv").is_file()


def test_a_second_sweep_into_a_folder_another_job_holds_is_refused_before_writing(tmp_path):
    from nca import checkpoint as ckpt

    out = tmp_path / "sw"
    sweep = Sweep(preset("tiny", train_steps=2), (("lr", (1e-3, 2e-3)),), seeds=(0,))
    with ckpt.claim_run_dir(out):  # what a sweep running into OUT holds for its whole run
        with pytest.raises(NCAError, match="in use by another"):
            train_sweep(sweep, out, **QUIET)
    assert list(out.iterdir()) == []  # no job.json, no run folder (the lock went with its holder)

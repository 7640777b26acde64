"""scripts/selfish.py: clean one-line errors before any training, and a small run writing
index.html + report.json + PNGs."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, timeout=600):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "selfish.py"), *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def still_host(tmp_path_factory):
    """A run folder whose model does not grow (one negligible step from the do-nothing start)."""
    from nca.config import preset
    from nca.train import train

    d = tmp_path_factory.mktemp("still") / "run"
    train(preset("tiny", train_steps=1, checkpoint_every=1, lr=1e-12), d, progress=False, log=lambda *_: None)
    return str(d)


@pytest.fixture(scope="module")
def selfish_main():
    return runpy.run_path(str(ROOT / "scripts" / "selfish.py"), run_name="selfish")["main"]


@pytest.mark.parametrize("args, msg", [
    ((), "--out"),
    (("--out", "OUT", "--experiments", "altruists"), "unknown experiment"),
    (("--out", "OUT", "--seeds", "1,1"), "distinct"),
    (("--out", "OUT", "--seeds", "1 2"), "expected an integer"),
    (("--out", "OUT", "--preset", "huge"), "invalid choice"),
    (("--out", "OUT", "--mutation-rate", "1.5"), "mutation rate must be in [0, 1]"),
    (("--out", "OUT", "--mutation-rate", "-0.1"), "mutation rate must be in [0, 1]"),
    (("--out", "OUT", "--genome-size", "0"), "genome size must be >= 1"),
    (("--out", "OUT", "distill:unicorn/growing", "--experiments", "landscape"), "unknown"),
    (("--out", "OUT", "STILL", "--experiments", "landscape"), "does not grow"),
])
def test_bad_input_is_one_clear_error_before_any_training(tmp_path, still_host, selfish_main, capsys, args, msg):
    out = tmp_path / "o"
    args = tuple(str(out) if a == "OUT" else still_host if a == "STILL" else a for a in args)
    if not args:  # once as the program itself: a real process, its exit status and stderr
        r = _run(*args)
        code, err = r.returncode, r.stderr
    else:  # the same entry point in this process (cli.run_cli, as the program runs it): 2 s less each
        from nca import cli

        with pytest.raises(SystemExit) as e:
            cli.run_cli(lambda: selfish_main(list(args)))
        code, err = e.value.code, capsys.readouterr().err
    assert code == 2, err
    assert msg in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not any(out.glob("*/seed*")) if out.exists() else True  # nothing was trained


def test_somatic_run_writes_the_report(tmp_path):
    out = tmp_path / "s"
    r = _run("--out", str(out), "--preset", "smoke", "--seeds", "0,1", "--experiments", "spontaneous,landscape",
             "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads((out / "report.json").read_text())
    (host,) = rep["spontaneous"]
    summ = rep["spontaneous"][host]["summary"]
    assert set(summ) == {"mutant", "neutral", "control"}
    assert summ["control"]["clones_founded"]["values"] == [0, 0]  # no mutation: one clone
    assert summ["neutral"]["final_loss_minus_control"]["values"] == [0, 0]  # neutral genomes change nothing
    land = rep["landscape"][host]
    assert land["summary"]["0.0"]["alpha_up"]["values"] == [0, 0]  # size 0: the null, exactly
    html = (out / "index.html").read_text()
    for name in ("muller_h0_mutant.png", "clone_sizes_h0.png", "clones_body_h0.png", "landscape_h0.png"):
        assert (out / name).stat().st_size > 0 and name in html
    assert "http" not in html
    # stdout gets every experiment's headline numbers, each with n (summary_lines); stderr
    # only progress (issue 25: `> out.txt` captured nothing)
    assert f"spontaneous {host} mutant" in r.stdout and f"spontaneous {host} control" in r.stdout
    assert f"landscape {host} s(alpha-up, size 0.1)" in r.stdout and "(n=2)" in r.stdout
    assert f"spontaneous {host} mutant" not in r.stderr


def test_the_default_runs_the_somatic_experiments_and_all_runs_every_one():
    from nca.selfish.pipeline import DEFAULT_EXPERIMENTS, EXPERIMENTS, selfish_settings

    assert selfish_settings("cpu").experiments == DEFAULT_EXPERIMENTS == ("spontaneous", "landscape", "policing")
    assert selfish_settings("cpu", experiments=["all"]).experiments == EXPERIMENTS
    assert selfish_settings("cpu", experiments=["credit"]).experiments == ("credit",)

"""The command-line scripts: they work, and bad input is one clear line, no traceback."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def assert_clean_error(proc, pattern):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and pattern in proc.stderr, proc.stderr


def test_train_script_runs_and_resumes(tmp_path):
    out = tmp_path / "run"
    p = run("scripts/train.py", "--preset", "tiny", "--train-steps", "6", "--checkpoint-every", "3",
            "--experiment", "growing", "--out", out, "--quiet")
    assert p.returncode == 0, p.stderr
    assert {f.name for f in out.iterdir()} >= {"config.json", "checkpoint.msgpack", "metrics.csv", "preview.png"}
    p = run("scripts/train.py", "--resume", out, "--train-steps", "8", "--quiet")
    assert p.returncode == 0, p.stderr
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 8
    p = run("scripts/grow.py", out, "--steps", "5", "--out", tmp_path / "s.npy")
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "s.npy").shape == (20, 20, 16)


@pytest.mark.parametrize("args, pattern", [
    (["--preset", "huge", "--out", "x"], "unknown preset"),
    (["--experiment", "sideways", "--out", "x"], "unknown experiment"),
    (["--target", "/no/such/file.png", "--preset", "tiny", "--out", "{tmp}/r"], "not found"),
    (["--resume", "{tmp}/nothing"], "no config.json"),
])
def test_train_script_bad_input(tmp_path, args, pattern, monkeypatch, capsys):
    import runpy

    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train.py", *args, "--quiet"])
    with pytest.raises(SystemExit) as e:  # in this process: the errors come before any computing
        runpy.run_path(str(ROOT / "scripts" / "train.py"), run_name="__main__")
    assert_clean_error(subprocess.CompletedProcess(args, e.value.code, "", capsys.readouterr().err), pattern)
    assert not (tmp_path / "x").exists()


def test_grow_script_png_and_errors(tmp_path):
    p = run("scripts/grow.py", "distill:lizard/persistent", "--steps", "60", "--size", "48",
            "--out", tmp_path / "l.png")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("grew ") and "grew" not in p.stderr  # the result on stdout (issue 25)
    from PIL import Image

    assert Image.open(tmp_path / "l.png").size == (48 * 4, 48 * 4)
    assert_clean_error(run("scripts/grow.py", "distill:unicorn/growing", "--out", tmp_path / "x.png"),
                       "unknown published model")
    assert_clean_error(run("scripts/grow.py", "distill:lizard/growing", "--out", tmp_path / "x.jpg"),
                       ".npy or .png")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    assert_clean_error(run("scripts/grow.py", tmp_path / "bad", "--out", tmp_path / "x.png"), "cannot read")


@pytest.mark.parametrize("name", ["train", "grow", "animate", "render_targets"])
def test_core_scripts_follow_the_command_line_convention(name):
    import argparse
    import runpy

    from nca import cli

    ap = runpy.run_path(str(ROOT / "scripts" / f"{name}.py"), run_name="convention_check")["parser"]()
    assert isinstance(ap, cli.Parser)
    opts = {s: act for act in ap._actions for s in act.option_strings}
    assert "--out" in opts and opts["--out"] in ap.required_args._group_actions  # shown as required
    for act in ap._actions:
        assert act.help and act.help != argparse.SUPPRESS, act.option_strings or act.dest  # every flag explained
    assert "--no-progress" not in opts
    if "--seeds" in opts:
        assert opts["--seeds"].type is cli.nonneg_int_list  # a comma-separated list, never a count
    if name in ("train", "animate"):  # the scripts with progress bars
        assert opts["--quiet"].nargs == 0
    for flag in ("--steps", "--every"):
        if flag in opts:
            assert opts[flag].type in (cli.nonneg_int, cli.positive_int)  # a number of CA steps
    assert "--out" in ap.format_help().split("required arguments:")[1]


def test_ctrl_c_in_training_prints_the_exact_resume_command(tmp_path):
    """Issue 25: after Ctrl-C the checkpoint is saved and the exact command that continues
    the run is printed (exit 130, the interrupted code)."""
    import shlex
    import signal
    import time

    out = tmp_path / "my run"  # a space: the command must be quoted
    proc = subprocess.Popen([sys.executable, "scripts/train.py", "--preset", "tiny", "--train-steps", "100000",
                             "--keep-checkpoints", "none", "--quiet", "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t_end = time.time() + 120
    while not (out / "config.json").exists() and proc.poll() is None and time.time() < t_end:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("resume with: ")]
    assert len(lines) == 1, stderr
    cmd = shlex.split(lines[0][len("resume with: "):])
    assert cmd[1:] == ["scripts/train.py", "--resume", str(out)] and cmd[0].startswith("python"), cmd
    assert "interrupted at step" in stdout

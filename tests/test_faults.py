"""Every bad input and fault (issue #14): one clear line, nothing lost.

Each class of the issue's list, tested on the library where it can be (NCAError, no flag
names), through a script in a subprocess only where the script's own behaviour is the
point (exit code 2, ``error: ...`` on a line of its own, no traceback). Every refusal has
a control beside it: the nearest good input is accepted.
"""

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nca import checkpoint as ckpt
from nca.config import Config, load_config, preset, with_overrides
from nca.errors import NCAError
from nca.targets import load_target
from nca.train import train

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(progress=False, log=lambda *_: None)
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def run_script(*args, preexec_fn=None, timeout=300):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn)


def run_in_process(script, args, monkeypatch, capsys):
    """Run scripts/<script>.py's main in this process (JAX imported once) -> (exit code,
    stderr): for errors found before any computing."""
    import runpy

    monkeypatch.setattr(sys, "argv", [f"{script}.py", *map(str, args)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "scripts" / f"{script}.py"), run_name="__main__")
    return subprocess.CompletedProcess(args, e.value.code, "", capsys.readouterr().err)


def assert_one_line_error(proc, pattern):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.replace("\r", "\n").splitlines() if "error:" in ln]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]  # own line, once
    assert pattern in lines[0], lines[0]


# --------------------------------------------------------------------------- invalid values


@pytest.mark.parametrize("override, field", [
    (dict(hidden=0), "hidden"),
    (dict(channels=2), "channels"),
    (dict(fire_rate=1.5), "fire_rate"),
    (dict(fire_rate=0.0), "fire_rate"),
    (dict(fire_rate=float("nan")), "fire_rate"),
    (dict(alive_threshold=float("nan")), "alive_threshold"),
    (dict(lr=-1e-3), "lr"),
    (dict(lr=0.0), "lr"),
    (dict(lr=float("inf")), "lr"),
    (dict(lr_decay_factor=float("nan")), "lr_decay_factor"),
    (dict(grad_norm_eps=float("nan")), "grad_norm_eps"),
    (dict(train_steps=0), "train_steps"),
    (dict(train_steps=-5), "train_steps"),
    (dict(target_size=0), "target_size"),
    (dict(target_padding=-1), "target_padding"),
    (dict(rollout_min=0), "rollout_min"),
    (dict(seed=-1), "seed"),
    (dict(seed=2**32), "seed"),  # jax.random.key keeps 32 bits: it would repeat seed 0
    (dict(keep_checkpoints="every:0"), "keep_checkpoints"),
    (dict(train_steps="40"), "train_steps"),
    (dict(lr="fast"), "lr"),
    (dict(hidden=True), "hidden"),
])
def test_invalid_architecture_and_optimiser_values_are_rejected_naming_the_field(override, field):
    with pytest.raises(NCAError, match=rf"\b{field}\b") as e:
        preset("tiny", **override)
    assert "not supported between" not in str(e.value)  # a comparison error would not name it
    with pytest.raises(NCAError, match=rf"\b{field}\b"):
        with_overrides(preset("tiny"), override)


def test_the_nearest_good_values_are_accepted():
    cfg = preset("tiny", hidden=1, channels=4, fire_rate=1.0, lr=1e-9, lr_decay_factor=1.0, grad_norm_eps=0.0,
                 train_steps=1, target_padding=0, seed=0, keep_checkpoints="log+every:3", lr_decay_step=0)
    assert cfg.model.hidden == 1 and cfg.model.channels == 4 and cfg.lr == 1e-9
    assert Config.from_dict(cfg.to_dict()) == cfg  # a saved config reads back equal
    assert preset("tiny", lr=1).lr == 1  # an integer is a number


@pytest.mark.parametrize("content, field", [
    ({"lr": "fast"}, "lr"),
    ({"train_steps": [8000]}, "train_steps"),
    ({"train_steps": True}, "train_steps"),
    ({"target": 5}, "target"),
    ({"model": [16, 128]}, "model"),
    ({"model": {"hidden": "128"}}, "model.hidden"),
    ({"model": {"channels": 2}}, "channels"),
    ({"model": {"fire_rate": None}}, "model.fire_rate"),
    ({"model": {"depth": 3}}, "depth"),
    ({"bogus": 1}, "bogus"),
    ([1, 2], "JSON object"),
    ("lizard", "JSON object"),
])
def test_a_resumed_config_json_with_wrong_types_or_shapes_is_one_clear_error(tmp_path, content, field):
    run = tmp_path / "run"
    run.mkdir()
    good = preset("tiny").to_dict()
    if isinstance(content, dict):
        model = {**good["model"], **content.pop("model")} if isinstance(content.get("model"), dict) else None
        bad = {**good, **content, **({"model": model} if model is not None else {})}
    else:
        bad = content
    (run / "config.json").write_text(json.dumps(bad))
    with pytest.raises(NCAError, match=field):
        load_config(run / "config.json")
    with pytest.raises(NCAError, match=field):
        train(None, run, resume=True, **QUIET)
    (run / "config.json").write_text(json.dumps(good))  # control: the same folder with a good config
    assert load_config(run / "config.json") == preset("tiny")


# --------------------------------------------------------------------------- OS faults


def test_disk_full_during_a_write_is_one_line_and_keeps_the_old_file(tmp_path):
    p = tmp_path / "checkpoint.msgpack"
    ckpt.atomic_write_bytes(p, b"the good old checkpoint")

    def fill_disk(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(NCAError, match="cannot write .*checkpoint.msgpack: the disk is full"):
        ckpt.atomic_write_bytes(p, fill_disk)
    assert p.read_bytes() == b"the good old checkpoint"
    assert [f.name for f in tmp_path.iterdir()] == ["checkpoint.msgpack"]  # no temp file left


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (root with mount rights only): a real full disk and a real read-only
    file system."""
    where = tmp_path / "mnt"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_real_full_disk_and_a_read_only_file_system_are_one_line(tiny_tmpfs):
    p = tiny_tmpfs / "run" / "metrics.csv"
    ckpt.atomic_write_bytes(p, b"step,loss\n")
    with pytest.raises(NCAError, match="the disk is full"):
        ckpt.atomic_write_bytes(p, b"x" * 200_000)
    assert p.read_bytes() == b"step,loss\n"
    assert sorted(f.name for f in p.parent.iterdir()) == ["metrics.csv"]
    assert _fill(tiny_tmpfs)
    with pytest.raises(NCAError, match="the disk is full"):
        ckpt.check_writable(tiny_tmpfs / "x.bin")  # found before any computing
    (tiny_tmpfs / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    with pytest.raises(NCAError, match="read-only"):
        ckpt.atomic_write_bytes(p, b"new")
    with pytest.raises(NCAError, match="read-only"):
        train(preset("tiny"), tiny_tmpfs / "new_run", **QUIET)
    assert p.read_bytes() == b"step,loss\n"


def _fill(folder: Path) -> bool:
    """Fill a tmpfs to the last block (so even a probe file's inode/block fails)."""
    try:
        with open(folder / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError as e:
        return e.errno == errno.ENOSPC


FSIZE_CHILD = r"""
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
from nca.checkpoint import atomic_write_bytes
from nca.cli import run_cli
p = Path(sys.argv[1])
run_cli(lambda: atomic_write_bytes(p, b"x" * 1_000_000))
"""


def test_the_file_size_limit_is_one_line_and_keeps_the_old_file(tmp_path):
    p = tmp_path / "preview.png"
    p.write_bytes(b"old preview")
    proc = run_script("-c", FSIZE_CHILD, p)
    assert_one_line_error(proc, "preview.png")
    assert "File too large" in proc.stderr or "file-size limit" in proc.stderr
    assert p.read_bytes() == b"old preview" and [f.name for f in tmp_path.iterdir()] == ["preview.png"]


def test_an_output_path_under_a_regular_file_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NCAError, match="notes.txt"):
        ckpt.atomic_write_bytes(tmp_path / "notes.txt" / "run" / "config.json", b"{}")
    with pytest.raises(NCAError, match="notes.txt"):
        train(preset("tiny"), tmp_path / "notes.txt" / "run", **QUIET)
    with pytest.raises(NCAError, match="in the way"):
        train(preset("tiny"), tmp_path / "notes.txt", **QUIET)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    ckpt.check_writable(tmp_path / "ok" / "out.png")  # control: a new folder is fine


def test_writability_is_checked_before_anything_is_computed(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    t = time.perf_counter()
    proc = run_script("scripts/grow.py", "distill:lizard/regenerating", "--steps", "100000",
                      "--out", tmp_path / "notes.txt" / "x.png")
    assert_one_line_error(proc, "notes.txt")
    assert time.perf_counter() - t < 60  # 100000 steps would take minutes


# --------------------------------------------------------------------------- run folders


def test_a_new_run_refuses_a_folder_holding_the_users_files(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(NCAError, match="not a training run.*holiday.jpg"):
        train(preset("tiny", train_steps=1), out, **QUIET)
    with pytest.raises(NCAError, match="is a folder, not an image"):  # a bad target: no folder made
        train(preset("tiny", train_steps=1, target=str(tmp_path)), tmp_path / "new", **QUIET)
    assert not (tmp_path / "new").exists()
    # refused: not even the claim's lock is left behind (`train.py --out docs` left
    # docs/.nca-lock, issue 25)
    assert sorted(p.name for p in out.iterdir()) == ["holiday.jpg"]
    assert (out / "holiday.jpg").read_bytes() == b"precious"
    from nca.multiseed import train_seeds

    with pytest.raises(NCAError, match="not training runs.*holiday.jpg"):
        train_seeds(preset("tiny", train_steps=1), out, 2, **QUIET)
    assert not (out / "seed_0").exists()


CLAIM_CHILD = r"""
import sys, time
from nca.checkpoint import claim_run_dir
lock = claim_run_dir(sys.argv[1])
print("claimed", flush=True)
time.sleep(60)
"""


def test_two_runs_into_the_same_new_folder_the_second_fails_at_once(tmp_path):
    out = tmp_path / "new"
    child = subprocess.Popen([sys.executable, "-c", CLAIM_CHILD, out], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "claimed"
        with pytest.raises(NCAError, match=rf"in use by another training run \(process {child.pid}\)"):
            train(preset("tiny", train_steps=1), out, **QUIET)
        assert sorted(p.name for p in out.iterdir()) == [ckpt.LOCK]  # the loser wrote nothing
    finally:
        child.kill()
        child.wait()
    # control: the claim dies with its process; the folder is free again
    with ckpt.claim_run_dir(out):
        pass


def test_a_claim_excludes_a_second_claim_in_the_same_process(tmp_path):
    with ckpt.claim_run_dir(tmp_path / "r"):
        with pytest.raises(NCAError, match="in use"):
            ckpt.claim_run_dir(tmp_path / "r")
    ckpt.claim_run_dir(tmp_path / "r").release()


# --------------------------------------------------------------------------- killed runs


def test_folders_a_kill_in_the_first_moments_leaves_are_usable(tmp_path):
    cfg = preset("tiny", train_steps=3, checkpoint_every=2, keep_checkpoints="none")
    quiet = dict(QUIET, stop_at=2)  # (stopping before the end skips the preview's compile)
    straight = train(cfg, tmp_path / "straight", **quiet)
    # 1. killed before writing anything but the lock (and a torn temp file)
    a = tmp_path / "a"
    a.mkdir()
    (a / ckpt.LOCK).write_text("123\n")
    (a / ".checkpoint.msgpack.abc123.tmp").write_bytes(b"\0" * 1000)
    with pytest.raises(NCAError, match="no config.json"):
        train(None, a, resume=True, **quiet)
    got = train(cfg, a, **quiet)  # a new run takes it over
    np.testing.assert_array_equal(got.params["w1"], straight.params["w1"])
    assert not list(a.glob(".*.tmp"))
    # 2. killed after config.json but before the first checkpoint (an older layout)
    b = tmp_path / "b"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(cfg.to_dict()))
    with pytest.raises(NCAError, match="already holds a run"):
        train(cfg, b, **quiet)
    got = train(None, b, resume=True, **quiet)  # --resume starts it from step 0
    np.testing.assert_array_equal(got.params["w1"], straight.params["w1"])


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_a_run_sigkilled_as_it_starts_leaves_a_folder_that_resume_or_a_new_run_uses(tmp_path, delay):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "scripts/train.py", "--preset", "tiny", "--train-steps", "3",
                             "--keep-checkpoints", "none", "--quiet", "--out", out], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t_end = time.time() + 120
        while not out.exists() and proc.poll() is None and time.time() < t_end:
            time.sleep(0.005)
        time.sleep(delay)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert out.exists()
    cfg = preset("tiny", train_steps=3, keep_checkpoints="none")
    if (out / "config.json").exists():  # far enough to have a run: it resumes
        state = train(None, out, resume=True, stop_at=2, **QUIET)
    else:  # only the claim and perhaps a torn temp file: a new run takes the folder
        state = train(cfg, out, stop_at=2, **QUIET)
    assert int(state.step) == 2 and not list(out.glob(".*.tmp"))


KILL_CHILD = r"""
import sys, time
from pathlib import Path
from nca.checkpoint import atomic_write_bytes
def slow(f):
    f.write(b"x" * 100_000)
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
atomic_write_bytes(Path(sys.argv[1]) / "checkpoint.msgpack", slow)
"""


def test_a_kill_during_a_checkpoint_write_leaves_a_temp_file_that_the_next_start_removes(tmp_path):
    cfg = preset("tiny", train_steps=3, checkpoint_every=1, keep_checkpoints="none")
    run = tmp_path / "run"
    train(cfg, run, stop_at=1, **QUIET)
    good = (run / "checkpoint.msgpack").read_bytes()
    child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, run], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    temps = list(run.glob(".checkpoint.msgpack.*.tmp"))
    assert len(temps) == 1 and temps[0].stat().st_size == 100_000  # the fault is real
    assert (run / "checkpoint.msgpack").read_bytes() == good  # the old checkpoint is whole
    (run / "checkpoints").mkdir(exist_ok=True)
    (run / "checkpoints" / ".step_000001.msgpack.x1y2.tmp").write_bytes(b"torn")
    assert int(train(None, run, resume=True, stop_at=2, **QUIET).step) == 2
    assert not list(run.rglob("*.tmp"))


# --------------------------------------------------------------------------- NaN


def test_a_nan_loss_never_writes_nan_checkpoints_and_the_message_names_a_finite_one(tmp_path):
    cfg = preset("tiny", train_steps=40, checkpoint_every=1, lr=1e38, lr_decay_step=1000,
                 keep_checkpoints="every:1")
    with pytest.raises(NCAError, match=r"last good checkpoint \(step (\d+)\)") as e:
        train(cfg, tmp_path / "r", **QUIET)
    assert "--" not in str(e.value)  # the library names no command-line flags
    import re

    named = int(re.search(r"\(step (\d+)\)", str(e.value)).group(1))
    from nca.api import load_run

    m = load_run(tmp_path / "r")
    assert all(np.isfinite(np.asarray(v)).all() for v in m.params.values())
    rows = list(csv.DictReader(open(tmp_path / "r" / "metrics.csv")))
    assert int(rows[-1]["step"]) == named if rows else named == 0  # the checkpoint it points at
    kept = ckpt.list_kept(tmp_path / "r")
    assert kept  # control: kept checkpoints were written until the blow-up
    for _, p in kept:
        params = ckpt.load_kept(p, m.params)
        assert all(np.isfinite(np.asarray(v)).all() for v in params.values()), p


def test_an_error_after_a_progress_bar_starts_its_own_line(tmp_path, monkeypatch, capsys):
    # (the NaN test's step config: its compiled step is reused in this process)
    proc = run_in_process("train", ["--preset", "tiny", "--lr", "1e38", "--lr-decay-step", "1000",
                                    "--keep-checkpoints", "none", "--checkpoint-every", "1", "--out", tmp_path / "r"],
                          monkeypatch, capsys)
    assert_one_line_error(proc, "last good checkpoint")
    assert "train" in proc.stderr  # a bar was drawn before the error


# --------------------------------------------------------------------------- targets


def test_an_emoji_target_that_is_several_emoji_is_refused():
    from nca.targets import emoji_count

    assert [emoji_count(t) for t in ["\U0001F98E", "\U0001F98E\U0001F98B", "\U0001F469\u200d\U0001F467",
                                     "\U0001F1EB\U0001F1F7", "\U0001F44D\U0001F3FD", "\u2764\ufe0f"]] == [1, 2, 1, 1, 1, 1]
    with pytest.raises(NCAError, match="is 2 emoji"):
        load_target("\U0001F98E\U0001F98B")
    with pytest.raises(NCAError, match="is 3 emoji"):
        load_target("\U0001F419\U0001F419\U0001F419")


@pytest.mark.skipif(not Path(DEJAVU).is_file(), reason="needs DejaVu Sans")
def test_a_font_that_draws_a_missing_glyph_box_is_refused(monkeypatch):
    monkeypatch.setenv("NCA_EMOJI_FONT", DEJAVU)  # a text font: no octopus, but a white smiling face
    with pytest.raises(NCAError, match="no glyph"):
        load_target("\U0001F419")
    t = load_target("\u263a", size=20, padding=2)  # control: a glyph it has is drawn and accepted
    assert t.shape == (24, 24, 4) and t[..., 3].max() > 0.9


def test_a_small_png_target_is_scaled_up_to_the_target_size(tmp_path):
    img = np.zeros((5, 10, 4), np.uint8)
    img[1:4, 1:9] = (0, 0, 255, 255)
    Image.fromarray(img).save(tmp_path / "small.png")
    t = load_target(str(tmp_path / "small.png"), size=40, padding=4)
    ink = np.argwhere(t[..., 3] > 0.5)
    extent = ink.max(0) - ink.min(0) + 1
    assert t.shape == (48, 48, 4) and 28 <= extent[1] <= 34 and 10 <= extent[0] <= 14  # 8x3 ink -> 32x12
    exact = load_target(str(tmp_path / "small.png"), size=10, padding=0)  # control: already at size
    np.testing.assert_allclose(exact[2:7, :, 2], img[:, :, 2] / 255.0 * (img[:, :, 3] / 255.0), atol=1e-6)


def test_image_errors_name_the_file_not_a_bytesio(tmp_path):
    (tmp_path / "t.png").write_bytes(b"GIF89a but not really")
    with pytest.raises(NCAError) as e:
        load_target(str(tmp_path / "t.png"))
    assert "BytesIO" not in str(e.value) and "t.png" in str(e.value)


# --------------------------------------------------------------------------- sizes, steps, resume


def test_size_zero_and_negative_step_counts_are_errors_in_the_api():
    import jax

    import nca

    model = nca.load_model("distill:lizard/regenerating")
    key = jax.random.key(0)
    for kw, what in ((dict(steps=-1), "steps"), (dict(steps=2, size=0), "size"), (dict(steps=2, every=0), "every"),
                     (dict(steps=2, batch=0), "batch"), (dict(steps=2.5), "steps")):
        with pytest.raises(NCAError, match=what):
            nca.grow(model, key=key, record=(), **kw)
    x, _ = nca.grow(model, 0, key, size=8, record=())  # control: zero steps is the seed itself
    np.testing.assert_array_equal(np.asarray(x), np.asarray(nca.seed_state(8, 8)))
    with pytest.raises(NCAError, match="stop_at"):
        train(preset("tiny"), Path("/nonexistent/never"), stop_at=-1, **QUIET)


def test_resume_refuses_config_changes_and_honours_train_steps(tmp_path):
    cfg = preset("tiny", train_steps=2, checkpoint_every=1, keep_checkpoints="none")
    run = tmp_path / "run"
    train(cfg, run, stop_at=1, **QUIET)
    with pytest.raises(NCAError, match="model.hidden, seed"):
        train(preset("tiny", train_steps=2, hidden=8, seed=3, checkpoint_every=1, keep_checkpoints="none"),
              run, resume=True, **QUIET)
    state = train(preset("tiny", train_steps=4, checkpoint_every=1, keep_checkpoints="none"), run, resume=True,
                  stop_at=3, **QUIET)  # control: a longer run continues (stopping early skips the preview)
    assert int(state.step) == 3 and load_config(run / "config.json").train_steps == 4
    good = (run / "metrics.csv").read_bytes()
    (run / "metrics.csv").write_text("garbage\nnot,a,csv\n")
    with pytest.raises(NCAError, match="cannot read .*metrics.csv .*move it aside"):
        train(None, run, resume=True, **QUIET)
    assert (run / "metrics.csv").read_text() == "garbage\nnot,a,csv\n"  # left for the user to look at
    (run / "metrics.csv").write_bytes(good)
    with pytest.raises(NCAError, match="already at step 3"):
        train(preset("tiny", train_steps=2, checkpoint_every=1, keep_checkpoints="none"), run, resume=True, **QUIET)


@pytest.mark.parametrize("args, pattern", [
    (["--resume", "{run}", "--preset", "quick"], "--preset"),
    (["--resume", "{run}", "--lr", "0.1"], "--lr"),
    (["--resume", "{run}", "--out", "{tmp}/other"], "--out"),
    (["--preset", "tiny", "--hidden", "0", "--out", "{tmp}/x"], "--hidden"),
    (["--preset", "tiny", "--fire-rate", "1.5", "--out", "{tmp}/x"], "--fire-rate"),
    (["--preset", "tiny", "--lr-decay-factor", "nan", "--out", "{tmp}/x"], "--lr-decay-factor"),
    (["--preset", "tiny", "--seeds", "0,0", "--out", "{tmp}/x"], "repeat"),
    (["--preset", "tiny", "--out", "{tmp}/photos"], "not a training run"),
])
def test_train_script_bad_input_is_one_line_naming_the_flag(tmp_path, args, pattern, monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(preset("tiny").to_dict()))
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"meow")
    args = [a.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for a in args]
    assert_one_line_error(run_in_process("train", [*args, "--quiet"], monkeypatch, capsys), pattern)
    assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"meow"
    assert not (tmp_path / "x").exists()


def test_a_misspelt_hook_point_is_an_error_not_a_silent_no_op():
    import jax

    import nca

    model = nca.load_model("distill:lizard/regenerating")
    with pytest.raises(NCAError, match=r"unknown hook point\(s\) \['hiden'\]"):
        nca.grow(model, 2, jax.random.key(0), size=8, record=(), hooks={"hiden": lambda h, t: h * 0})
    zeroed, _ = nca.grow(model, 2, jax.random.key(0), size=8, record=(), hooks={"update": lambda u, t: u * 0})
    np.testing.assert_array_equal(np.asarray(zeroed), np.asarray(nca.seed_state(8, 8)))  # control: it acts


def test_resuming_a_folder_of_seed_runs_says_to_resume_one_seed(tmp_path):
    (tmp_path / "m" / "seed_3").mkdir(parents=True)
    (tmp_path / "m" / "seed_3" / "config.json").write_text(json.dumps(preset("tiny").to_dict()))
    with pytest.raises(NCAError, match="one run per seed .*seed_3"):
        train(None, tmp_path / "m", resume=True, **QUIET)


def test_a_run_or_a_rollout_too_large_for_memory_is_refused_before_allocating(tmp_path):
    from nca.errors import memory_limit_bytes, out_of_memory_as_error
    from nca.train import training_bytes

    limit = memory_limit_bytes()
    assert limit and limit > 2**28
    huge = preset("tiny", target_size=8000)  # a pool of 16 8008x8008x16 states: ~66 GB
    assert training_bytes(huge) > 2 * 16 * 8008**2 * 16 * 4 - 1
    if training_bytes(huge) > limit:
        with pytest.raises(NCAError, match=r"needs about .* GiB, more than .*; lower pool_size"):
            train(huge, tmp_path / "big", **QUIET)
        assert not (tmp_path / "big").exists()  # refused with nothing written
    assert training_bytes(preset("tiny")) < 2**23  # control: the tiny run is ~1.7 MiB
    import jax

    import nca

    model = nca.load_model("distill:lizard/regenerating")
    with pytest.raises(NCAError, match="needs about"):
        nca.grow(model, 10**7, jax.random.key(0), size=64, record=("state", "hidden"))
    from nca.animate import Animation, export

    with pytest.raises(NCAError, match="animating 1 source.* needs about"):
        export(Animation(models=("distill:lizard/regenerating",), size=60000, steps=2), tmp_path / "a.gif")
    with pytest.raises(NCAError, match=r"seeds must be in \[0, 2\*\*32\)"):
        export(Animation(models=("distill:lizard/regenerating",), seeds=(0, 2**32), steps=2), tmp_path / "a.gif")
    assert not list(tmp_path.iterdir()) or not (tmp_path / "a.gif").exists()
    with pytest.raises(NCAError, match="out of memory growing a test"):
        with out_of_memory_as_error("growing a test"):
            raise MemoryError("planted")
    with pytest.raises(ValueError, match="planted"):  # control: other errors pass through
        with out_of_memory_as_error("growing a test"):
            raise ValueError("planted")


def test_a_released_claim_leaves_no_lock_and_a_removed_lock_is_not_shared(tmp_path):
    """release() unlinks .nca-lock; a claimant that opened the old file just before sees the
    change (the file at the path is not the one it locked) and locks the new one, so two
    processes never both hold a folder."""
    import fcntl
    import os

    out = tmp_path / "r"
    ckpt.claim_run_dir(out).release()
    assert list(out.iterdir()) == []
    a = ckpt.claim_run_dir(out)
    stale = os.open(out / ckpt.LOCK, os.O_RDWR)  # opened before the holder releases
    a.release()
    fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # it gets the flock of a file no longer there ...
    try:
        with ckpt.claim_run_dir(out):  # ... which does not stop a real claim
            with pytest.raises(NCAError, match="in use"):
                ckpt.claim_run_dir(out)
    finally:
        os.close(stale)

"""Many seeds at once: vmap-trained seeds equal the same seeds trained one by one; each seed
directory is a normal, loadable run; log-spaced params are kept along training."""

import csv
from dataclasses import replace

import jax.numpy as jnp
import numpy as np
import pytest

import nca
from nca import checkpoint as ckpt
from nca.config import preset
from nca.errors import NCAError
from nca.multiseed import train_seeds
from nca.targets import load_target
from nca.train import compiled_train_step, init_train_state, train

QUIET = dict(progress=False, log=lambda *_: None)


def test_vmapped_seeds_equal_seeds_trained_alone(tmp_path):
    # 10 steps of the regenerating tiny preset: pool sampling, damage and per-seed rollout
    # lengths (a lax.cond under vmap) are all exercised
    cfg = preset("tiny", train_steps=10, seed=5, checkpoint_every=5)
    stacked = train_seeds(cfg, tmp_path / "multi", 2, **QUIET)
    step = compiled_train_step(cfg)  # train_step never reads cfg.seed: one compilation serves both
    target = jnp.asarray(load_target(cfg.target, cfg.target_size, cfg.target_padding))
    runs = []
    for i, s in enumerate((5, 6)):
        alone, losses = init_train_state(replace(cfg, seed=s)), []
        for _ in range(10):
            alone, loss = step(alone, target)
            losses.append(float(loss))
        runs.append(losses)
        for name in alone.params:
            np.testing.assert_allclose(np.asarray(stacked.params[name][i]), np.asarray(alone.params[name]),
                                       rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(np.asarray(stacked.pool[i]), np.asarray(alone.pool), rtol=1e-4, atol=1e-5)
        m = list(csv.DictReader(open(tmp_path / "multi" / f"seed_{s}" / "metrics.csv")))
        np.testing.assert_allclose([float(r["loss"]) for r in m], losses, rtol=1e-4)
        times = [float(r["elapsed_s"]) for r in m]  # the driver's clock, shared by the seeds
        saved = ckpt.load_checkpoint(tmp_path / "multi" / f"seed_{s}" / ckpt.CHECKPOINT,
                                     {"train": alone, "elapsed": np.float64(0)})["elapsed"]
        assert times == sorted(times) and times[-1] > 0 and float(saved) == pytest.approx(times[-1], abs=0.006)
        loaded = nca.load_model(tmp_path / "multi" / f"seed_{s}")
        assert loaded.config.seed == s
        np.testing.assert_array_equal(np.asarray(loaded.params["w1"]), np.asarray(stacked.params["w1"][i]))
        assert [k for k, _ in ckpt.list_kept(tmp_path / "multi" / f"seed_{s}")] == [0, 1, 2, 3, 6, 10]
    assert runs[0] != runs[1]  # the seeds really differ


def test_log_spaced_checkpoints_are_kept_and_loadable(tmp_path):
    cfg = preset("tiny", train_steps=12)
    state = train(cfg, tmp_path / "r", **QUIET)
    kept = ckpt.list_kept(tmp_path / "r")
    assert [s for s, _ in kept] == [0, 1, 2, 3, 6, 10, 12]
    last = ckpt.load_kept(kept[-1][1], state.params)
    np.testing.assert_array_equal(np.asarray(last["w1"]), np.asarray(state.params["w1"]))
    first = ckpt.load_kept(kept[0][1], state.params)
    assert not np.any(np.asarray(first["w2"]))  # step 0: the do-nothing init
    assert ckpt.kept_steps("none", 12) == []


def test_multiseed_refuses_existing_runs_and_bad_k(tmp_path):
    cfg = preset("tiny", train_steps=1)
    (tmp_path / "m" / "seed_1").mkdir(parents=True)
    (tmp_path / "m" / "seed_1" / "config.json").write_text("{}")
    with pytest.raises(NCAError, match="already hold"):
        train_seeds(cfg, tmp_path / "m", 2, **QUIET)
    assert (tmp_path / "m" / "seed_1" / "config.json").read_text() == "{}"
    assert not (tmp_path / "m" / "seed_0").exists()  # refused before writing anything
    with pytest.raises(NCAError, match="number of seeds"):
        train_seeds(cfg, tmp_path / "x", 0, **QUIET)
    with pytest.raises(NCAError, match="keep_checkpoints"):
        preset("tiny", keep_checkpoints="linear")


def test_train_script_seeds_option_errors(monkeypatch, capsys, tmp_path):
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
    monkeypatch.chdir(tmp_path)
    for args, msg in ((["--seeds", "0,1,0", "--out", "x"], "--seeds repeat"),
                      (["--seeds", "0,-1", "--out", "x"], "--seeds"),
                      (["--seeds", "1", "--seed", "2", "--out", "x"], "not both"),
                      (["--resume", "x", "--seeds", "2"], "only --train-steps may be given with it (got --seeds)")):
        monkeypatch.setattr(sys, "argv", ["train.py", *args])
        with pytest.raises(SystemExit) as e:  # in this process: each is refused before JAX starts work
            runpy.run_path(str(script), run_name="__main__")
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error: ") and msg in err, err
        assert "Traceback" not in err and not (tmp_path / "x").exists()


SPLIT_CHILD = r"""
import csv, sys
from pathlib import Path
from nca.parallel import use_cpu_cores
assert use_cpu_cores(2), "a fresh process takes the setting"
import jax, numpy as np
from nca.config import preset
from nca.multiseed import train_seeds
assert len(jax.devices()) == 2, jax.devices()
assert not use_cpu_cores(3), "JAX is running: nothing changes"
out = Path(sys.argv[1])
cfg = preset("tiny", train_steps=4, keep_checkpoints="none")
quiet = dict(progress=False, log=lambda *_: None, stop_at=3)  # stop_at: no previews to compile
split = train_seeds(cfg, out / "split", 3, devices=jax.devices(), **quiet)  # 2 + (1 and a copy)
one = train_seeds(cfg, out / "one", 3, devices=jax.devices()[:1], **quiet)
for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(split.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
for s in range(3):
    la, lb = ([float(r["loss"]) for r in csv.DictReader(open(out / d / f"seed_{s}" / "metrics.csv"))] for d in ("one", "split"))
    np.testing.assert_allclose(la, lb, rtol=1e-5)
    assert len(la) == 3
print("OK")
"""


def test_seeds_split_over_devices_equal_one_program(tmp_path):
    # use_cpu_cores(2) in a fresh process: 3 seeds split over two CPU devices (the third
    # seed's device also trains a copy of it, dropped); results equal the same seeds
    # vmapped on one device.
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f)
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(root) + os.pathsep + env.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", SPLIT_CHILD, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]

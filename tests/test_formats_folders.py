"""Params-only model folders (nca.save_model), kept checkpoints (run@step=N), demo JSON by path."""

import json
import shutil

import jax
import numpy as np
import pytest

import nca
from nca import checkpoint as ckpt
from nca.model import ModelConfig, init_params


def test_save_model_round_trips_config_params_and_provenance(tmp_path):
    cfg = ModelConfig(channels=8, hidden=24, perception="laplacian", padding="circular",
                      life="none", seed_pattern="zeros")
    params = init_params(jax.random.key(1), cfg)
    params["b2"] = params["b2"] + 0.01  # not the do-nothing init: the grown states must differ from zeros
    m = nca.LoadedModel("mine", cfg, params, "lizard", 32, provenance={"format": "test", "source": "x"})
    nca.save_model(m, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["model.json", "params.msgpack"]
    back = nca.load_model(tmp_path / "m")
    assert back.model_config == cfg and back.target == "lizard" and back.grid_size == 32
    assert back.provenance == {"format": "test", "source": "x"}
    assert all(np.array_equal(np.asarray(back.params[k]), np.asarray(params[k])) for k in params)
    a, _ = nca.grow(back, 5, jax.random.key(0))
    b, _ = nca.grow(m, 5, jax.random.key(0))
    assert np.array_equal(np.asarray(a), np.asarray(b)) and np.abs(np.asarray(a)).sum() > 0


def test_save_model_refuses_a_folder_with_other_files(tmp_path):
    m = nca.load_model("distill:lizard/persistent")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "lizard.pth").write_bytes(b"theirs")
    with pytest.raises(nca.NCAError, match="already holds other files"):
        nca.save_model(m, tmp_path / "src")
    assert sorted(p.name for p in (tmp_path / "src").iterdir()) == ["lizard.pth"]


def test_model_folder_with_unknown_fields_or_bad_values_is_one_clear_error(tmp_path):
    m = nca.load_model("distill:lizard/persistent")
    nca.save_model(m, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["model"]["perception"] = "fourier"
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(nca.NCAError, match="perception must be one of"):
        nca.load_model(tmp_path / "m")
    meta["model"]["perception"] = "sobel"
    meta["model"]["wings"] = 2
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(nca.NCAError, match=r"unknown model fields \['wings'\]"):
        nca.load_model(tmp_path / "m")


def _run_with_kept(tmp_path):
    """A run directory as training leaves it for ``keep_checkpoints``: config.json and
    checkpoints/step_N.msgpack (params at steps 0 and 3; distinct arrays)."""
    from nca.config import preset, save_config

    cfg = preset("quick")
    run = tmp_path / "run"
    run.mkdir()
    save_config(cfg, run / ckpt.CONFIG)
    kept = {s: init_params(jax.random.key(s), cfg.model) for s in (0, 3)}
    for s, p in kept.items():
        ckpt.save_kept(run, s, {k: np.asarray(v) for k, v in p.items()})
    return run, cfg, kept


def test_run_at_step_loads_a_kept_checkpoint(tmp_path):
    run, cfg, kept = _run_with_kept(tmp_path)
    for s in (0, 3):
        m = nca.load_model(f"{run}@step={s}")
        assert m.provenance == {"format": "kept-checkpoint", "step": s} and m.model_config == cfg.model
        assert all(np.array_equal(np.asarray(m.params[k]), np.asarray(kept[s][k])) for k in kept[s])
    with pytest.raises(nca.NCAError, match=r"kept no checkpoint at step 2; kept steps: 0, 3"):
        nca.load_model(f"{run}@step=2")
    with pytest.raises(nca.NCAError, match="is not a run directory"):
        nca.load_model(f"{tmp_path}@step=3")


def test_demo_json_by_path_equals_the_bundled_model(tmp_path):
    from nca.published import _files

    src = _files()["distill:lizard/persistent"]
    shutil.copy(src, tmp_path / "exported.json")
    a = nca.load_model(tmp_path / "exported.json", target="lizard-2020")
    b = nca.load_model("distill:lizard/persistent")
    assert a.provenance["format"] == "distill-demo-json" and a.target == "lizard-2020"
    assert all(np.array_equal(np.asarray(a.params[k]), np.asarray(b.params[k])) for k in b.params)
    (tmp_path / "bad.json").write_text('{"not": "layers"}')
    with pytest.raises(nca.NCAError, match="not a readable Distill demo export"):
        nca.load_model(tmp_path / "bad.json")

"""Model specs with options (nca.formats.spec): ``model.pth@layout=...,target=...``.

The options ride on the spec, so every script (which only passes its model argument to
``nca.load_model``) gets them; one script, grow.py, is run end to end here with a planted
orientation only the checked import finds.
"""

import runpy
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import nca
from nca.errors import NCAError
from nca.formats import torch_layouts as tl
from nca.formats.spec import OPTIONS, format_options, split_spec

ROOT = Path(__file__).resolve().parents[1]
MIRRORED = tl.Variant(False, -1, 1)  # not the torch-linear declared default (swap(+1,+1))


def test_a_spec_splits_into_the_model_and_strictly_parsed_options():
    base, opts = split_spec("runs/a b/lizard.pth@layout=torch-linear,target=lizard,transposed=TRUE,"
                            "variant=swap(+1,-1),sobel_scale=1/8,fire_rate=0.25")
    assert base == "runs/a b/lizard.pth"
    assert opts == {"layout": "torch-linear", "target": "lizard", "transposed": True, "variant": "swap(+1,-1)",
                    "sobel_scale": 0.125, "fire_rate": 0.25}
    assert split_spec(f"x.pth@{format_options(opts)}") == ("x.pth", opts)


@pytest.mark.parametrize("spec", ["distill:lizard/regenerating", "runs/x@step=1000", "me@home.pth", "a@b"])
def test_specs_without_options_come_back_unchanged(spec):
    assert split_spec(spec) == (spec, {})


def test_an_existing_path_holding_an_at_sign_is_never_split(tmp_path):
    p = tmp_path / "m@layout=torch-linear.npz"
    p.write_bytes(b"")
    assert split_spec(str(p)) == (str(p), {})


@pytest.mark.parametrize("spec, pattern", [
    ("m.pth@colour=red", "unknown model spec option 'colour'.*known: alpha, dropout"),
    ("m.pth@transposed=yes", "transposed must be true or false"),
    ("m.pth@fire_rate=half", "fire_rate must be a number"),
    ("m.pth@fire_rate=nan", "finite"),
    ("m.pth@sobel_scale=1/0", "sobel_scale must be a number"),
    ("m.pth@layout=torch-linear,layout=torch-conv", "given twice"),
    ("m.pth@layout=torch-linear,transposed", "not KEY=VALUE"),
    ("m.pth@variant=swap(+1,+1", "unbalanced parentheses"),
    ("@layout=torch-linear", "no model before"),
    ("runs/x@step=10,layout=torch-linear", "unknown model spec option 'step'.*run@step=N alone"),
    ("m.pth@layout=", "layout needs a value"),
])
def test_a_bad_spec_is_one_clear_error(spec, pattern):
    with pytest.raises(NCAError, match=pattern):
        split_spec(spec)


def test_every_option_is_a_load_model_keyword():
    from nca.api import CAX_OPTIONS, TEXTURE_OPTIONS, TORCH_OPTIONS

    takes = set(TORCH_OPTIONS) | set(CAX_OPTIONS) | set(TEXTURE_OPTIONS) | {"layout", "target", "alpha"}
    assert set(OPTIONS) <= takes


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The published persistent lizard saved as a torch-linear state_dict whose bands are
    NOT in the layout's declared orientation (planted: keep(-1,+1))."""
    m = nca.load_model("distill:lizard/persistent")
    p = {k: np.asarray(v) for k, v in m.params.items()}
    path = tmp_path_factory.mktemp("sd") / "lizard.npz"
    np.savez(path, **tl.from_params(p, tl.LAYOUTS["torch-linear"], MIRRORED))
    return m, path


def test_spec_options_load_as_the_same_keywords(planted):
    m, path = planted
    by_spec = nca.load_model(f"{path}@layout=torch-linear,variant={MIRRORED}")
    by_kw = nca.load_model(path, layout="torch-linear", variant=str(MIRRORED))
    for k in m.params:
        assert np.allclose(by_spec.params[k], by_kw.params[k]) and np.allclose(by_spec.params[k], m.params[k])
    assert by_spec.name == f"{path}@layout=torch-linear,variant={MIRRORED}"
    assert by_spec.provenance["orientation_by"] == "given"
    assert by_spec.provenance["spec_options"] == f"layout=torch-linear,variant={MIRRORED}"
    declared = nca.load_model(path)  # the negative: unchecked, the declared default is wrong here
    assert declared.provenance["orientation_by"] == "declared"
    assert not np.allclose(declared.params["w1"], m.params["w1"])


@pytest.mark.parametrize("spec, kwargs, pattern", [
    ("{sd}@layout=torch-linear", {"layout": "torch-linear"}, "given both in the model spec"),
    ("{sd}@dropout=eval", {}, r"\['dropout'\] do not apply.*PyTorch state_dict"),
    ("{sd}@model=dots", {}, r"\['model'\] do not apply"),
    ("{sd}@variant=sideways", {}, "unknown variant 'sideways'"),
    ("distill:lizard/persistent@transposed=true", {}, "apply to PyTorch state_dicts"),
])
def test_options_that_do_not_apply_are_refused(planted, spec, kwargs, pattern):
    with pytest.raises(NCAError, match=pattern):
        nca.load_model(spec.format(sd=planted[1]), **kwargs)


def _run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_script_reads_the_spec_and_checks_the_orientation_against_the_target(planted, tmp_path, monkeypatch, capsys):
    m, path = planted
    out = tmp_path / "grown.npy"
    p = _run("scripts/grow.py", f"{path}@layout=torch-linear,target=lizard-2020", "--steps", "80", "--seed", "3",
             "--out", out)
    assert p.returncode == 0, p.stderr
    truth, _ = nca.grow(m, 80, jax.random.key(3), record=())
    assert np.abs(np.load(out) - np.asarray(truth)).max() < 1e-4  # the published lizard, not a mirror
    # the bad option in this process (one interpreter start per test is enough; grow.py's exit
    # code and one line from a real process are tests/test_scripts.py's)
    monkeypatch.setattr(sys, "argv", ["grow.py", f"{path}@layout=torch-linear,colour=red", "--out", str(tmp_path / "x.npy")])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "scripts" / "grow.py"), run_name="__main__")
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("error: unknown model spec option 'colour'") and "known: " in err

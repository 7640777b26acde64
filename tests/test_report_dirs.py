"""Report folders (issue 25): a report replaces only what it wrote itself.

``nca.checkpoint.claim_report_dir`` (through ``nca.cli.claim_report_dir``, the one helper
every report script uses): the same command with the same settings replaces its report;
another model's or other settings' report, or files no report command wrote, are refused
with one line and left untouched; the lock a claim takes is removed again.
"""

import runpy
import sys
from pathlib import Path

import pytest

from nca import checkpoint as ckpt
from nca import cli
from nca.errors import NCAError

ROOT = Path(__file__).resolve().parents[1]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- the helper

def test_a_new_folder_is_claimed_marked_and_left_without_a_lock(tmp_path):
    out = tmp_path / "new" / "r"
    with cli.claim_report_dir(out, "dissect", {"model": "distill:lizard/persistent", "seed": 0}):
        assert ckpt.LOCK in names(out)  # held while the report is written
        (out / "report.json").write_text("{}")
    assert names(out) == [ckpt.REPORT_MARK, "report.json"]


def test_the_same_command_and_settings_replace_their_report(tmp_path):
    s = {"model": "distill:lizard/persistent", "seed": 0, "out": tmp_path / "ignored", "quiet": True}
    with cli.claim_report_dir(tmp_path / "r", "pca_report", s):
        (tmp_path / "r" / "report.json").write_text("old")
    with cli.claim_report_dir(tmp_path / "r", "pca_report", dict(s, quiet=False, out="elsewhere")):
        (tmp_path / "r" / "report.json").write_text("new")  # --out and --quiet are not settings
    assert (tmp_path / "r" / "report.json").read_text() == "new"


@pytest.mark.parametrize("command, settings, pattern", [
    ("dissect", {"model": "distill:lizard/regenerating", "seed": 0},
     r"other settings \(model: 'distill:lizard/persistent' there, 'distill:lizard/regenerating' here\)"),
    ("dissect", {"model": "distill:lizard/persistent", "seed": 1}, r"other settings \(seed: 0 there, 1 here\)"),
    ("knockout_report", {"model": "distill:lizard/persistent", "seed": 0}, "another command .'dissect'."),
])
def test_another_models_settings_or_commands_report_is_refused_untouched(tmp_path, command, settings, pattern):
    out = tmp_path / "reports" / "lizard"
    with cli.claim_report_dir(out, "dissect", {"model": "distill:lizard/persistent", "seed": 0}):
        (out / "report.json").write_text("the persistent lizard's report")
    before = names(out)
    with pytest.raises(NCAError, match=pattern):
        cli.claim_report_dir(out, command, settings)
    assert names(out) == before  # no lock, no new mark
    assert (out / "report.json").read_text() == "the persistent lizard's report"


def test_a_folder_of_foreign_files_is_refused_and_nothing_is_left_in_it(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(NCAError, match=r"holds files this command did not write \(holiday.jpg\)"):
        cli.claim_report_dir(out, "selfish", None)
    assert names(out) == ["holiday.jpg"]
    # control: the same folder emptied is fine, and a bare mark (a run killed before writing
    # anything) counts as empty whatever it says
    (out / "holiday.jpg").unlink()
    (out / ckpt.REPORT_MARK).write_text('{"command": "dissect", "settings": {}}')
    cli.claim_report_dir(out, "selfish", None).release()


def test_a_command_checking_its_own_settings_reuses_its_folder(tmp_path):
    with cli.claim_report_dir(tmp_path / "s", "selfish", None):
        (tmp_path / "s" / "runs").mkdir()
    cli.claim_report_dir(tmp_path / "s", "selfish", None).release()  # resumable: settings=None
    with pytest.raises(NCAError, match="another command"):
        cli.claim_report_dir(tmp_path / "s", "dissect", {"model": "m"})


def test_a_file_where_the_folder_should_be_is_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NCAError, match="is a file, not a folder"):
        cli.claim_report_dir(tmp_path / "f", "dissect", {})


# --------------------------------------------------------------------------- every script
# Each report script refuses, before computing, a folder of foreign files and a folder
# holding a report of the same command for another model (the claim is made with the
# script's own arguments, so a changed model is the only difference).

def run_main(script: str, args: list, capsys) -> tuple[int, str]:
    old = sys.argv
    sys.argv = [script, *map(str, args)]
    try:
        runpy.run_path(str(ROOT / "scripts" / f"{script}.py"), run_name="__main__")
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """A run folder dynamics_report.py's preflight accepts (config and two kept checkpoints)."""
    from nca.config import preset, save_config

    run = tmp_path_factory.mktemp("run")
    save_config(preset("tiny"), run / ckpt.CONFIG)
    (run / ckpt.KEPT_DIR).mkdir()
    for s in (0, 1):
        ckpt.kept_path(run, s).write_bytes(b"")
    return run


SCRIPTS = {  # script -> (arguments but --out, with "{run}" for the fake run)
    "dissect": ["distill:lizard/persistent"],
    "pca_report": ["distill:lizard/persistent"],
    "knockout_report": ["distill:lizard/persistent"],
    "damage_report": ["distill:lizard/persistent"],
    "development_report": ["distill:lizard/persistent"],
    "dynamics_report": ["{run}"],
    "degradation_report": ["distill:lizard/persistent"],
    "features_report": ["distill:lizard/persistent"],
    "selfish": ["--experiments", "variants", "--preset", "smoke"],
}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_report_script_refuses_foreign_files(script, tmp_path, fake_run, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    args = [str(x).replace("{run}", str(fake_run)) for x in SCRIPTS[script]]
    code, err = run_main(script, [*args, "--out", out, "--quiet"], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "holds files this command did not write (thesis.tex)" in err
    assert names(out) == ["thesis.tex"] and (out / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("script", sorted(set(SCRIPTS) - {"selfish"}))
def test_every_report_script_refuses_another_models_report(script, tmp_path, fake_run, capsys):
    out = tmp_path / "r"
    out.mkdir()
    # what a run of this script on another model left (selfish.py checks its own settings)
    (out / ckpt.REPORT_MARK).write_text(f'{{"command": "{script}", "settings": {{"model": "distill:lizard/growing"}}}}')
    (out / "report.json").write_text("another model's report")
    args = [str(x).replace("{run}", str(fake_run)) for x in SCRIPTS[script]]
    code, err = run_main(script, [*args, "--out", out, "--quiet"], capsys)
    assert code == 2 and f"holds a {script} report of other settings" in err, err
    assert names(out) == [ckpt.REPORT_MARK, "report.json"]
    assert (out / "report.json").read_text() == "another model's report"

"""Issue 25's house rules, checked on the code itself: every script is a thin shell
(argparse -> settings -> library call -> write) of at most 60 code lines, and every report
follows one contract (Settings -> run(settings) -> a typed Result -> write(result, out) ->
summary_lines(result))."""

import dataclasses
import inspect
import os
import typing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "scripts").glob("*.py") if not p.name.startswith("_"))
MAX_CODE_LINES = 60
REPORTS = ["damage_report", "development_report", "dynamics_report", "knockout_report", "pca_report",
           "selfish_report", "degradation_report", "atlas_report", "features_report"]


def _report_module(name: str):
    # Imported by name in the source (not built from a string), so that a regrouping of
    # analysis/ into subpackages rewrites these imports with the rest.
    from analysis.reports import degradation as degradation_report
    from analysis.reports import atlas as atlas_report
    from analysis.reports import damage as damage_report
    from analysis.reports import features as features_report
    from analysis.reports import development as development_report
    from analysis.reports import dynamics as dynamics_report
    from analysis.reports import knockouts as knockout_report
    from analysis.reports import pca as pca_report
    from analysis.reports import selfish as selfish_report

    return {"damage_report": damage_report, "development_report": development_report,
            "dynamics_report": dynamics_report, "knockout_report": knockout_report, "pca_report": pca_report,
            "selfish_report": selfish_report, "degradation_report": degradation_report,
            "atlas_report": atlas_report, "features_report": features_report}[name]


def code_lines(text: str) -> int:
    """Lines that are neither blank nor comments (docstrings count: they are code a reader reads)."""
    return sum(1 for line in text.splitlines() if line.strip() and not line.strip().startswith("#"))


def test_the_line_count_counts_code_and_docstrings_but_not_blanks_or_comments():
    text = '"""Doc\nstring."""\n\nimport sys  # a comment\n    # only a comment\n\nx = 1\n'
    assert code_lines(text) == 4  # planted: 2 docstring lines, 2 statements
    assert code_lines("\n# one\n   \n") == 0  # planted negative: nothing to count


@pytest.mark.parametrize("script", [p.name for p in SCRIPTS])
def test_every_script_is_a_shell_of_at_most_60_code_lines(script):
    n = code_lines((ROOT / "scripts" / script).read_text())
    assert n <= MAX_CODE_LINES, f"scripts/{script} has {n} code lines; move its pipeline into the library"


def test_a_long_script_would_be_caught():
    long = '"""A script."""\n' + "".join(f"x{i} = {i}\n" for i in range(MAX_CODE_LINES))
    assert code_lines(long) == MAX_CODE_LINES + 1 > MAX_CODE_LINES


@pytest.mark.parametrize("name", REPORTS)
def test_every_report_follows_settings_run_result_write_summary_lines(name):
    m = _report_module(name)
    for fn in ("run", "run_with_progress", "write", "summary_lines"):
        assert callable(getattr(m, fn, None)), f"analysis.{name} has no {fn}"
    hints = typing.get_type_hints(m.run)
    settings, result = hints["settings"], hints["return"]
    assert dataclasses.is_dataclass(settings) and settings.__dataclass_params__.frozen, f"{name}: frozen Settings"
    assert dataclasses.is_dataclass(result), f"analysis.{name}.run returns {result}, not a typed result"
    assert {"report", "figures"} <= {f.name for f in dataclasses.fields(result)}
    assert typing.get_type_hints(m.run_with_progress)["return"] is result
    assert typing.get_type_hints(m.write)["result"] is result
    assert typing.get_type_hints(m.summary_lines)["result"] is result
    assert list(inspect.signature(m.write).parameters)[:2] == ["result", "out"]


def test_bad_settings_in_the_library_are_one_ncaerror_line():
    """Issue 25: user-input errors in analysis/ are NCAError (one line from any script),
    and the good values still pass (the planted negative)."""
    import numpy as np

    from analysis.representation import axes

    from analysis.causal import knockouts

    from analysis.representation import null_battery

    from analysis.development import positional
    from nca.errors import NCAError

    with pytest.raises(NCAError, match="cut must be one of"):
        knockouts.Assay(cut="diagonal")
    assert knockouts.Assay(cut="left").cut == "left"
    with pytest.raises(NCAError, match="no alive cells"):
        axes.body_frame(np.zeros((8, 8)))
    alpha = np.zeros((8, 8))
    alpha[2:6, 3:5] = 1
    assert axes.body_frame(alpha) is not None
    with pytest.raises(NCAError, match="unknown field family"):
        null_battery.draw_family(np.ones((6, 6), bool), "plaid", {}, 1, np.random.default_rng(0))
    x = np.random.default_rng(0).standard_normal((20, 3))
    with pytest.raises(NCAError, match="unknown probe"):
        positional._fit_predict("forest", x, x[:, :1], x, positional.ProbeSettings())
    assert positional._fit_predict("ridge", x, x[:, :1], x, positional.ProbeSettings()).shape[0] == 20


def test_the_development_headline_skips_a_dose_whose_false_positive_rate_is_undefined():
    """With 2 random directions the leave-one-out band holds one direction: its rate has no
    value (mean None). The table said nothing and crashed (TypeError); it now averages the
    defined rates only, and says "-" when none is."""
    from analysis.reports.development import headline

    def rep(rates):
        return {"steering": {"settings": {"doses": [0.0]}, "direction_names": ["random1", "random2"],
                             "random_band": {m: {"lo": [0.0], "hi": [0.0]} for m in ("length", "shift_along")},
                             "random_false_positives": {"length": rates}}}

    row = lambda rates: [r for r in headline(rep(rates))[1] if r[0].startswith("random directions called")][0][1]  # noqa: E731
    assert row([None, {"mean": None, "n": 0}]) == "-"  # planted: nothing defined
    assert row([{"mean": 0.5, "n": 2}, {"mean": None, "n": 0}, {"mean": 0.25, "n": 2}]) == "0.38 (n = 2 per dose)"


def test_layers_point_down_nca_never_imports_analysis_or_scripts():
    """scripts/ -> analysis/ -> nca/: no module of nca imports analysis or scripts, at the
    top or inside a function (a command that needs both gets analysis from its script)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "nca"
    bad = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            bad += [f"{path.relative_to(root.parent)}:{node.lineno} {n}" for n in names
                    if n.split(".")[0] in ("analysis", "scripts")]
    assert not bad, bad


def test_a_test_runs_cache_left_by_a_killed_run_is_removed_and_a_live_runs_is_kept(tmp_path):
    """tests/conftest.py's compilation cache is removed at exit; a run killed with SIGKILL
    leaves it, and the next run removes it (its pid is gone), but never a live run's."""
    import subprocess
    import sys

    from conftest import CACHE_PREFIX, sweep_stale_caches

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = tmp_path / f"{CACHE_PREFIX}{os.getpid()}-abc"
    stale = tmp_path / f"{CACHE_PREFIX}{dead_pid}-xyz"
    other = tmp_path / f"{CACHE_PREFIX}xyz"  # no pid: not ours to judge
    for d in (live, stale, other):
        (d / "sub").mkdir(parents=True)
    assert sweep_stale_caches(str(tmp_path)) == [stale.name]
    assert live.is_dir() and other.is_dir() and not stale.exists()

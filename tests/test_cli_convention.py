"""Every script follows the one command-line convention of nca/cli.py (README, "Command line").

Each script is run as ``__main__`` with its parser captured at ``parse_args``, so the
check reads the real flags, not a copy of them.
"""

import argparse
import runpy
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted(p for p in (Path(__file__).resolve().parents[1] / "scripts").glob("*.py") if not p.name.startswith("_"))
# --out may be optional only where a command has a reason: grow.py --list writes nothing,
# train.py --resume DIR writes into DIR, dissect.py is the README's first command (no
# arguments; it writes to reports/<model>/, e.g. reports/lizard-persistent/).
OUT_OPTIONAL = {"grow.py", "train.py", "dissect.py"}
FORBIDDEN = {"--no-progress": "--quiet"}


class _Captured(Exception):
    def __init__(self, parser):
        self.parser = parser


@pytest.fixture(scope="module")
def parsers():
    found = {}
    real = argparse.ArgumentParser.parse_args

    def capture(self, *a, **k):
        raise _Captured(self)

    argparse.ArgumentParser.parse_args = capture
    argv = sys.argv
    try:
        for path in SCRIPTS:
            sys.argv = [str(path)]
            try:
                runpy.run_path(str(path), run_name="__main__")
            except _Captured as c:
                found[path.name] = c.parser
    finally:
        argparse.ArgumentParser.parse_args = real
        sys.argv = argv
    return found


def _options(parser):
    return {s: a for a in parser._actions for s in a.option_strings if a.help != argparse.SUPPRESS}


def test_every_script_parses_its_flags_with_an_argument_parser(parsers):
    assert sorted(parsers) == sorted(p.name for p in SCRIPTS)


@pytest.mark.parametrize("script", [p.name for p in SCRIPTS])
def test_every_flag_has_help_and_the_shared_flags_mean_one_thing(parsers, script):
    from nca import cli

    p = parsers[script]
    opts = _options(p)
    for flag, action in opts.items():
        assert action.help and action.help.strip(), f"{script} {flag} has no help text"
        assert flag not in FORBIDDEN, f"{script}: use {FORBIDDEN.get(flag)}, not {flag}"
    if "--out" in opts and script not in OUT_OPTIONAL:
        assert opts["--out"].required, f"{script}: --out must be required"
    if "--seeds" in opts:
        assert opts["--seeds"].type in (cli.nonneg_int_list, cli.int_list), f"{script}: --seeds is a comma list of seeds"
    if "--seed" in opts:
        assert opts["--seed"].type in (int, cli.nonneg_int), f"{script}: --seed is one integer"
    for flag in ("--steps", "--every", "--replicates"):
        if flag in opts:
            assert opts[flag].nargs is None, f"{script}: {flag} takes one number"
    assert isinstance(p, cli.Parser), f"{script}: build the parser with nca.cli.Parser (one-line errors)"
    for action in p._actions:
        assert action.nargs not in ("+", "*") or not action.option_strings, \
            f"{script}: {action.option_strings} takes a space-separated list; lists are comma-separated"


def test_every_script_is_a_console_command_and_every_package_is_installed():
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    from nca_scripts._commands import COMMANDS

    assert sorted(COMMANDS.values()) == sorted(p.stem for p in SCRIPTS)
    entry = meta["project"]["scripts"]
    assert entry == {name: f"nca_scripts._commands:{module}" for name, module in COMMANDS.items()}
    folders = sorted(".".join(p.parent.relative_to(root).parts) for top in ("nca", "analysis")
                     for p in (root / top).rglob("__init__.py"))
    assert sorted(meta["tool"]["setuptools"]["packages"]) == sorted(folders + ["nca_scripts"])


def test_the_notebook_extra_has_what_docs_tutorial_md_uses_and_the_notebook_imports():
    """Issue 25: `pip install -e ".[notebook]"` then `jupyter notebook docs/tutorial.ipynb`."""
    import json
    import re

    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["notebook"]
    names = {re.split(r"[<>=\[ ]", r)[0] for r in extra}
    assert {"notebook", "ipykernel", "matplotlib"} <= names
    doc = (root / "docs" / "tutorial.md").read_text()
    assert 'pip install -e ".[notebook]"' in doc and "jupyter notebook docs/tutorial.ipynb" in doc
    cells = json.loads((root / "docs" / "tutorial.ipynb").read_text())["cells"]
    imported = {m for c in cells if c["cell_type"] == "code"
                for m in re.findall(r"^\s*(?:import|from) (\w+)", "".join(c["source"]), re.M)}
    third_party = imported - {"nca", "analysis", "jax", "numpy", "json", "os", "sys", "pathlib", "time"}
    assert third_party <= names, f"the notebook imports {third_party - names}, not in the [notebook] extra"

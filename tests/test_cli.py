"""The shared command-line plumbing (nca.cli): one convention, one-line errors."""

import errno
import subprocess
import sys

import pytest

from nca import cli
from nca.errors import NCAError


def _parser():
    p = cli.Parser("demo")
    cli.add_out(p, "output folder")
    cli.add_seed(p)
    cli.add_seeds(p, "0,1")
    cli.add_replicates(p)
    cli.add_quiet(p)
    return p


def test_lists_are_comma_separated_and_defaults_are_parsed():
    a = _parser().parse_args(["--out", "x", "--seeds", "3,4, 5"])
    assert a.seeds == [3, 4, 5] and a.seed == 0 and a.replicates == 5 and not a.quiet
    assert _parser().parse_args(["--out", "x"]).seeds == [0, 1]


@pytest.mark.parametrize("argv", [["--seeds", "1,,2"], ["--seeds", "a"], ["--replicates", "0"],
                                  ["--seed", "-1"], []])
def test_a_bad_flag_is_one_error_line_with_exit_code_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(argv + ([] if not argv else ["--out", "x"]))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_help_lists_out_as_required_and_shows_defaults():
    text = _parser().format_help()
    required = text.split("required arguments:")[1]
    assert "--out PATH" in required
    assert "(default: 0,1)" in text and "(default: 5)" in text


def test_check_writable_refuses_a_path_under_a_regular_file(tmp_path):
    from nca.checkpoint import check_writable  # the one copy (issue 25: there were 3)

    blocker = tmp_path / "file"
    blocker.write_text("mine")
    with pytest.raises(NCAError, match="it is a file"):
        check_writable(blocker / "sub" / "out", folder=True)
    with pytest.raises(NCAError, match="is a folder"):
        check_writable(tmp_path)
    check_writable(tmp_path / "new" / "dir", folder=True)  # creatable: fine
    assert (tmp_path / "new" / "dir").is_dir() and list((tmp_path / "new" / "dir").iterdir()) == []
    assert blocker.read_text() == "mine"


def test_os_faults_are_named_in_one_line():
    line = cli.os_error_line(OSError(errno.ENOSPC, "No space left on device", "/x/ckpt"))
    assert line == "the disk is full: /x/ckpt"


def test_run_cli_maps_errors_to_exit_codes():
    code = ("from nca.cli import run_cli\nfrom nca.errors import NCAError\n"
            "def main():\n    raise {exc}\nrun_cli(main)\n")
    for exc, rc, first in [("NCAError('bad value')", 2, "error: bad value"),
                           ("OSError(28, 'No space left on device', 'f.bin')", 2, "error: the disk is full: f.bin"),
                           ("KeyboardInterrupt()", 130, "interrupted")]:
        r = subprocess.run([sys.executable, "-c", code.format(exc=exc)], capture_output=True, text=True)
        assert r.returncode == rc and r.stderr.strip() == first, (exc, r.stderr)


def test_run_cli_leaves_without_the_interpreters_teardown_but_loses_nothing(tmp_path):
    """Run as the program itself, run_cli flushes the output, runs the atexit handlers and
    exits at once after main: an object's finaliser (what the interpreter's teardown would
    run, about 1 s after an analysis) never runs, while unflushed output, atexit work and the
    exit code survive. Run by another program (runpy, as the tests do), it raises SystemExit
    as before, and the caller lives on."""
    code = ("import atexit, sys\nfrom nca.cli import run_cli\n"
            "class Slow:\n    def __del__(self):\n        print('teardown ran', file=sys.stderr)\n"
            "keep = Slow()\n"
            "atexit.register(lambda: print('atexit ran', file=sys.stderr))\n"
            "def main():\n    sys.stdout.write('no newline')\n    return {rc}\nrun_cli(main)\n")
    for rc in (0, 3):
        script = tmp_path / f"s{rc}.py"
        script.write_text(code.format(rc=rc))
        r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        assert (r.returncode, r.stdout, r.stderr.strip()) == (rc, "no newline", "atexit ran"), r
    caller = "import runpy, sys\ntry:\n    runpy.run_path(sys.argv[1], run_name='__main__')\n" \
             "except SystemExit as e:\n    print('caught', e.code)\n"
    r = subprocess.run([sys.executable, "-c", caller, str(tmp_path / "s3.py")], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "no newlinecaught 3\n", r


def test_nca_error_is_a_value_error_and_bad_model_configs_raise_it():
    """Issue 25: callers catch bad input as ValueError, as they expect; the library's own
    validation raises NCAError (so scripts print it as one line)."""
    from nca.model import ModelConfig

    assert issubclass(NCAError, ValueError)
    for bad in (dict(channels=3), dict(hidden=0), dict(fire_rate=0.0)):
        with pytest.raises(NCAError, match=next(iter(bad))):
            ModelConfig(**bad)
    ModelConfig(channels=4, hidden=1, fire_rate=1.0)  # control: the edge values are fine

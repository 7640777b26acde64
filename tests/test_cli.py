"""The shared command-line plumbing (nca.cli): one convention, one-line errors."""

import errno
import subprocess
import sys
from pathlib import Path

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


def test_huge_pages_are_asked_for_only_where_glibc_and_the_kernel_can_give_them():
    madvise, glibc = "always [madvise] never\n", ("glibc", "2.36")
    assert cli.huge_pages_environ({"A": "1"}, madvise, glibc) == {"A": "1", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
    assert cli.huge_pages_environ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, madvise, glibc)["GLIBC_TUNABLES"] \
        == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"  # the user's own tunables kept
    for environ, thp, libc in [({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, madvise, glibc),  # the user chose
                               ({"NCA_HUGE_PAGES": "0"}, madvise, glibc),  # opted out
                               ({}, "[always] madvise never", glibc),  # every mapping has them already
                               ({}, "always madvise [never]", glibc), ({}, None, glibc),  # none to ask for
                               ({}, madvise, ("glibc", "2.31")), ({}, madvise, ("", "")), ({}, madvise, ("glibc", "x"))]:
        assert cli.huge_pages_environ(environ, thp, libc) is None, (environ, thp, libc)


def test_the_scripts_shell_imports_without_jax_so_a_restart_costs_only_pythons_start():
    code = ("import sys, nca, nca.cli, nca.errors\nassert 'jax' not in sys.modules, 'jax imported'\n"
            "assert nca.load_model.__module__ == 'nca.api' and nca.model.step is nca.step and 'jax' in sys.modules\n"
            "try:\n    nca.no_such_name\nexcept AttributeError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "module 'nca' has no attribute 'no_such_name'\n", r


def test_a_training_script_restarts_itself_with_huge_pages_and_its_arguments(tmp_path):
    """The program restarts once, same interpreter and arguments, with the tunable, and glibc
    then backs a fresh 64 MB malloc with huge pages (numpy asks for them itself, so plain C
    malloc is the probe); $NCA_HUGE_PAGES=0 or a caller that is not the program (runpy) keeps
    the process as started, and its block in 4 KB pages."""
    import os
    import platform

    script = tmp_path / "train_like.py"
    script.write_text(
        "import ctypes, os, re, sys\nfrom nca.cli import restart_with_huge_pages, run_cli\n"
        "restart_with_huge_pages()\n"
        "huge = lambda: int(re.search(r'AnonHugePages:\\s+(\\d+)', open('/proc/self/smaps_rollup').read())[1])\n"
        "libc = ctypes.CDLL(None)\nlibc.malloc.restype = ctypes.c_void_p\n"
        "def main():\n    before, block = huge(), libc.malloc(64 << 20)\n    ctypes.memset(block, 1, 64 << 20)\n"
        "    print(sys.argv[1:], os.environ.get('GLIBC_TUNABLES'), huge() - before >= 32 << 10)\n"
        "run_cli(main)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "NCA_HUGE_PAGES")}
    try:
        thp = cli.THP_SETTING.read_text()
    except OSError:
        thp = None
    expected = cli.huge_pages_environ(env, thp, platform.libc_ver())
    if expected is None or not Path("/proc/self/smaps_rollup").exists():
        pytest.skip(f"this machine gives no transparent huge pages on request ({thp!r}, {platform.libc_ver()})")
    run = lambda *argv, **extra: subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                                                env={**env, **extra}, timeout=60)
    r = run(str(script), "--out", "x y")
    assert r.returncode == 0 and r.stdout == "['--out', 'x y'] glibc.malloc.hugetlb=1 True\n", r
    r = run(str(script), "--out", "x", NCA_HUGE_PAGES="0")
    assert r.returncode == 0 and r.stdout == "['--out', 'x'] None False\n", r
    r = run("-c", "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')", str(script), "a")
    assert r.stdout == f"{[str(script), 'a']} None False\n", r  # sys.argv[0] is "-c"


def test_nca_error_is_a_value_error_and_bad_model_configs_raise_it():
    """Issue 25: callers catch bad input as ValueError, as they expect; the library's own
    validation raises NCAError (so scripts print it as one line)."""
    from nca.model import ModelConfig

    assert issubclass(NCAError, ValueError)
    for bad in (dict(channels=3), dict(hidden=0), dict(fire_rate=0.0)):
        with pytest.raises(NCAError, match=next(iter(bad))):
            ModelConfig(**bad)
    ModelConfig(channels=4, hidden=1, fire_rate=1.0)  # control: the edge values are fine

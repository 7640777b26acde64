"""Shared plumbing for the command-line scripts: one flag convention, one-line errors.

The convention every script follows (README, "Command-line convention"):

* positional arguments are what the command reads (models, run directories);
* ``--out PATH`` is where it writes, required wherever a command writes, and checked for
  writability *before* any computing starts;
* ``--seed N`` is the command's one PRNG seed; ``--seeds 0,1,2`` is always a list of seeds;
* ``--replicates N`` is a count of repetitions over fire-mask seeds;
* ``--steps N`` is always a number of CA steps; ``--every N`` keeps one frame or record
  every N CA steps;
* every list is comma-separated; ``--quiet`` is the one switch that silences progress bars;
* every flag has a help text and ``--help`` shows the defaults;
* bad input is one line on stderr, ``error: ...``, exit code 2.

``tests/test_cli_convention.py`` checks every script's ``--help`` against this.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import Callable

from .errors import NCAError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the module docstring's layout; append each flag's default to its help."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or not action.option_strings or default is None or default is False
                or default == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``error: ...``, exit code 2.

    ``required_args`` is a second argument group titled "required arguments", so ``--help``
    lists a required ``--out`` there rather than among the optional flags.
    """

    def __init__(self, description: str | None = None, **kw):
        kw.setdefault("formatter_class", _Formatter)
        super().__init__(description=description, **kw)
        self.required_args = self.add_argument_group("required arguments")

    def error(self, message):  # argparse's own errors: one clear line, as every other bad input
        _newline_if_bar()
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


# --- value types: each raises ArgumentTypeError with a message that names the value ----------

def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    v = _int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def nonneg_int(text: str) -> int:
    """An integer >= 0."""
    v = _int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def positive_float(text: str) -> float:
    """A number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def _list(text: str, item: Callable[[str], object], what: str) -> list:
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(p == "" for p in parts):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {what}, got {text!r}")
    return [item(p) for p in parts]


def int_list(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (comma-separated integers)."""
    return _list(text, _int, "integers")


def nonneg_int_list(text: str) -> list[int]:
    """Comma-separated integers >= 0 (seeds, steps, channels)."""
    return _list(text, nonneg_int, "integers >= 0")


def float_list(text: str) -> list[float]:
    """``"0,45.5"`` -> ``[0.0, 45.5]``."""
    def one(p):
        try:
            return float(p)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {p!r}") from None
    return _list(text, one, "numbers")


def str_list(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]``."""
    return _list(text, str, "names")


def or_empty(item: Callable[[str], list]) -> Callable[[str], list]:
    """A comma-list type that also accepts ``''``: an empty list (skip the part)."""
    def parse(text: str):
        return [] if not text.strip() else item(text)
    parse.__name__ = item.__name__
    return parse


# --- the shared flags ---------------------------------------------------------------------------

def add_out(p: Parser, help: str, required: bool = True) -> None:
    """``--out PATH``; in the "required arguments" group when required."""
    (p.required_args if required else p).add_argument("--out", type=Path, required=required, metavar="PATH", help=help)


def add_seed(p: Parser, default: int = 0) -> None:
    p.add_argument("--seed", type=nonneg_int, default=default,
                   help="the command's one PRNG seed; every random stream is derived from it by name")


def add_seeds(p: Parser, default: str, help: str = "comma-separated list of seeds") -> None:
    p.add_argument("--seeds", type=nonneg_int_list, default=default, metavar="LIST", help=help)


def add_replicates(p: Parser, default: int = 5) -> None:
    p.add_argument("--replicates", type=positive_int, default=default, metavar="N",
                   help="repetitions over fire-mask seeds; intervals are taken over them")


def add_steps(p: Parser, default: int, help: str = "number of CA steps to run") -> None:
    p.add_argument("--steps", type=positive_int, default=default, metavar="N", help=help)


def add_every(p: Parser, default: int, help: str = "keep one frame every N CA steps") -> None:
    p.add_argument("--every", type=positive_int, default=default, metavar="N", help=help)


def add_quiet(p: Parser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


# --- output paths -------------------------------------------------------------------------------

# check_writable: nca.checkpoint.check_writable (the one copy: a probe file written and synced,
# so a read-only folder, a full disk or a file in the way are found before any computing).


def claim_report_dir(out: Path, command: str, args, skip: tuple[str, ...] = ("out", "quiet")):
    """Claim the report folder ``out`` for this script (``nca.checkpoint.claim_report_dir``):
    the same command with the same settings replaces its report; another model's or other
    settings' report, or files it did not write, are refused with one line before any
    computing. args: the parsed arguments (an ``argparse.Namespace`` or a dict); every one
    but ``skip`` (where it writes, whether it prints) is a setting; ``None``: the command
    checks its settings itself. Use as ``with cli.claim_report_dir(a.out, "dissect", a):``.
    """
    from .checkpoint import claim_report_dir as claim

    settings = None
    if args is not None:
        settings = {k: v for k, v in sorted((vars(args) if not isinstance(args, dict) else args).items())
                    if k not in skip}
    return claim(Path(out), command, settings)


# --- running ------------------------------------------------------------------------------------

def _newline_if_bar() -> None:
    """End a progress bar's line before an error, so the error starts a line of its own."""
    try:
        from tqdm import tqdm
        if getattr(tqdm, "_instances", None):
            for bar in list(tqdm._instances):
                bar.close()
            sys.stderr.write("\n")
    except Exception:  # noqa: BLE001 -- never let the error path fail
        pass


_OS_FAULTS = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file-size limit was reached",
    errno.EROFS: "the file system is read-only",
    errno.EDQUOT: "the disk quota is exceeded",
}


def os_error_line(e: OSError) -> str:
    """One line for an operating-system fault: what happened, and to which file."""
    what = _OS_FAULTS.get(e.errno) or e.strerror or str(e)
    where = f": {e.filename}" if e.filename else ""
    return f"{what}{where}"


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's ``main``; bad input or an OS fault prints ``error: ...``, exit 2.

    ``NCAError`` is the library's domain error; ``OSError`` covers a missing file, a
    read-only folder, a full disk or a file-size limit. Ctrl-C exits 130 after the
    script's own handlers (training saves a checkpoint first) have run.
    """
    _warnings_as_lines()
    try:
        code = main()
    except NCAError as e:
        _newline_if_bar()
        print(f"error: {e}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except OSError as e:
        _newline_if_bar()
        print(f"error: {os_error_line(e)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        _newline_if_bar()
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    if not _is_the_program():
        sys.exit(code or 0)
    _leave(code or 0)


HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"
THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def huge_pages_environ(environ: dict, thp: str | None, libc: tuple[str, str]) -> dict | None:
    """The environment to restart a CPU training process with, or None to run as started.

    A training step allocates its rematerialised scan's saved states (~250 MB for batch 8 at
    72x72) afresh at every step, and faulting them in 4 KB pages cost 150-190 ms of system
    time per canonical step; glibc (>= 2.35) asks the kernel for 2 MB pages for its mmapped
    blocks with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (docs/performance.md, round 14: 410
    and 465 ms against 540 and 520 ms per step of ``scripts/train.py --preset distill``,
    median of steps 11-60). The setting is read when a
    process starts, so a script restarts itself with it. thp: the text of
    /sys/kernel/mm/transparent_hugepage/enabled (None: unreadable); libc:
    ``platform.libc_ver()``. None where it cannot help or the user decided: another libc or
    an older glibc, transparent huge pages ``[never]`` (nothing to ask for) or ``[always]``
    (every mapping has them already), ``hugetlb`` already in $GLIBC_TUNABLES, or
    $NCA_HUGE_PAGES=0."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    if environ.get("NCA_HUGE_PAGES", "1") == "0" or "glibc.malloc.hugetlb" in tunables:
        return None
    name, version = libc
    try:
        major_minor = tuple(int(v) for v in version.split(".")[:2])
    except ValueError:
        return None
    if name != "glibc" or major_minor < (2, 35) or thp is None or "[madvise]" not in thp:
        return None
    return {**environ, "GLIBC_TUNABLES": f"{tunables}:{HUGE_PAGES_TUNABLE}" if tunables else HUGE_PAGES_TUNABLE}


def restart_with_huge_pages() -> None:
    """Replace this process by the same command with ``huge_pages_environ``'s environment, if
    the calling script is the program (``_is_the_program``: not a test or notebook running it);
    where the environment is None or the restart fails, go on as started. A training script
    calls it first, before JAX is imported (``nca``'s names load lazily for this), so that a
    restart costs only Python's start."""
    import platform

    if not _is_the_program():
        return
    try:
        thp = THP_SETTING.read_text()
    except OSError:
        thp = None
    environ = huge_pages_environ(dict(os.environ), thp, platform.libc_ver())
    if environ is None:
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)
    except OSError:  # the interpreter cannot be run again (a frozen or removed executable)
        return


def _warnings_as_lines() -> None:
    """The library's own warnings (``nca.targets.OpaqueTargetWarning``, ...) as one line,
    ``warning: ...``, on stderr; other packages' warnings as Python shows them."""
    import warnings

    if getattr(warnings.showwarning, "_nca", False):
        return
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.split(".")[0] == "nca":
            _newline_if_bar()
            print(f"warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    show._nca = True
    warnings.showwarning = show


def _is_the_program() -> bool:
    """Whether the file Python was started with (``python scripts/x.py``, a console command)
    is what called us, rather than a caller that may catch SystemExit (a test running the
    script with runpy, a notebook)."""
    frame = sys._getframe()
    while frame.f_back is not None:
        frame = frame.f_back
    return os.path.realpath(frame.f_code.co_filename) == os.path.realpath(sys.argv[0])


def _leave(code: int) -> None:
    """Exit after a finished ``main`` without the interpreter's teardown: freeing every module
    and array took about 1 s after an analysis (``scripts/dissect.py``, measured 2026-11-30),
    for nothing. Nothing is lost: every file this package writes is closed and renamed into
    place before ``main`` returns, the output is flushed here, and the atexit handlers run.
    Only when the script is the program itself (``_is_the_program``)."""
    import atexit

    atexit._run_exitfuncs()  # may print: the flush comes after
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(code)

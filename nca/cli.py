"""Shared plumbing for the command-line scripts: clean one-line errors, no tracebacks."""

from __future__ import annotations

import sys
from typing import Callable


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's ``main``; an ``NCAError`` (or a bad path) prints ``error: ...``, exit 2."""
    from .errors import NCAError

    try:
        code = main()
    except NCAError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        print(f"error: {e.strerror or e}: {e.filename}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)

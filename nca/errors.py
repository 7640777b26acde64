"""The one exception type users see: a clear message, no traceback."""


class NCAError(ValueError):
    """A problem with the user's input (file, name, shape, config) or a failed run.

    Command-line scripts catch it and print ``error: <message>`` with exit code 2;
    the message says what is wrong and what to do. A ``ValueError``, so a caller that
    catches bad input as ``ValueError`` (as Python's own functions raise it) catches it too.
    """


def require_at_least(obj, names, low: int, label=lambda name: name) -> None:
    """The settings classes' range check: NCAError ``<label(name)> must be >= <low>, got
    <value>`` for the first field of ``obj`` named in ``names`` below ``low``."""
    for name in names:
        value = getattr(obj, name)
        if value < low:
            raise NCAError(f"{label(name)} must be >= {low}, got {value}")


def is_out_of_memory(e: BaseException) -> bool:
    """An allocation that failed: NumPy's MemoryError, or XLA's RESOURCE_EXHAUSTED."""
    return isinstance(e, MemoryError) or (
        type(e).__name__ in ("JaxRuntimeError", "XlaRuntimeError") and "RESOURCE_EXHAUSTED" in str(e))


class out_of_memory_as_error:
    """``with out_of_memory_as_error("growing a 4000x4000 grid"):`` -- a failed allocation
    inside becomes one NCAError saying what needed the memory (not an XLA traceback)."""

    def __init__(self, what: str, hint: str = "use a smaller grid, fewer steps or fewer recordings"):
        self.what, self.hint = what, hint

    def __enter__(self):
        return self

    def __exit__(self, typ, e, tb):
        if e is not None and is_out_of_memory(e):
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NCAError(f"out of memory {self.what} ({first}); {self.hint}") from None
        return False


def memory_limit_bytes() -> int | None:
    """The memory arrays can use: the machine's RAM on the CPU backend, the device's limit
    on an accelerator (None if unknown)."""
    import os

    import jax

    try:
        dev = jax.devices()[0]
        if dev.platform == "cpu":
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return (dev.memory_stats() or {}).get("bytes_limit")
    except (ValueError, OSError, AttributeError, RuntimeError):
        return None


def check_fits(nbytes: float, what: str, hint: str) -> None:
    """Refuse (NCAError) before allocating when ``nbytes`` (an estimate of what ``what``
    needs) exceeds the memory there is: XLA can abort the process on some failed
    allocations instead of raising, which no handler can turn into one line."""
    limit = memory_limit_bytes()
    if limit and nbytes > limit:
        raise NCAError(f"{what} needs about {nbytes / 2**30:.1f} GiB, more than the {limit / 2**30:.1f} GiB "
                       f"of memory here; {hint}")

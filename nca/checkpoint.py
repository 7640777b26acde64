"""Checkpoints and run directories, written atomically.

A run directory holds ``config.json`` (the full resolved ``Config``), ``checkpoint.msgpack``
(params, optimiser state, pool, PRNG key, step), ``metrics.csv`` and ``preview.png``.
Every file is written to a temporary sibling, fsynced, then renamed over the old one, so
a run killed at any moment leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from .errors import NCAError

CHECKPOINT = "checkpoint.msgpack"
CONFIG = "config.json"
METRICS = "metrics.csv"
PREVIEW = "preview.png"
FORMAT_VERSION = 1


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def file_mode(directory: bool = False) -> int:
    """The permissions a new file (or folder) normally gets under the process's umask;
    what files made by mkstemp/mkdtemp (0600/0700) are given before they replace a target."""
    return (0o777 if directory else 0o666) & ~_UMASK


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _to_numpy(tree):
    def conv(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return {"__prng_key__": np.asarray(jax.random.key_data(x))}
        return np.asarray(x)

    return jax.tree.map(conv, tree)


def save_checkpoint(path: Path, state: dict) -> None:
    """Save a pytree of arrays (typed PRNG keys allowed) as msgpack, atomically."""
    payload = {"format_version": FORMAT_VERSION, "state": serialization.to_state_dict(_to_numpy(state))}
    atomic_write_bytes(Path(path), serialization.msgpack_serialize(payload))


def load_checkpoint(path: Path, template: dict) -> dict:
    """Load a checkpoint into the structure (and shapes) of ``template``.

    Raises NCAError for a missing, truncated or corrupt file, or one whose arrays do not
    match the template's shapes (e.g. a checkpoint from another config).
    """
    path = Path(path)
    if not path.is_file():
        raise NCAError(f"checkpoint not found: {path}")
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        raw = payload["state"]
    except Exception as e:
        raise NCAError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e}); "
                       "restore it from a copy or start a new run") from None
    np_template = _to_numpy(template)
    try:
        restored = serialization.from_state_dict(np_template, raw)
    except Exception as e:
        raise NCAError(f"checkpoint {path} does not match this config's structure: {e}") from None
    mismatches = []

    def check(kp, t, r):
        if np.shape(t) != np.shape(r):
            mismatches.append(f"{jax.tree_util.keystr(kp)}: checkpoint {np.shape(r)} vs config {np.shape(t)}")
        return r

    jax.tree_util.tree_map_with_path(check, np_template, restored)
    if mismatches:
        raise NCAError(f"checkpoint {path} does not match the config: " + "; ".join(mismatches[:5]))

    def back(t, r):
        if isinstance(t, jax.Array) and jax.dtypes.issubdtype(t.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(np.asarray(r["__prng_key__"]))
        if isinstance(t, jax.Array):
            return jax.numpy.asarray(r, dtype=t.dtype)
        return np.asarray(r, dtype=np.asarray(t).dtype)

    is_key = lambda x: isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
    flat_t, treedef = jax.tree.flatten(template, is_leaf=is_key)
    flat_r = treedef.flatten_up_to(restored)
    return jax.tree.unflatten(treedef, [back(t, r) for t, r in zip(flat_t, flat_r)])


# --------------------------------------------------------------------------- kept checkpoints
# Params along training (``Config.keep_checkpoints``) for training-dynamics analyses:
# ``run_dir/checkpoints/step_000100.msgpack`` holds ``{"params": ...}`` after step 100.

KEPT_DIR = "checkpoints"
KEEP_MODES = ("log", "none")


def log_spaced_steps(last: int, per_decade: int = 4) -> list[int]:
    """Steps ``round(10 ** (k / per_decade))`` <= last, and ``last`` itself: 1, 2, 3, 6, 10,
    18, 32, 56, 100, ... (4 per decade)."""
    steps, k = set(), 0
    while round(10 ** (k / per_decade)) <= last:
        steps.add(int(round(10 ** (k / per_decade))))
        k += 1
    return sorted(steps | ({last} if last >= 1 else set()))


def kept_steps(mode: str, last: int) -> list[int]:
    """The training steps whose params are kept under ``mode``: "log" = step 0 (the
    untrained init) and ``log_spaced_steps(last)``; "none" = none."""
    if mode not in KEEP_MODES:
        raise NCAError(f"keep_checkpoints must be one of {', '.join(KEEP_MODES)}, got {mode!r}")
    return [0] + log_spaced_steps(last) if mode == "log" else []


def kept_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / KEPT_DIR / f"step_{int(step):06d}.msgpack"


def save_kept(run_dir: Path, step: int, params) -> None:
    save_checkpoint(kept_path(run_dir, step), {"params": params})


def list_kept(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the kept checkpoints of a run directory, by step."""
    folder = Path(run_dir) / KEPT_DIR
    out = []
    for p in folder.glob("step_*.msgpack") if folder.is_dir() else []:
        try:
            out.append((int(p.stem.split("_")[1]), p))
        except (IndexError, ValueError):
            continue
    return sorted(out)


def load_kept(path: Path, params_template) -> dict:
    """The params of one kept checkpoint (shapes checked against ``params_template``)."""
    return load_checkpoint(path, {"params": params_template})["params"]

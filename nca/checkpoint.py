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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
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

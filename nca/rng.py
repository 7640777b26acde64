"""Named PRNG streams: every random draw of a command derives from its one seed by name.

    key = jax.random.key(seed)
    masks = damage_masks(stream(key, "damage"), ...)      # not key(1234), not seed + 7919
    for i in range(n):
        k_i = stream(key, "rollout", i)                   # not fold_in(key, 1_000_003 + i)

``stream(key, name, *index)`` is ``fold_in`` of a stable 31-bit hash of the name (BLAKE2b,
so the same in every process and Python version, unlike ``hash(str)``), then of each
index. Two streams with different names are independent for every practical purpose (the
threefry hash of different fold-in data; a collision of two names' 31-bit hashes would be
caught by ``check_distinct``). Numbered offsets (``1000 + s``) instead overlap as soon as
a count grows past the gap.

Training (``nca.train``) keeps its original layout so resumed and published runs stay
bit-identical: the run key is ``split(key(seed))`` into (init, train), and step ``t`` uses
``fold_in(train, t)`` (``nca.model.step_key``).
"""

from __future__ import annotations

import hashlib

import jax

from .errors import NCAError


def stream_id(name: str) -> int:
    """The 31-bit number a stream name folds in: stable across processes and versions."""
    if not isinstance(name, str) or not name:
        raise NCAError(f"a PRNG stream needs a non-empty name, got {name!r}")
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "little") & 0x7FFFFFFF


def stream(key: jax.Array, name: str, *index: int) -> jax.Array:
    """The key of stream ``name`` (and sub-stream ``index...``) derived from ``key``.

    key: a typed PRNG key (``jax.random.key(seed)``); index: integers >= 0 (Python or
    traced), e.g. a replicate or sample number.
    """
    key = jax.random.fold_in(key, stream_id(name))
    for i in index:
        key = jax.random.fold_in(key, i)
    return key


def check_distinct(*names: str) -> None:
    """Raise NCAError if a name is given twice or two names fold in the same number (a
    guard for a module that declares its streams; no collision is known)."""
    seen: dict[int, str] = {}
    for n in names:
        h = stream_id(n)
        if h in seen:
            what = "is declared twice" if seen[h] == n else f"collides with {seen[h]!r}; rename one"
            raise NCAError(f"PRNG stream name {n!r} {what}")
        seen[h] = n

"""Named PRNG streams (nca.rng): stable across processes, distinct by name, independent."""

import hashlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from nca.errors import NCAError
from nca.rng import check_distinct, stream, stream_id


def test_a_stream_is_fold_in_of_a_stable_hash_of_its_name():
    want = int.from_bytes(hashlib.blake2b(b"damage", digest_size=4).digest(), "little") & 0x7FFFFFFF
    assert stream_id("damage") == want
    key = jax.random.key(3)
    np.testing.assert_array_equal(jax.random.key_data(stream(key, "damage", 2)),
                                  jax.random.key_data(jax.random.fold_in(jax.random.fold_in(key, want), 2)))
    # the same number in a fresh process (Python's own str hash is salted per process)
    out = subprocess.run([sys.executable, "-c", "from nca.rng import stream_id; print(stream_id('damage'))"],
                         capture_output=True, text=True, timeout=120)
    assert int(out.stdout) == want


def test_streams_with_different_names_or_indices_are_uncorrelated_and_the_same_stream_repeats():
    key = jax.random.key(0)
    n = 20000
    a = np.asarray(jax.random.normal(stream(key, "pool"), (n,)))
    b = np.asarray(jax.random.normal(stream(key, "damage"), (n,)))
    c = np.asarray(jax.random.normal(stream(key, "pool", 1), (n,)))
    # |r| of independent normals: sd 1/sqrt(n) = 0.007; 0.03 is > 4 sd
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03 and abs(np.corrcoef(a, c)[0, 1]) < 0.03
    again = np.asarray(jax.random.normal(stream(key, "pool"), (n,)))
    np.testing.assert_array_equal(a, again)  # control: the same name is the same stream


def test_bad_names_and_collisions_are_errors():
    with pytest.raises(NCAError, match="non-empty name"):
        stream_id("")
    check_distinct("pool", "damage", "fire", "rollout", "preview", "init")
    with pytest.raises(NCAError, match="declared twice"):
        check_distinct("pool", "damage", "pool")

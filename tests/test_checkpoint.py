"""Checkpoints: round trip, atomic writes, corrupt / truncated / mismatched files."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nca.checkpoint import atomic_write_bytes, load_checkpoint, save_checkpoint
from nca.errors import NCAError


def state():
    return {"params": {"w": jnp.arange(6.0).reshape(2, 3)}, "key": jax.random.key(7),
            "step": jnp.int32(5), "elapsed": np.float64(1.5)}


def test_round_trip_including_prng_key(tmp_path):
    s = state()
    save_checkpoint(tmp_path / "c.msgpack", s)
    r = load_checkpoint(tmp_path / "c.msgpack", state())
    np.testing.assert_array_equal(r["params"]["w"], s["params"]["w"])
    assert int(r["step"]) == 5 and float(r["elapsed"]) == 1.5
    np.testing.assert_array_equal(jax.random.key_data(r["key"]), jax.random.key_data(s["key"]))
    np.testing.assert_array_equal(jax.random.uniform(r["key"], (3,)), jax.random.uniform(s["key"], (3,)))


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")
    atomic_write_bytes(p, b"new contents")
    assert p.read_bytes() == b"new contents"
    assert [f.name for f in tmp_path.iterdir()] == ["f.bin"]
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_truncated_and_corrupt_checkpoints_are_clear_errors(tmp_path):
    p = tmp_path / "c.msgpack"
    save_checkpoint(p, state())
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(NCAError, match="corrupt or truncated"):
        load_checkpoint(p, state())
    p.write_bytes(b"garbage")
    with pytest.raises(NCAError, match="corrupt or truncated"):
        load_checkpoint(p, state())
    with pytest.raises(NCAError, match="not found"):
        load_checkpoint(tmp_path / "missing.msgpack", state())


def test_shape_mismatch_names_the_array(tmp_path):
    p = tmp_path / "c.msgpack"
    save_checkpoint(p, state())
    other = state()
    other["params"]["w"] = jnp.zeros((4, 3))
    with pytest.raises(NCAError, match=r"does not match.*w"):
        load_checkpoint(p, other)

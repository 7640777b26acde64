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


def payloads():
    rng = np.random.default_rng(0)
    arrays = {f"{dt.__name__}_{'x'.join(map(str, shape)) or 'scalar'}": rng.standard_normal(shape).astype(dt)
              for shape in [(), (0,), (1,), (4,), (5, 3), (70, 1000), (3, 0, 2)]
              for dt in (np.float32, np.int32, np.float64, np.bool_, np.uint8)}
    return [
        arrays,
        {"np_scalars": {"f": np.float64(3.5), "i": np.int32(-7), "b": np.bool_(True)},
         "python": {"i": 1, "neg": -40000, "big": 2**40, "f": 2.5, "s": "text", "t": True, "n": None},
         "views": {"fortran": np.asfortranarray(rng.standard_normal((3, 4))), "strided": rng.standard_normal((6, 8))[::2, ::3]}},
        {str(i): np.arange(i, dtype=np.float32) for i in range(20)},  # a 20-key map, keys out of order
    ]


def test_checkpoint_files_are_flax_msgpack_byte_for_byte(monkeypatch):
    # Checkpoints are streamed array by array (a training pool is 340 MB); the bytes must be
    # exactly what flax.serialization writes, so either side reads the other's files.
    import io

    from flax import serialization

    from nca import checkpoint

    cases = payloads()
    for p in cases:
        buf = io.BytesIO()
        checkpoint._write_msgpack(buf, p)
        assert buf.getvalue() == serialization.msgpack_serialize(p)
    # Arrays over the chunk limit (1 GiB) are split as flax splits them: shrink both limits.
    monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 64)
    monkeypatch.setattr(checkpoint, "_MAX_CHUNK_BYTES", 64)
    big = {"a": np.arange(100, dtype=np.float32).reshape(10, 10), "b": np.arange(3, dtype=np.int32)}
    buf = io.BytesIO()
    checkpoint._write_msgpack(buf, big)
    assert buf.getvalue() == serialization.msgpack_serialize(big)
    buf.seek(0)
    back = checkpoint._unchunked(checkpoint._read_msgpack(buf))
    np.testing.assert_array_equal(back["a"], big["a"])
    np.testing.assert_array_equal(back["b"], big["b"])


def test_reader_reads_what_flax_writes():
    import io

    from flax import serialization

    from nca import checkpoint

    for p in payloads():
        back = checkpoint._read_msgpack(io.BytesIO(serialization.msgpack_serialize(p)))
        ref = serialization.msgpack_restore(serialization.msgpack_serialize(p))
        flat_b, flat_r = jax.tree_util.tree_leaves_with_path(back), jax.tree_util.tree_leaves_with_path(ref)
        assert [k for k, _ in flat_b] == [k for k, _ in flat_r]
        for (k, b), (_, r) in zip(flat_b, flat_r):
            assert type(b) is type(r) or isinstance(b, np.ndarray), k
            np.testing.assert_array_equal(b, r, err_msg=str(k))
            assert np.asarray(b).dtype == np.asarray(r).dtype, k


def test_load_with_an_abstract_template_allocates_nothing_for_it(tmp_path):
    s = state()
    save_checkpoint(tmp_path / "c.msgpack", s)
    r = load_checkpoint(tmp_path / "c.msgpack", jax.eval_shape(state))
    np.testing.assert_array_equal(r["params"]["w"], s["params"]["w"])
    assert int(r["step"]) == 5 and isinstance(r["step"], jax.Array)
    np.testing.assert_array_equal(jax.random.key_data(r["key"]), jax.random.key_data(s["key"]))
    with pytest.raises(NCAError, match=r"does not match.*w"):
        bad = jax.eval_shape(state)
        bad["params"]["w"] = jax.ShapeDtypeStruct((4, 3), jnp.float32)
        load_checkpoint(tmp_path / "c.msgpack", bad)

"""Checkpoints and run directories, written atomically.

A run directory holds ``config.json`` (the full resolved ``Config``), ``checkpoint.msgpack``
(params, optimiser state, pool, PRNG key, step), ``metrics.csv`` and ``preview.png``.
Every file is written to a temporary sibling, fsynced, then renamed over the old one, so
a run killed at any moment leaves either the old or the new file, never a torn one; the
temporary files a kill leaves are removed when the run folder is next claimed
(``clean_stale_temps``). A training run claims its folder with ``claim_run_dir`` (an
``flock`` on ``.nca-lock`` inside it, released by the OS when the process ends), so two
runs never write one folder. OS faults (disk full, file-size limit, read-only folder, a
regular file where a folder must be) are one NCAError naming the path.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import jax
import msgpack
import numpy as np

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


def _os_error(path, e: OSError, doing: str = "write") -> NCAError:
    """An OS fault (read-only folder, disk full, file-size limit, a path under a regular
    file...) as one line naming the path: ``cannot write runs/x/metrics.csv: the disk is
    full``."""
    from .cli import os_error_line  # the scripts' wording: "the disk is full", ...

    reason = os_error_line(OSError(e.errno, e.strerror or type(e).__name__))
    return NCAError(f"cannot {doing} {path}: {reason}")


def _mkdir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a regular file (or a link to one) where a folder must be
        raise NCAError(f"cannot create folder {folder}: a file of that name is in the way") from None
    except OSError as e:
        raise _os_error(folder, e, "create folder") from None


def atomic_write_bytes(path: Path, data) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder + rename).

    data: bytes, or a function ``write(f)`` that writes the contents to the open file.
    An OS fault (read-only folder, disk full, file-size limit, a parent that is a regular
    file) raises NCAError naming the path; the old file, if any, is left untouched and the
    temporary file removed.
    """
    def write(fd: int, tmp: str) -> None:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())

    atomic_write_with(path, write)


def atomic_write_with(path: Path, write, suffix: str = "") -> None:
    """Write ``path`` atomically through ``write(fd, tmp)``: a temporary file in the same
    folder (``tmp``, named ``.<name>.*.tmp<suffix>``, open as ``fd``, which ``write`` owns and
    closes), given the usual permissions and renamed over ``path`` when ``write`` returns.
    An OS fault raises NCAError naming the path; the old file, if any, is left untouched and
    the temporary file removed. ``atomic_write_bytes`` and writers that need a path of their
    own (``analysis.representation.atlas.write_h5ad``) go through it."""
    path = Path(path)
    _mkdir(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX + suffix)
    except OSError as e:
        raise _os_error(path, e) from None
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; give the usual permissions
        write(fd, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _os_error(path, e) from None
        raise


TEMP_SUFFIX = ".tmp"


def check_writable(path: Path, folder: bool = False) -> None:
    """Fail early (NCAError, one line) if ``path`` cannot be written, before any computing.

    path: a file to be written (its folder is checked), or with ``folder=True`` a folder to
    write into. Creates missing parent folders (as the write would) and writes and removes
    a probe file, so a read-only file system, a full disk or a parent that is a regular
    file are all found now rather than after the work.
    """
    path = Path(path)
    where = path if folder else path.parent
    if not folder and path.is_dir():
        raise NCAError(f"cannot write {path}: it is a folder; give a file name")
    for parent in [where, *where.parents]:  # the nearest existing one must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise NCAError(f"cannot write under {parent}: it is a file, not a folder")
            break
    _mkdir(where)
    probe = None
    try:
        fd, probe = tempfile.mkstemp(dir=where, prefix=".nca-probe.", suffix=TEMP_SUFFIX)
        try:  # one byte, synced: an empty file needs no free block, so it would pass a full disk
            os.write(fd, b"\0")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise _os_error(path, e) from None
    finally:
        if probe is not None:
            try:
                os.unlink(probe)
            except OSError:
                pass


def clean_stale_temps(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Remove temporary files that ``atomic_write_bytes`` left for ``names`` in ``folder``
    when a process was killed mid-write (``.checkpoint.msgpack.abc123.tmp``: up to the
    size of a checkpoint each). Call it only while holding the folder (``claim_run_dir``):
    a running writer's temp file would be removed too. names may hold globs
    (``step_*.msgpack``). Returns the removed paths."""
    folder = Path(folder)
    removed = []
    for name in names:
        for p in folder.glob(f".{name}.*{TEMP_SUFFIX}") if folder.is_dir() else []:
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise _os_error(p, e, "remove") from None
    return removed


LOCK = ".nca-lock"


class RunDirLock:
    """An exclusive claim on a run folder (``claim_run_dir``); ``release()`` or use as a
    context manager. The OS drops the claim when the process dies (``flock``), so a
    killed run never leaves a folder that no one can take."""

    def __init__(self, folder: Path, fd: int):
        self.folder, self._fd = folder, fd

    def release(self) -> None:
        """Give the folder back and remove the lock file, so a refused or finished command
        leaves no ``.nca-lock`` behind (``train.py --out docs`` refused used to). It is
        unlinked while still held: a process that opened it meanwhile finds it gone
        (``claim_run_dir`` checks that the file it locked is still the one at the path)."""
        if self._fd is not None:
            try:
                os.unlink(self.folder / LOCK)
            except OSError:
                pass  # already gone, or a read-only folder: the flock still ends below
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def claim_run_dir(folder: Path, user: str = "training run") -> RunDirLock:
    """Create ``folder`` if needed and claim it for this process, atomically.

    Two runs started at once into the same folder: both may create it (``mkdir`` with
    ``exist_ok``), but only one gets the exclusive ``flock`` on ``folder/.nca-lock``; the
    other raises NCAError at once, before writing anything. Whoever holds the claim then
    checks the folder's contents (a run there already, the user's own files) knowing no
    other process of ours is writing to it. ``release()`` removes the lock file again.
    user: what holds such a claim, for the message ("training run", "report command").
    """
    import fcntl

    folder = Path(folder)
    _mkdir(folder)
    lock = folder / LOCK
    for _ in range(100):  # retried only if a releasing holder unlinked the file we opened
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, file_mode())
        except OSError as e:
            raise _os_error(folder, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            except OSError:
                pid = ""
            os.close(fd)
            who = f" (process {pid})" if pid.isdigit() else ""
            raise NCAError(f"{folder} is in use by another {user}{who}; wait for it to finish "
                           "or choose another folder (nothing was written)") from None
        except OSError as e:
            os.close(fd)
            raise _os_error(lock, e, "lock") from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # we locked a file its holder removed on release: lock the new one
    else:
        raise NCAError(f"cannot claim {folder}: its lock file keeps changing")
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the pid is only for the message above
    return RunDirLock(folder, fd)


REPORT_MARK = ".nca-report.json"


def claim_report_dir(folder: Path, command: str, settings: dict | None) -> RunDirLock:
    """Claim ``folder`` for a report ``command`` (``"dissect"``, ``"pca_report"``, ...) run
    with ``settings`` (JSON-able: the model(s) and every setting that changes the output);
    refuse (NCAError, one line, nothing written) a folder this report may not overwrite.

    A report folder is marked by ``.nca-report.json`` (``{"command", "settings"}``), written
    when it is claimed. The claim is granted for a new or empty folder (ignoring our lock,
    our temporary files and a bare mark a killed run left), and for a folder marked by the
    same command with the same settings: re-running replaces the report. It is refused for
    a folder marked by another command or other settings (another model's report: the
    default ``--out`` of scripts/dissect.py was once shared by every model), and for a
    folder holding files no report command marked (the user's own files, or a report from
    before marks existed). ``settings=None``: the command checks its own settings (a
    resumable pipeline such as selfish.py's); only the command must match. Held like a
    training run's claim (``claim_run_dir``: two commands never write one folder at once);
    ``release()`` (or ``with``) when the report is written.
    """
    import json

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NCAError(f"cannot write a report into {folder}: it is a file, not a folder")
    lock = claim_run_dir(folder, user="command")
    try:
        mark_path = folder / REPORT_MARK
        want = json.loads(json.dumps({"command": command, "settings": settings}, sort_keys=True, default=str))
        mark = None
        if mark_path.is_file():
            try:
                mark = json.loads(mark_path.read_text())
            except (OSError, ValueError):
                mark = {}
        others = sorted(p.name for p in folder.iterdir() if p.name not in (LOCK, REPORT_MARK)
                        and not (p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX)))
        if mark is not None and others:  # a bare mark (a run killed before writing) counts as empty
            if mark.get("command") != command:
                raise NCAError(f"{folder} holds a report of another command ({mark.get('command')!r}); "
                               "choose another output folder (nothing was overwritten)")
            if settings is not None and mark.get("settings") != want["settings"]:
                diff = _first_difference(mark.get("settings"), want["settings"])
                raise NCAError(f"{folder} holds a {command} report of other settings ({diff}); choose another "
                               "output folder, or delete that one (nothing was overwritten)")
        elif others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise NCAError(f"{folder} holds files this command did not write ({shown}); choose a new or empty "
                           "output folder (nothing was overwritten)")
        atomic_write_bytes(mark_path, (json.dumps(want, indent=1, sort_keys=True) + "\n").encode())
    except BaseException:
        lock.release()
        raise
    return lock


def _first_difference(old, new) -> str:
    """``model: 'distill:lizard/persistent' there, 'distill:lizard/regenerating' here``."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                return f"{k}: {old.get(k)!r} there, {new.get(k)!r} here"
    return "unreadable mark" if not isinstance(old, dict) else "settings differ"


def _is_key(x) -> bool:
    return isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_numpy(tree):
    def conv(x):
        if _is_key(x):
            return {"__prng_key__": np.asarray(jax.random.key_data(x))}
        return np.asarray(x)

    return jax.tree.map(conv, tree)


def _template_numpy(tree):
    """Like ``_to_numpy`` for a template whose leaves may be abstract (``jax.eval_shape``):
    zero-stride NumPy placeholders of the right shape and dtype, allocating nothing."""

    def conv(x):
        if isinstance(x, jax.ShapeDtypeStruct):
            if _is_key(x):
                data = jax.eval_shape(jax.random.key_data, x)
                return {"__prng_key__": np.broadcast_to(np.zeros((), data.dtype), data.shape)}
            return np.broadcast_to(np.zeros((), x.dtype), x.shape)
        return _to_numpy(x)

    return jax.tree.map(conv, tree, is_leaf=_is_key)


# flax.serialization's msgpack layout, written piece by piece (``_write_msgpack``): an
# array is an ext record (type 1) holding msgpack [shape, dtype name, raw bytes]; a NumPy
# scalar the same with type 3; arrays over 1 GiB are split into chunk records first.
_EXT_NDARRAY, _EXT_NPSCALAR = 1, 3
_MAX_CHUNK_BYTES = 2**30


def _ext_header(code: int, size: int) -> bytes:
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    if size in fixed:
        return struct.pack(">Bb", fixed[size], code)
    if size < 2**8:
        return struct.pack(">BBb", 0xC7, size, code)
    if size < 2**16:
        return struct.pack(">BHb", 0xC8, size, code)
    return struct.pack(">BIb", 0xC9, size, code)


def _bin_header(size: int) -> bytes:
    if size < 2**8:
        return struct.pack(">BB", 0xC4, size)
    if size < 2**16:
        return struct.pack(">BH", 0xC5, size)
    return struct.pack(">BI", 0xC6, size)


def _chunked(a: np.ndarray) -> dict:
    """flax's form of an array over ``_MAX_CHUNK_BYTES``: a dict of flat chunks."""
    per = max(1, _MAX_CHUNK_BYTES // a.dtype.itemsize)
    flat = a.reshape(-1)
    chunks = [flat[i:i + per] for i in range(0, flat.size, per)]
    return {"__msgpack_chunked_array__": True, "shape": {str(i): d for i, d in enumerate(a.shape)},
            "chunks": {str(i): c for i, c in enumerate(chunks)}}


def _write_msgpack(f, obj, sort_keys: bool = True) -> None:
    """Write ``obj`` (dicts, Python scalars, NumPy arrays and scalars) to the binary file f
    as ``flax.serialization.msgpack_serialize(obj)`` would encode it, without building
    the encoding in memory: an array's bytes go to the file straight from the array (a
    training checkpoint holds a 340 MB pool; encoding it whole took three copies)."""
    if isinstance(obj, dict):
        f.write(_map_header(len(obj)))
        # flax copies the tree first (jax.tree.map, which sorts keys), then chunks big
        # arrays: their chunk records keep insertion order.
        for k, v in sorted(obj.items()) if sort_keys else obj.items():
            f.write(msgpack.packb(k))
            _write_msgpack(f, v, sort_keys)
    elif isinstance(obj, np.ndarray) and obj.nbytes > _MAX_CHUNK_BYTES:
        _write_msgpack(f, _chunked(obj), sort_keys=False)
    elif isinstance(obj, (np.ndarray, np.generic)):
        a = np.asarray(obj)
        a = a if a.flags.c_contiguous else a.copy(order="C")  # (np.ascontiguousarray makes 0-d 1-d)
        if a.dtype.hasobject or a.dtype.isalignedstruct:
            raise NCAError(f"cannot save an array of dtype {a.dtype}")
        head = b"\x93" + msgpack.packb(list(a.shape)) + msgpack.packb(a.dtype.name) + _bin_header(a.nbytes)
        code = _EXT_NDARRAY if isinstance(obj, np.ndarray) else _EXT_NPSCALAR
        f.write(_ext_header(code, len(head) + a.nbytes) + head)
        f.write(memoryview(a.reshape(-1)).cast("B"))
    else:
        f.write(msgpack.packb(obj, strict_types=True))


def _map_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x80 | n])
    if n < 2**16:
        return struct.pack(">BH", 0xDE, n)
    return struct.pack(">BI", 0xDF, n)


def save_checkpoint(path: Path, state: dict) -> None:
    """Save a pytree of arrays (typed PRNG keys allowed) as msgpack, atomically.

    The file is flax's msgpack encoding (``flax.serialization.msgpack_restore`` reads it;
    tested byte for byte), streamed to disk array by array.
    """
    from flax import serialization  # here, not at import: flax costs every analysis script 0.3 s

    payload = {"format_version": FORMAT_VERSION, "state": serialization.to_state_dict(_to_numpy(state))}
    atomic_write_bytes(Path(path), lambda f: _write_msgpack(f, payload))


def _read_exact(f, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise EOFError(f"file ends {n - len(data)} bytes early")
    return data


def _unpack(f, fmt: str):
    return struct.unpack(fmt, _read_exact(f, struct.calcsize(fmt)))[0]


_UINT = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
_LEN = {0xC4: ">B", 0xC5: ">H", 0xC6: ">I", 0xC7: ">B", 0xC8: ">H", 0xC9: ">I", 0xD9: ">B", 0xDA: ">H",
        0xDB: ">I", 0xDC: ">H", 0xDD: ">I", 0xDE: ">H", 0xDF: ">I"}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


def _read_msgpack(f):
    """Read one value written by ``_write_msgpack`` (or flax) from the binary file f; an
    array is read straight into a new NumPy array (no copy of the file in memory)."""
    b = _read_exact(f, 1)[0]
    if b <= 0x7F or b >= 0xE0:
        return b if b <= 0x7F else b - 0x100
    if 0x80 <= b <= 0x8F or b in (0xDE, 0xDF):
        n = b & 0x0F if b <= 0x8F else _unpack(f, _LEN[b])
        return {_read_msgpack(f): _read_msgpack(f) for _ in range(n)}
    if 0x90 <= b <= 0x9F or b in (0xDC, 0xDD):
        n = b & 0x0F if b <= 0x9F else _unpack(f, _LEN[b])
        return [_read_msgpack(f) for _ in range(n)]
    if 0xA0 <= b <= 0xBF or b in (0xD9, 0xDA, 0xDB):
        n = b & 0x1F if b <= 0xBF else _unpack(f, _LEN[b])
        return _read_exact(f, n).decode()
    if b in (0xC0, 0xC2, 0xC3):
        return {0xC0: None, 0xC2: False, 0xC3: True}[b]
    if b in _UINT:
        return _unpack(f, _UINT[b])
    if b in (0xCA, 0xCB):
        return _unpack(f, ">f" if b == 0xCA else ">d")
    if b in (0xC4, 0xC5, 0xC6):
        return _read_exact(f, _unpack(f, _LEN[b]))
    if b in _FIXEXT or b in (0xC7, 0xC8, 0xC9):
        if b not in _FIXEXT:
            _unpack(f, _LEN[b])  # the length prefix: read past it (the array record says its size)
        code = _unpack(f, ">b")
        if code not in (_EXT_NDARRAY, _EXT_NPSCALAR):
            raise ValueError(f"unknown msgpack extension type {code}")
        if _read_exact(f, 1) != b"\x93":
            raise ValueError("malformed array record")
        shape, name = _read_msgpack(f), _read_msgpack(f)
        nbytes = _unpack(f, _LEN[_read_exact(f, 1)[0]])  # the bin record's header
        a = np.empty(shape, np.dtype(name))
        if a.nbytes != nbytes:
            raise ValueError(f"array record of {nbytes} bytes for shape {shape} {name}")
        if nbytes and f.readinto(memoryview(a.reshape(-1)).cast("B")) != nbytes:
            raise EOFError("file ends inside an array")
        return a if code == _EXT_NDARRAY else a[()]
    raise ValueError(f"unexpected msgpack byte 0x{b:02x}")


def _unchunked(tree):
    """Reassemble flax's chunked arrays (``_chunked``) in a read tree."""
    if not isinstance(tree, dict):
        return tree
    if tree.get("__msgpack_chunked_array__"):
        shape = tuple(tree["shape"][str(i)] for i in range(len(tree["shape"])))
        chunks = [tree["chunks"][str(i)] for i in range(len(tree["chunks"]))]
        return np.concatenate(chunks).reshape(shape)
    return {k: _unchunked(v) for k, v in tree.items()}


def load_checkpoint(path: Path, template: dict) -> dict:
    """Load a checkpoint into the structure (and shapes) of ``template``.

    template: arrays, or their shapes (``jax.eval_shape``: nothing is allocated for it).
    The file is read array by array into fresh arrays (no copy of the whole file).

    Raises NCAError for a missing, truncated or corrupt file, or one whose arrays do not
    match the template's shapes (e.g. a checkpoint from another config).
    """
    path = Path(path)
    if not path.is_file():
        raise NCAError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            payload = _unchunked(_read_msgpack(f))
            if f.read(1):
                raise ValueError("data after the end of the checkpoint")
        raw = payload["state"]
    except Exception as e:
        raise NCAError(f"checkpoint {path} is corrupt or truncated ({type(e).__name__}: {e}); "
                       "restore it from a copy or start a new run") from None
    from flax import serialization

    np_template = _template_numpy(template)
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
        if _is_key(t):
            return jax.random.wrap_key_data(np.asarray(r["__prng_key__"]))
        if isinstance(t, (jax.Array, jax.ShapeDtypeStruct)):
            return jax.numpy.asarray(r, dtype=t.dtype)
        return np.asarray(r, dtype=np.asarray(t).dtype)

    flat_t, treedef = jax.tree.flatten(template, is_leaf=_is_key)
    flat_r = treedef.flatten_up_to(restored)
    return jax.tree.unflatten(treedef, [back(t, r) for t, r in zip(flat_t, flat_r)])


# --------------------------------------------------------------------------- kept checkpoints
# Params along training (``Config.keep_checkpoints``) for training-dynamics analyses:
# ``run_dir/checkpoints/step_000100.msgpack`` holds ``{"params": ...}`` after step 100.

KEPT_DIR = "checkpoints"
KEEP_MODES = ("log", "none", "every:N", "log+every:N")


def log_spaced_steps(last: int, per_decade: int = 4) -> list[int]:
    """Steps ``round(10 ** (k / per_decade))`` <= last, and ``last`` itself: 1, 2, 3, 6, 10,
    18, 32, 56, 100, ... (4 per decade)."""
    steps, k = set(), 0
    while round(10 ** (k / per_decade)) <= last:
        steps.add(int(round(10 ** (k / per_decade))))
        k += 1
    return sorted(steps | ({last} if last >= 1 else set()))


def parse_keep(mode: str) -> tuple[bool, int | None]:
    """``keep_checkpoints`` -> (log-spaced?, every N steps or None).

    "log": step 0 and log-spaced steps; "none": nothing; "every:N": every N steps (dense,
    for training-dynamics curves); "log+every:N": the union of both.
    """
    def bad():
        return NCAError(f"keep_checkpoints must be one of {', '.join(KEEP_MODES)} (N >= 1), got {mode!r}")

    if not isinstance(mode, str):
        raise bad()
    if mode in ("log", "none"):
        return mode == "log", None
    log, _, every = mode.partition("+") if mode.startswith("log+") else ("", "", mode)
    if not every.startswith("every:"):
        raise bad()
    try:
        n = int(every[len("every:"):])
    except ValueError:
        raise bad() from None
    if n < 1:
        raise bad()
    return bool(log), n


def kept_steps(mode: str, last: int) -> list[int]:
    """The training steps whose params are kept under ``mode`` (``parse_keep``), up to
    ``last``: "log" = step 0 (the untrained init) and ``log_spaced_steps(last)``;
    "every:N" = 0, N, 2N, ... and ``last``; "log+every:N" = both; "none" = none."""
    log, every = parse_keep(mode)
    steps = set()
    if log:
        steps |= {0, *log_spaced_steps(last)}
    if every:
        steps |= set(range(0, last + 1, every)) | {last}
    return sorted(steps)


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


# --------------------------------------------------------------------------- params-only model folders
# A model without its training run: ``model.json`` (format, model config, target, grid and
# provenance) and ``params.msgpack`` (``{"params": ...}``), no optimiser state or pool. What
# ``nca.save_model`` writes for an imported model, so every script can load it by path.

MODEL_FILE = "model.json"
PARAMS_FILE = "params.msgpack"
MODEL_FORMAT = "nca-lens-model"


def is_model_folder(folder: Path) -> bool:
    return (Path(folder) / MODEL_FILE).is_file()


def save_model_folder(folder: Path, meta: dict, params) -> None:
    """Write a params-only model folder atomically, file by file (params first, so a
    ``model.json`` is only ever beside complete params).

    meta: JSON-ready (``{"model": {...}, "target": ..., "provenance": {...}}``). Refuses a
    folder that holds anything but a previous model folder (a run directory, a source's
    files): nothing is written into someone else's folder.
    """
    import json

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NCAError(f"cannot write model folder {folder}: a file of that name is in the way")
    if folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if p.name not in (MODEL_FILE, PARAMS_FILE))
        if foreign:
            raise NCAError(f"model folder {folder} already holds other files ({', '.join(foreign[:5])}); "
                           "choose an empty or new folder")
    check_writable(folder, folder=True)
    save_checkpoint(folder / PARAMS_FILE, {"params": params})
    text = json.dumps({"format": MODEL_FORMAT, "version": FORMAT_VERSION, **meta}, indent=2, sort_keys=True)
    atomic_write_bytes(folder / MODEL_FILE, (text + "\n").encode())


def read_json(path: Path, accept, not_what: str):
    """The JSON object in ``path``, checked by ``accept(obj)``: one NCAError line when it
    cannot be read (``cannot read PATH: ...``) or is not what was expected (``PATH
    <not_what>``, e.g. "is not a TF.js graph model (...)"). The readers of model files use it."""
    import json

    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise NCAError(f"cannot read {path}: {e}") from None
    if not accept(obj):
        raise NCAError(f"{path} {not_what}")
    return obj


def read_model_meta(folder: Path) -> dict:
    """The ``model.json`` of a params-only model folder (checked to be one)."""
    def accept(m) -> bool:
        return isinstance(m, dict) and m.get("format") == MODEL_FORMAT and isinstance(m.get("model"), dict)

    return read_json(Path(folder) / MODEL_FILE, accept,
                     f"is not an nca-lens model file (format {MODEL_FORMAT!r} with a model object)")

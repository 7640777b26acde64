"""Read a PyTorch ``torch.save`` file of tensors without PyTorch: our own reader of the format.

Since PyTorch 1.6, ``torch.save`` writes a zip archive: ``<name>/data.pkl`` is a pickle
(protocol 2) of the saved object, in which each tensor is a call of
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and each storage a
*persistent id* ``("storage", <dtype class>, key, location, numel)`` whose raw bytes are
the archive member ``<name>/data/<key>`` (little-endian unless ``<name>/byteorder`` says
otherwise). See the PyTorch serialization notes
(https://pytorch.org/docs/stable/notes/serialization.html).

The unpickler here resolves *only* those few names (tensor and parameter rebuilding,
storages of numeric dtypes, ``collections.OrderedDict``) and refuses every other global, so
a file cannot run code (pickle's known hazard; ``torch.load(weights_only=True)`` takes the
same approach). Tensors come back as NumPy arrays.

Also read: ``.npz`` archives (a dict of arrays, e.g. ``np.savez(path, **state_dict)``).
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

from ..errors import NCAError

# Storage classes a tensor's persistent id names -> NumPy dtype.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": None,  # no NumPy dtype: converted by hand (``_bfloat16``)
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    """``torch._utils._rebuild_tensor_v2``: a strided view of a flat storage, copied."""
    if not size:
        return np.array(storage[offset], copy=True)
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], tuple(size), tuple(s * item for s in stride))
    return np.array(view, copy=True)


def _rebuild_parameter(data, *_rest):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}


def _bfloat16(raw: bytes) -> np.ndarray:
    u = np.frombuffer(raw, np.uint16).astype(np.uint32) << 16
    return u.view(np.float32)


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, archive: zipfile.ZipFile, prefix: str, byteorder: str, path: Path):
        super().__init__(f)
        self.archive, self.prefix, self.byteorder, self.path = archive, prefix, byteorder, path
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise NCAError(f"{self.path}: refusing to load {module}.{name} (only tensors and dicts of "
                       "tensors are read; save the model's state_dict(), not the module)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise NCAError(f"{self.path}: unknown persistent id {pid!r:.60}")
        kind, key = pid[1], str(pid[2])
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            name = kind.name if isinstance(kind, _StorageType) else str(kind)
            if name not in _STORAGE_DTYPES:
                raise NCAError(f"{self.path}: unsupported storage type {name}")
            dtype = _STORAGE_DTYPES[name]
            if dtype is None:
                arr = _bfloat16(raw)
            else:
                arr = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<" if self.byteorder == "little" else ">"))
                arr = arr.astype(arr.dtype.newbyteorder("="))
            self.storages[key] = arr
        return self.storages[key]


def read_torch_zip(path: Path):
    """The object saved by ``torch.save`` at ``path`` (zip format), tensors as NumPy arrays."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            pkls = [n for n in z.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
            if len(pkls) != 1:
                raise NCAError(f"{path}: not a torch.save archive (no single <name>/data.pkl)")
            prefix = pkls[0][: -len("data.pkl")]
            names = set(z.namelist())
            byteorder = z.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
            with z.open(pkls[0]) as f:
                return _Unpickler(f, z, prefix, byteorder, path).load()
    except NCAError:
        raise
    except (zipfile.BadZipFile, pickle.UnpicklingError, KeyError, EOFError, ValueError, TypeError) as e:
        raise NCAError(f"{path}: cannot read as a PyTorch file ({type(e).__name__}: {e})") from None


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """A flat ``{name: array}`` from a ``torch.save`` file (.pth/.pt/.bin) or an ``.npz``.

    A saved checkpoint dict that holds the weights under ``state_dict`` / ``model`` /
    ``model_state_dict`` is unwrapped; ``module.`` prefixes (DataParallel) are kept (the
    layouts strip them).
    """
    path = Path(path)
    if not path.is_file():
        raise NCAError(f"model file not found: {path}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                obj = {k: z[k] for k in z.files}
        except Exception as e:
            raise NCAError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None
    elif zipfile.is_zipfile(path):
        obj = read_torch_zip(path)
    else:
        raise NCAError(f"{path}: not a zip-format torch.save file or .npz (files saved by PyTorch "
                       "< 1.6 are not read: re-save with a current torch, or np.savez the state_dict)")
    for wrapper in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            break
    if not isinstance(obj, dict):
        raise NCAError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors (a state_dict)")
    out = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not out:
        raise NCAError(f"{path}: holds no tensors (keys: {sorted(map(str, obj))[:10]})")
    return out

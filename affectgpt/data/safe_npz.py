"""Reading and writing the official npz files without trusting pickle.

The official label files (`label-6way.npz`, `label.npz`, `label_4way.npz`) and result files
(`name2reason`) store a dict inside a 0-d object array, i.e. a pickle. `np.load(allow_pickle=True)`
would execute whatever a downloaded file asks for, so `load_npz_object` parses the `.npy` member
itself and unpickles with an allow-list: numpy's array/dtype/scalar reconstruction and plain builtin
containers and values. Anything else is refused by name.
"""

from __future__ import annotations

import builtins
import importlib
import io
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy_format

from affectgpt.data.records import DataError

# (module, name) pairs an official npz may reference. numpy 1.x files say `numpy.core`, numpy 2.x
# files say `numpy._core`; both resolve to the same functions.
_NUMPY_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"),
}
_BUILTINS_ALLOWED = {
    "dict",
    "list",
    "tuple",
    "set",
    "frozenset",
    "str",
    "bytes",
    "bytearray",
    "int",
    "float",
    "complex",
    "bool",
    "slice",
    "range",
}
_OTHER_ALLOWED = {
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),  # how protocol-2 pickles spell a bytes object (ndarray state)
}


def _canonical_module(module: str) -> str:
    if module == "numpy.core" or module.startswith("numpy.core."):
        return "numpy._core" + module[len("numpy.core") :]
    return module


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, source: str):
        super().__init__(file, encoding="latin1")  # latin1: numpy's advice for py2-era arrays
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        canonical = _canonical_module(module)
        if canonical in ("builtins", "__builtin__") and name in _BUILTINS_ALLOWED:
            return getattr(builtins, name)
        if (canonical, name) in _NUMPY_ALLOWED or (canonical, name) in _OTHER_ALLOWED:
            return getattr(importlib.import_module(canonical), name)
        raise DataError(
            f"refusing to unpickle forbidden class {module}.{name} "
            "(only numpy arrays/scalars and builtin containers are allowed)",
            path=self._source,
        )


def _read_member(path: Path, key: str) -> bytes:
    if not path.is_file():
        raise DataError("npz file not found", path=path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            member = f"{key}.npy"
            if member not in members:
                found = sorted(m[:-4] if m.endswith(".npy") else m for m in members)
                raise DataError(f"missing key '{key}' (keys found: {found})", path=path)
            return archive.read(member)
    except DataError:
        raise
    except Exception as err:  # BadZipFile, zlib/CRC errors, truncated archives, ...
        raise DataError(f"corrupt or truncated npz while reading key '{key}': {err!r}", path=path) from err


def _parse_npy(raw: bytes, path: Path, key: str) -> Any:
    stream = io.BytesIO(raw)
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise DataError(f"key '{key}': unsupported .npy format version {version}", path=path)
        if not dtype.hasobject:
            stream.seek(0)
            return npy_format.read_array(stream, allow_pickle=False)
        array = _RestrictedUnpickler(stream, str(path)).load()
    except DataError:
        raise
    except Exception as err:  # truncated pickle, bad header, ...
        raise DataError(f"corrupt or truncated array for key '{key}': {err!r}", path=path) from err
    if not isinstance(array, np.ndarray) or tuple(array.shape) != tuple(shape):
        raise DataError(f"key '{key}': pickled payload is not the {shape} array its header declares", path=path)
    return array


def load_npz_object(path: str | Path, key: str) -> Any:
    """Return `key` of an official npz: the held object for a 0-d object array, else the array."""
    path = Path(path)
    array = _parse_npy(_read_member(path, key), path, key)
    if array.dtype.hasobject and array.ndim == 0:
        return array.item()
    return array


def load_npz_strings(path: str | Path, keys: Iterable[str]) -> dict[str, list[str]]:
    """Read plain unicode arrays (e.g. `-openset.npz`: `filenames`, `fileitems`) with no pickle at all."""
    path = Path(path)
    out: dict[str, list[str]] = {}
    for key in keys:
        raw = _read_member(path, key)
        try:
            array = npy_format.read_array(io.BytesIO(raw), allow_pickle=False)
        except ValueError as err:
            if "allow_pickle" in str(err):
                raise DataError(f"key '{key}' holds pickled objects, expected plain strings", path=path) from err
            raise DataError(f"corrupt or truncated array for key '{key}': {err!r}", path=path) from err
        except Exception as err:
            raise DataError(f"corrupt or truncated array for key '{key}': {err!r}", path=path) from err
        if array.dtype.kind not in ("U", "S"):
            raise DataError(f"key '{key}' has dtype {array.dtype}, expected strings", path=path)
        out[key] = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.reshape(-1).tolist()]
    return out


def save_npz_object(path: str | Path, **values: Any) -> None:
    """Write an npz in the official form: arrays as given, anything else (a dict) as a 0-d object array.

    The file is written to `path` exactly (np.savez would append `.npz` to a bare name).
    """
    arrays: dict[str, np.ndarray] = {}
    for key, value in values.items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
        else:
            holder = np.empty((), dtype=object)
            holder[()] = value
            arrays[key] = holder
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)

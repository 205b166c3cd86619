"""The restricted npz loader: official pickled label files load, anything else is refused by name."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from affectgpt.data.records import DataError
from affectgpt.data.safe_npz import load_npz_object, load_npz_strings, save_npz_object


def test_npz_object_roundtrip_and_strings(tmp_path):
    labels = {"00012": {"emo": "happy", "val": np.float64(1.5)}, "x": {"emo": np.int64(2), "arr": np.arange(3)}}
    save_npz_object(tmp_path / "label.npz", test_corpus=labels, plain=np.arange(4))
    loaded = load_npz_object(tmp_path / "label.npz", "test_corpus")
    assert list(loaded) == ["00012", "x"] and loaded["00012"]["val"] == 1.5
    assert loaded["x"]["emo"] == 2 and loaded["x"]["arr"].tolist() == [0, 1, 2]
    assert load_npz_object(tmp_path / "label.npz", "plain").tolist() == [0, 1, 2, 3]
    with pytest.raises(DataError, match=r"missing key 'test1_corpus'.*test_corpus"):
        load_npz_object(tmp_path / "label.npz", "test1_corpus")

    np.savez(tmp_path / "r-openset.npz", filenames=np.array(["00012", "b"]), fileitems=np.array(["[a, b]", "[]"]))
    got = load_npz_strings(tmp_path / "r-openset.npz", ["filenames", "fileitems"])
    assert got == {"filenames": ["00012", "b"], "fileitems": ["[a, b]", "[]"]}
    with pytest.raises(DataError, match="pickled objects"):
        load_npz_strings(tmp_path / "label.npz", ["test_corpus"])


def _npz_with_pickle(path: Path, key: str, payload: bytes, array: np.ndarray) -> None:
    """An npz whose member is a hand-made object-array .npy (header + the given pickle bytes)."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, np.lib.format.header_data_from_array_1_0(array))
    member.write(payload)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{key}.npy", member.getvalue())


def test_npz_legacy_numpy_core_pickle_loads(tmp_path):
    holder = np.empty((), dtype=object)
    holder[()] = {"a": {"val": np.float64(0.5)}}
    legacy = pickle.dumps(holder, protocol=2).replace(b"numpy._core.", b"numpy.core.")  # numpy 1.x spelling
    assert b"numpy.core.multiarray" in legacy
    _npz_with_pickle(tmp_path / "old.npz", "test_corpus", legacy, holder)
    assert load_npz_object(tmp_path / "old.npz", "test_corpus") == {"a": {"val": 0.5}}


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_npz_refuses_forbidden_class(tmp_path):
    marker = tmp_path / "pwned"
    holder = np.empty((), dtype=object)
    holder[()] = {"a": _Evil(marker)}
    _npz_with_pickle(tmp_path / "evil.npz", "name2reason", pickle.dumps(holder, protocol=3), holder)
    with pytest.raises(DataError, match=r"forbidden class (posix|nt|os)\.system") as err:
        load_npz_object(tmp_path / "evil.npz", "name2reason")
    assert "evil.npz" in str(err.value)
    assert not marker.exists()


def test_npz_truncated(tmp_path):
    path = tmp_path / "label.npz"
    save_npz_object(path, test_corpus={f"s{i}": {"val": float(i)} for i in range(200)})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="corrupt or truncated") as err:
        load_npz_object(path, "test_corpus")
    assert "label.npz" in str(err.value)

    holder = np.empty((), dtype=object)
    holder[()] = {"a": "b" * 100}
    _npz_with_pickle(tmp_path / "short.npz", "k", pickle.dumps(holder, protocol=3)[:40], holder)
    with pytest.raises(DataError, match=r"key 'k'.*short\.npz|short\.npz.*key 'k'"):
        load_npz_object(tmp_path / "short.npz", "k")
    with pytest.raises(DataError, match="not found"):
        load_npz_object(tmp_path / "absent.npz", "k")

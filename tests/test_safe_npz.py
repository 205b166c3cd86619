"""The restricted npz loader: official pickled label files load, anything else is refused by name."""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from collections import OrderedDict
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


# ---------------------------------------------------------------- every rejection path, with crafted files


def crafted_call(module: str, name: str, argument: str) -> bytes:
    """A protocol-2 pickle that calls module.name(argument) when loaded: GLOBAL, one-tuple, REDUCE, STOP."""
    text = argument.encode()
    return (
        b"\x80\x02c"
        + module.encode()
        + b"\n"
        + name.encode()
        + b"\n"
        + b"X"
        + len(text).to_bytes(4, "little")
        + text
        + b"\x85R."
    )


def _holder(value: object = None) -> np.ndarray:
    holder = np.empty((), dtype=object)
    holder[()] = value
    return holder


@pytest.mark.parametrize(
    "module, name, argument",
    [
        ("builtins", "eval", "open({marker!r}, 'w')"),  # a builtin, but not a container or value type
        ("__builtin__", "exec", "open({marker!r}, 'w')"),  # the protocol-2 spelling of builtins
        ("builtins", "getattr", "x"),
        ("os", "system", "touch {marker}"),
        ("subprocess", "getoutput", "touch {marker}"),
        ("numpy", "load", "{marker}"),  # an allowed module, a name that is not
        ("numpy.core.multiarray", "_get_ndarray_c_version", "x"),  # legacy spelling, not allowed either
        ("_codecs", "decode", "x"),
        ("collections", "defaultdict", "x"),
    ],
)
def test_forbidden_globals_are_refused_before_they_run(tmp_path, module, name, argument):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    _npz_with_pickle(path, "k", crafted_call(module, name, argument.format(marker=str(marker))), _holder())
    with pytest.raises(DataError, match=f"forbidden class {module}.{name}") as err:
        load_npz_object(path, "k")
    assert str(path) in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_builtin_containers_and_numpy_values_load(tmp_path, protocol):
    """Protocol 2 spells builtins `__builtin__` and bytes `_codecs.encode`; protocol 3 `builtins`;
    protocol 5 rebuilds numeric arrays through numpy's `_frombuffer`."""
    value = {
        "set": {1, 2},
        "frozen": frozenset({3}),
        "complex": complex(1, 2),
        "bytes": b"xy",
        "range": range(3),
        "slice": slice(1, 5),
        "ordered": OrderedDict(a=1),
        "bytearray": bytearray(b"z"),
        "tuple": (1, "a"),
        "array": np.arange(4, dtype=np.float32),
        "scalar": np.int32(7),
        "text": "happy",
    }
    if protocol == 2:
        del value["range"]  # protocol 2 spells it __builtin__.xrange (py2 name), which the allow-list does not hold
    payload = pickle.dumps(_holder(value), protocol=protocol)
    if protocol == 2:
        assert b"c__builtin__\nset" in payload and b"_codecs" in payload
    if protocol == 5:
        assert b"_frombuffer" in payload
    _npz_with_pickle(tmp_path / "ok.npz", "k", payload, _holder())
    got = load_npz_object(tmp_path / "ok.npz", "k")
    arrays = {"array", "scalar"}
    assert {k: v for k, v in got.items() if k not in arrays} == {k: v for k, v in value.items() if k not in arrays}
    assert isinstance(got["ordered"], OrderedDict)
    assert got["array"].dtype == np.float32 and got["array"].tolist() == [0, 1, 2, 3]
    assert got["scalar"].dtype == np.int32 and got["scalar"] == 7


def _npz_member(path: Path, key: str, member: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{key}.npy", member)
    return path


def test_bad_magic_and_unsupported_version(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array(header, np.arange(3))
    good = header.getvalue()
    for loader in (lambda p: load_npz_object(p, "k"), lambda p: load_npz_strings(p, ["k"])):
        with pytest.raises(DataError, match="key 'k'.*corrupt or truncated|corrupt or truncated.*key 'k'"):
            loader(_npz_member(tmp_path / "magic.npz", "k", b"\x93NOTPY" + good[6:]))
    with pytest.raises(DataError, match=r"key 'k': unsupported \.npy format version \(9, 0\)"):
        load_npz_object(_npz_member(tmp_path / "v9.npz", "k", good[:6] + b"\x09\x00" + good[8:]), "k")


def test_version_2_headers_load(tmp_path):
    for key, array in {"plain": np.arange(5), "objects": _holder({"a": "b"})}.items():
        member = io.BytesIO()
        np.lib.format.write_array(member, array, version=(2, 0), allow_pickle=True)
        assert member.getvalue()[6:8] == b"\x02\x00"
        _npz_member(tmp_path / f"{key}.npz", key, member.getvalue())
    assert load_npz_object(tmp_path / "plain.npz", "plain").tolist() == [0, 1, 2, 3, 4]
    assert load_npz_object(tmp_path / "objects.npz", "objects") == {"a": "b"}


@pytest.mark.parametrize(
    "declared, payload",
    [
        (np.empty(2, dtype=object), _holder({"a": 1})),  # header says (2,), the pickle holds a 0-d array
        (_holder(), {"a": 1}),  # header says a 0-d array, the pickle holds a bare dict
    ],
)
def test_payload_that_is_not_the_declared_array(tmp_path, declared, payload):
    _npz_with_pickle(tmp_path / "odd.npz", "k", pickle.dumps(payload, protocol=3), declared)
    with pytest.raises(DataError, match=rf"key 'k': pickled payload is not the {re.escape(str(declared.shape))} array"):
        load_npz_object(tmp_path / "odd.npz", "k")


def test_object_arrays_that_are_not_0d_and_plain_0d_arrays_stay_arrays(tmp_path):
    names = np.array(["a", "b"], dtype=object)
    save_npz_object(tmp_path / "x.npz", names=names, zero=np.array(5))
    got = load_npz_object(tmp_path / "x.npz", "names")
    assert isinstance(got, np.ndarray) and got.tolist() == ["a", "b"]
    zero = load_npz_object(tmp_path / "x.npz", "zero")
    assert isinstance(zero, np.ndarray) and zero.shape == () and zero.item() == 5


def test_strings_loader_rejections(tmp_path):
    np.savez(tmp_path / "ints.npz", names=np.arange(3))
    with pytest.raises(DataError, match="key 'names' has dtype int64, expected strings"):
        load_npz_strings(tmp_path / "ints.npz", ["names"])
    member = io.BytesIO()
    np.lib.format.write_array(member, np.array(["abc", "def"]))
    _npz_member(tmp_path / "short.npz", "names", member.getvalue()[:-5])
    with pytest.raises(DataError, match="corrupt or truncated array for key 'names'"):
        load_npz_strings(tmp_path / "short.npz", ["names"])
    with pytest.raises(DataError, match=r"missing key 'other' \(keys found: \['names'\]\)"):
        load_npz_strings(tmp_path / "short.npz", ["other"])
    with pytest.raises(DataError, match="not found"):
        load_npz_strings(tmp_path / "absent.npz", ["names"])


def test_strings_loader_decodes_bytes_and_flattens(tmp_path):
    np.savez(tmp_path / "s.npz", b=np.array([b"caf\xc3\xa9", b"x"]), grid=np.array([["a", "b"], ["c", "d"]]))
    assert load_npz_strings(tmp_path / "s.npz", ["b", "grid"]) == {"b": ["café", "x"], "grid": ["a", "b", "c", "d"]}


def test_not_a_zip(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(os.urandom(500))
    with pytest.raises(DataError, match="corrupt or truncated npz while reading key 'k'") as err:
        load_npz_object(path, "k")
    assert str(path) in str(err.value)


def test_save_writes_plain_arrays_unpickled_at_the_exact_path(tmp_path):
    path = tmp_path / "new" / "nested" / "name2reason"  # missing folders; no .npz suffix appended
    save_npz_object(path, name2reason={"s1": "a reason"}, names=np.array(["s1"]))
    save_npz_object(path, name2reason={"s2": "another"}, names=np.array(["s2"]))  # overwrites in place
    assert sorted(p.name for p in path.parent.iterdir()) == ["name2reason"]
    with np.load(path, allow_pickle=False) as plain:  # the array member needs no pickle at all
        assert plain["names"].tolist() == ["s2"]
    assert load_npz_object(path, "name2reason") == {"s2": "another"}

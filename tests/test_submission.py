"""MER2025 submission writer: official -openset.npz shape, read back with numpy alone, validated names."""

from __future__ import annotations

import numpy as np
import pytest

from affectgpt.labels.submission import read_candidates, write_submission
from evaluate import main as evaluate_main


def _candidates(tmp_path, names):
    path = tmp_path / "track_all_candidates.csv"
    path.write_text("name\n" + "".join(f"{n}\n" for n in names), encoding="utf-8")
    return path


def test_round_trip_plain_unicode_arrays(tmp_path):
    cands = _candidates(tmp_path, ["s2", "s1", "s3"])
    labels = {"s1": ["happy", "sad"], "s3": "[angry]", "s2": []}
    out = write_submission(tmp_path / "pred-openset.npz", labels, cands)
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["fileitems", "filenames"]
        assert npz["filenames"].dtype.kind == "U" and npz["fileitems"].dtype.kind == "U"
        assert npz["filenames"].tolist() == ["s2", "s1", "s3"]  # candidate order
        assert npz["fileitems"].tolist() == ["[]", "[happy, sad]", "[angry]"]


def test_missing_and_extra_names_are_named(tmp_path):
    cands = _candidates(tmp_path, ["a", "b", "c"])
    with pytest.raises(ValueError) as err:
        write_submission(tmp_path / "x-openset.npz", {"a": ["happy"], "zz": ["sad"]}, cands)
    text = str(err.value)
    assert "2 candidate name(s) have no prediction: b, c" in text
    assert "1 name(s) are not in the candidate list: zz" in text
    assert not (tmp_path / "x-openset.npz").exists()


def test_duplicate_candidates_rejected(tmp_path):
    with pytest.raises(Exception, match="duplicate candidate names: a"):
        read_candidates(_candidates(tmp_path, ["a", "b", "a"]))


def test_cli_writes_and_validates(tmp_path, capsys):
    cands = _candidates(tmp_path, ["n1", "n2"])
    labels = tmp_path / "MER2025OV-openset.csv"
    labels.write_text('name,openset\nn2,"[worried, sad]"\nn1,[happy]\n', encoding="utf-8")
    out = tmp_path / "sub-openset.npz"
    argv = ["submission", "--labels", str(labels), "--candidates", str(cands), "--out", str(out)]
    assert evaluate_main(argv) == 0
    with np.load(out, allow_pickle=False) as npz:
        assert dict(zip(npz["filenames"].tolist(), npz["fileitems"].tolist())) == {
            "n1": "[happy]",
            "n2": "[worried, sad]",
        }
    labels.write_text("name,openset\nn1,[happy]\n", encoding="utf-8")
    assert evaluate_main(argv[:-1] + [str(tmp_path / "bad-openset.npz")]) == 2
    assert "no prediction: n2" in capsys.readouterr().err
    assert not (tmp_path / "bad-openset.npz").exists()

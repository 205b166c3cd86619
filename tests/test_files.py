"""affectgpt.files: atomic replace, torn-line-tolerant JSONL, manifests (the one file-safety module)."""

import json
import logging

import pytest

from affectgpt.files import (
    JsonlError,
    ManifestError,
    append_jsonl,
    atomic_path,
    read_jsonl,
    repair_tail,
    rewrite_jsonl,
    verify_manifest,
    write_json_atomic,
    write_manifest,
    write_text_atomic,
)
from affectgpt.train import tracking


def test_atomic_path_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target, ".csv") as tmp:
        assert tmp.suffix == ".csv" and tmp.parent == tmp_path
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]  # no temporary left behind


def test_atomic_writes_replace_the_whole_file(tmp_path):
    target = tmp_path / "sub" / "x.json"
    write_json_atomic(target, {"a": 1, "é": "ü"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 1, "é": "ü"}
    write_text_atomic(target, "short")
    assert target.read_text() == "short"


def test_read_jsonl_drops_only_a_torn_last_line(tmp_path, caplog):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')  # a kill during the third append
    with caplog.at_level(logging.WARNING):
        assert read_jsonl(path) == [{"step": 1}, {"step": 2}]
    assert "torn last line" in caplog.text
    path.write_text('{"step": 1}\n{"step": \n{"step": 3}\n')  # damage in the middle is not a torn tail
    with pytest.raises(JsonlError, match="line 2"):
        read_jsonl(path)
    assert read_jsonl(tmp_path / "absent.jsonl") == []


def test_repair_tail_then_append_starts_on_a_fresh_line(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"name": "a"}\n{"name": "b", "resp')
    assert repair_tail(path) is True
    assert path.read_text() == '{"name": "a"}\n'
    assert repair_tail(path) is False  # nothing left to cut
    append_jsonl(path, [{"name": "b"}, {"name": "c"}])
    append_jsonl(path, {"name": "d"}, fsync=False)
    assert [r["name"] for r in read_jsonl(path)] == ["a", "b", "c", "d"]


def test_a_torn_training_log_line_does_not_block_resume(tmp_path):
    """Faults issue 3: the truncate-on-resume step read train_log.jsonl strictly and died on a torn line."""
    path = tmp_path / tracking.TRAIN_LOG_FILE
    path.write_text('{"step": 10}\n{"step": 20}\n{"step": 30}\n{"step": 4')
    tracking.truncate_jsonl(path, "step", 20)
    assert read_jsonl(path) == [{"step": 10}, {"step": 20}]
    assert path.read_text().endswith("\n")


def test_rewrite_jsonl_round_trips(tmp_path):
    path = tmp_path / "m.jsonl"
    rewrite_jsonl(path, [{"epoch": 1}, {"epoch": 2}])
    assert path.read_text() == '{"epoch": 1}\n{"epoch": 2}\n'


def test_manifest_detects_missing_truncated_and_corrupted_files(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"0123456789")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.txt").write_text("hello")
    manifest = write_manifest(tmp_path, "MANIFEST", format="test")
    assert set(manifest["files"]) == {"a.bin", "d/b.txt"} and manifest["format"] == "test"
    assert verify_manifest(tmp_path, "MANIFEST")["files"]["a.bin"]["bytes"] == 10
    (tmp_path / "a.bin").write_bytes(b"0123456780")  # same size, one byte flipped
    with pytest.raises(ManifestError, match="sha256"):
        verify_manifest(tmp_path, "MANIFEST")
    (tmp_path / "a.bin").write_bytes(b"01234")
    with pytest.raises(ManifestError, match="truncated"):
        verify_manifest(tmp_path, "MANIFEST")
    (tmp_path / "d" / "b.txt").unlink()
    with pytest.raises(ManifestError, match="missing"):
        verify_manifest(tmp_path, "MANIFEST")
    (tmp_path / "MANIFEST").write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable"):
        verify_manifest(tmp_path, "MANIFEST")
    with pytest.raises(ManifestError, match="not completely written"):
        verify_manifest(tmp_path, "OTHER")

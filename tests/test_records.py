"""records.py: the sample-name check every reader uses, DataError messages, the skip log, stream selection."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from affectgpt.data.records import (
    DataError,
    Record,
    SkipLog,
    check_sample_name,
    with_streams,
)

SOURCE = Path("/data/root/track2_train_mercaptionplus.csv")


@pytest.mark.parametrize(
    "name",
    [
        "sample_00000000",
        "00012",
        "Ses05F_impro01_F000",
        "test_dia0_utt0",
        "k5Y_838nuGo_1",
        "a.b",
        "..a",
        "a..",
        "name with spaces",
        "C",
        "ab:c",
    ],
)
def test_plain_file_names_pass_unchanged(name):
    assert check_sample_name(name, SOURCE) == name


@pytest.mark.parametrize(
    "name, why",
    [
        ("../outside/evil", "contains the path separator '/'"),
        ("sub/name", "contains the path separator '/'"),
        ("/etc/passwd", "an absolute path, not a file name"),
        ("\\\\server\\share", "an absolute path, not a file name"),
        ("\\evil", "an absolute path, not a file name"),
        ("C:evil", "starts with the drive prefix 'C:'"),  # drive-relative on Windows
        ("a:b", "starts with the drive prefix 'a:'"),
        ("..\\outside\\evil", "contains the path separator '\\\\'"),
        ("name\\sub", "contains the path separator '\\\\'"),
        (".", "'.' is a directory reference, not a file name"),
        ("..", "'..' is a directory reference, not a file name"),
        ("", "empty name"),
        ("evil\0.mp4", "contains a NUL byte"),
    ],
)
def test_unsafe_names_are_data_errors_naming_file_sample_and_reason(name, why):
    with pytest.raises(DataError) as err:
        check_sample_name(name, SOURCE)
    assert err.value.reason == f"unsafe sample name: {why}"
    assert err.value.path == str(SOURCE)
    assert str(SOURCE) in str(err.value) and why in str(err.value)


def test_unprintable_and_non_text_names_are_shown_escaped():
    with pytest.raises(DataError) as err:
        check_sample_name("evil\0x", SOURCE)
    assert err.value.sample == "'evil\\x00x'" and "\0" not in str(err.value)
    with pytest.raises(DataError) as err:
        check_sample_name(12, SOURCE)  # type: ignore[arg-type]
    assert err.value.reason == "unsafe sample name: a name must be text, got int" and err.value.sample == "12"


def test_data_error_message_names_sample_and_file():
    assert str(DataError("bad", sample="s1", path="/x/y.csv")) == "sample 's1', file /x/y.csv: bad"
    assert str(DataError("bad", sample="s1")) == "sample 's1': bad"
    assert str(DataError("bad", path=Path("/x"))) == "file /x: bad"
    assert str(DataError("bad")) == "bad"
    error = DataError("why", sample="s", path=Path("/p"))
    assert (error.reason, error.sample, error.path) == ("why", "s", "/p")
    assert DataError("why").path is None and isinstance(error, ValueError)


def test_skip_log_counts_keeps_five_examples_and_summarises(caplog):
    log = SkipLog()
    assert log.total == 0 and log.summary() == "skipped 0 samples"
    with caplog.at_level(logging.WARNING):
        for i in range(7):
            log.add(DataError("missing video file", sample=f"s{i}"))
    log.add(DataError("empty subtitle", sample="e"))
    assert log.total == 8 and log.counts == {"missing video file": 7, "empty subtitle": 1}
    assert log.examples["missing video file"] == [f"sample 's{i}': missing video file" for i in range(5)]
    assert log.summary() == "skipped 8 samples: 7 x missing video file; 1 x empty subtitle"
    assert "skipped sample 's6': missing video file" in caplog.text


def test_skip_log_absorb_raises_or_counts_and_merge_adds():
    log = SkipLog()
    error = DataError("unsafe sample name: empty name", sample="", path="/f.csv")
    with pytest.raises(DataError):
        log.absorb(error, "raise")
    assert log.total == 0
    log.absorb(error, "skip")
    assert log.counts == {"unsafe sample name: empty name": 1}
    other = SkipLog()
    other.add(DataError("empty subtitle", sample="a"))
    other.add(DataError("unsafe sample name: empty name", sample="b"))
    log.merge(other)
    assert log.counts == {"unsafe sample name: empty name": 2, "empty subtitle": 1} and log.total == 3
    assert log.examples["empty subtitle"] == ["sample 'a': empty subtitle"]
    assert len(log.examples["unsafe sample name: empty name"]) == 2
    # a merge takes at most five examples per reason from the other log, even one that holds more
    many = SkipLog()
    for part in range(2):
        five = SkipLog()
        for i in range(5):
            five.add(DataError("missing audio file", sample=f"p{part}s{i}"))
        many.merge(five)
    assert len(many.examples["missing audio file"]) == 10 and many.counts["missing audio file"] == 10
    fresh = SkipLog()
    fresh.merge(many)
    assert fresh.examples["missing audio file"] == [f"sample 'p0s{i}': missing audio file" for i in range(5)]


def test_with_streams_keeps_only_requested_files():
    record = Record("s", "d", video=Path("v.mp4"), audio=Path("a.wav"), face=Path("f.npy"), subtitle="hi")
    kept = with_streams(record, ["faces", "audio"])
    assert (kept.video, kept.audio, kept.face, kept.subtitle) == (None, Path("a.wav"), Path("f.npy"), "hi")
    assert record.video == Path("v.mp4")  # a copy: the original record is unchanged
    assert with_streams(record, iter(["frames"])).video == Path("v.mp4")
    with pytest.raises(DataError) as err:
        with_streams(Record("s", "d", audio=Path("a.wav")), ["faces", "audio", "frames"], " by the cache")
    assert str(err.value) == "sample 's': has no faces / frames file by the cache"

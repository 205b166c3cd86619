"""Dataset readers on tiny official-format folders (CSV + npz + empty placeholder media files).

Readers never decode media, so empty placeholder files are real enough; npz label files are written
in the official form (0-d object arrays holding a dict) with `save_npz_object`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectgpt.data.mer2025 import ReadReport, read_mer2025
from affectgpt.data.records import DataError, SkipLog
from affectgpt.data.safe_npz import save_npz_object
from affectgpt.data.sources import read_dataset
from affectgpt.data.unibench import (
    UNIBENCH,
    get_spec,
    ground_truth,
    read_unibench,
)


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


# ----------------------------------------------------------------------------------------- MER2025


def make_mer2025(root: Path, names=("00012", "sample_00000001", "sample_00000002")) -> Path:
    names = list(names)
    write_csv(
        root / "track2_train_mercaptionplus.csv",
        [
            {"name": names[0], "openset": "[happy, excited]"},
            {"name": names[1], "openset": "[]"},
            {"name": names[2], "openset": "['sad', \"angry\"]"},
        ],
    )
    write_csv(root / "track3_train_mercaptionplus.csv", [{"name": n, "reason": f"In the text, {n}."} for n in names])
    write_csv(root / "track2_train_ovmerd.csv", [{"name": names[0], "openset": "worried"}])
    write_csv(root / "track3_train_ovmerd.csv", [{"name": names[0], "reason": "In the text, worried."}])
    write_csv(root / "track_all_candidates.csv", [{"name": n} for n in names[:2]])
    write_csv(
        root / "subtitle_chieng.csv",
        [{"name": n, "chinese": f"中文{i}", "english": f"eng {i}"} for i, n in enumerate(names)],
    )
    for n in names:
        touch(root / "video" / f"{n}.mp4")
        touch(root / "audio" / f"{n}.wav")
        touch(root / "openface_face" / n / f"{n}.npy")
    return root


def test_mer2025_fields_and_string_names(tmp_path):
    root = make_mer2025(tmp_path)
    report = ReadReport()
    records = read_mer2025(root, report=report)
    assert [r.name for r in records] == ["00012", "sample_00000001", "sample_00000002"]
    first = records[0]
    assert isinstance(first.name, str) and first.name == "00012"
    assert first.dataset == "mercaptionplus"
    assert first.ovlabels == ["happy", "excited"]
    assert records[1].ovlabels == ["neutral"]  # official: empty list -> neutral
    assert records[2].ovlabels == ["sad", "angry"]
    assert first.description == "In the text, 00012."
    assert first.subtitle == "eng 0"
    assert first.video == root / "video" / "00012.mp4"
    assert first.audio == root / "audio" / "00012.wav"
    assert first.face == root / "openface_face" / "00012" / "00012.npy"
    assert report.listed == 3 and report.returned == 3 and report.skipped == 0

    chinese = read_mer2025(root, subtitle_language="chinese")
    assert chinese[1].subtitle == "中文1"


def test_mer2025_ovmerd_and_candidates(tmp_path):
    root = make_mer2025(tmp_path)
    ovmerd = read_mer2025(root, dataset="ovmerd")
    assert [(r.name, r.ovlabels, r.dataset) for r in ovmerd] == [("00012", ["worried"], "ovmerd")]
    candidates = read_mer2025(root, dataset="mer2025ov")
    assert [r.name for r in candidates] == ["00012", "sample_00000001"]
    assert candidates[0].ovlabels is None and candidates[0].description is None
    assert candidates[0].subtitle == "eng 0"


def test_mer2025_size_mismatch_is_a_warning(tmp_path, caplog):
    root = make_mer2025(tmp_path)
    report = ReadReport()
    with caplog.at_level(logging.WARNING):
        records = read_mer2025(root, report=report)
    assert len(records) == 3
    assert "3 samples listed, official size is 31327" in caplog.text
    assert report.expected == 31327 and not report.size_matches and report.warnings


def test_mer2025_missing_column_names_file_and_column(tmp_path):
    root = make_mer2025(tmp_path)
    write_csv(root / "track3_train_mercaptionplus.csv", [{"name": "00012", "description": "x"}])
    with pytest.raises(DataError) as err:
        read_mer2025(root, on_error="skip")
    message = str(err.value)
    assert "track3_train_mercaptionplus.csv" in message and "'reason'" in message and "description" in message


def test_mer2025_missing_csv(tmp_path):
    root = make_mer2025(tmp_path)
    (root / "subtitle_chieng.csv").unlink()
    with pytest.raises(DataError, match="subtitle_chieng.csv"):
        read_mer2025(root)


def test_mer2025_duplicate_names(tmp_path):
    root = make_mer2025(tmp_path)
    write_csv(
        root / "track2_train_mercaptionplus.csv",
        [
            {"name": "00012", "openset": "[a]"},
            {"name": "00012", "openset": "[b]"},
        ],
    )
    with pytest.raises(DataError, match=r"duplicate name\(s\) \[00012") as err:
        read_mer2025(root, on_error="skip")
    assert "track2_train_mercaptionplus.csv" in str(err.value)


@pytest.mark.parametrize("csv_name", ["track3_train_mercaptionplus.csv", "subtitle_chieng.csv"])
def test_mer2025_name_missing_from_other_csv(tmp_path, csv_name):
    root = make_mer2025(tmp_path)
    frame = pd.read_csv(root / csv_name, dtype=str)
    frame[frame["name"] != "sample_00000001"].to_csv(root / csv_name, index=False)
    with pytest.raises(DataError) as err:
        read_mer2025(root, on_error="raise")
    assert csv_name in str(err.value) and "sample_00000001" in str(err.value) and "1 in total" in str(err.value)

    skips = SkipLog()
    records = read_mer2025(root, on_error="skip", skips=skips)
    assert [r.name for r in records] == ["00012", "sample_00000002"]
    assert skips.total == 1 and skips.counts[f"missing from {csv_name}"] == 1


@pytest.mark.parametrize(
    "kind, relative",
    [("video", "video/{n}.mp4"), ("audio", "audio/{n}.wav"), ("face", "openface_face/{n}/{n}.npy")],
)
def test_mer2025_missing_media(tmp_path, kind, relative):
    root = make_mer2025(tmp_path)
    (root / relative.format(n="sample_00000002")).unlink()
    with pytest.raises(DataError) as err:
        read_mer2025(root, on_error="raise")
    assert err.value.sample == "sample_00000002" and err.value.reason == f"missing {kind} file"
    assert relative.format(n="sample_00000002") in str(err.value)

    skips = SkipLog()
    records = read_mer2025(root, on_error="skip", skips=skips)
    assert len(records) == 2 and skips.counts == {f"missing {kind} file": 1}
    assert len(read_mer2025(root, on_error="raise", check_media=False)) == 3


@pytest.mark.parametrize("bad_subtitle", ["", "   "])
def test_mer2025_empty_subtitle(tmp_path, bad_subtitle):
    root = make_mer2025(tmp_path)
    frame = pd.read_csv(root / "subtitle_chieng.csv", dtype=str, keep_default_na=False)
    frame.loc[frame["name"] == "00012", "english"] = bad_subtitle
    frame.to_csv(root / "subtitle_chieng.csv", index=False)  # "" is written as an empty (NaN) cell
    with pytest.raises(DataError) as err:
        read_mer2025(root, on_error="raise")
    assert err.value.sample == "00012" and "empty subtitle" in str(err.value)
    assert "subtitle_chieng.csv" in str(err.value)

    skips = SkipLog()
    assert [r.name for r in read_mer2025(root, skips=skips)] == ["sample_00000001", "sample_00000002"]
    assert skips.counts == {"empty subtitle": 1}

    report = ReadReport()
    records = read_mer2025(root, allow_empty_subtitle=True, report=report)
    assert records[0].subtitle == "" and report.empty_subtitles == ["00012"]


def test_mer2025_bad_arguments(tmp_path):
    root = make_mer2025(tmp_path)
    with pytest.raises(ValueError, match="on_error"):
        read_mer2025(root, on_error="ignore")
    with pytest.raises(ValueError, match="mer2025ov"):
        read_mer2025(root, dataset="mer2026")


# --------------------------------------------------------------------------------------- UniBench


def polish_csv(root: Path, names, filename="transcription-engchi-polish.csv") -> None:
    write_csv(root / filename, [{"name": n, "chinese": f"中{n}", "english": f"en {n}"} for n in names])


def media(root: Path, names, video_dir: str, ext=".mp4", audio_dir="audio") -> None:
    for n in names:
        touch(root / video_dir / f"{n}{ext}")
        touch(root / audio_dir / f"{n}.wav")
        touch(root / "openface_face" / f"{n}.npy")


def test_mer2023_split_probing_and_flat_faces(tmp_path):
    save_npz_object(
        tmp_path / "label-6way.npz",
        train_corpus={"sample_00000001": {"emo": "sad", "val": -1.0}},
        test1_corpus={"sample_00000010": {"emo": "happy", "val": 1.5}, "00012": {"emo": "Angry", "val": -2.0}},
    )
    polish_csv(tmp_path, ["sample_00000001", "sample_00000010", "00012"])
    media(tmp_path, ["sample_00000010"], "video", ".avi", audio_dir="subaudio")
    media(tmp_path, ["00012"], "video", ".mp4")
    records = read_unibench("mer2023", tmp_path)
    assert [(r.name, r.onehot, r.dataset) for r in records] == [
        ("sample_00000010", "happy", "MER2023"),
        ("00012", "angry", "MER2023"),
    ]
    assert records[0].video == tmp_path / "video" / "sample_00000010.avi"
    assert records[0].audio == tmp_path / "subaudio" / "sample_00000010.wav"
    assert records[1].video == tmp_path / "video" / "00012.mp4"
    assert records[1].audio == tmp_path / "audio" / "00012.wav"
    assert records[1].face == tmp_path / "openface_face" / "00012.npy"
    assert records[0].subtitle == "en sample_00000010"
    assert ground_truth(records, "discrete") == {"sample_00000010": "happy", "00012": "angry"}


def test_mer2024_uses_chinese_subtitles(tmp_path):
    save_npz_object(tmp_path / "label-6way.npz", train_corpus={}, test1_corpus={"s1": {"emo": "worried", "val": 0.0}})
    polish_csv(tmp_path, ["s1"], filename="transcription_merge.csv")
    media(tmp_path, ["s1"], "video")
    (record,) = read_dataset("MER2024", tmp_path)
    assert record.subtitle == "中s1" and record.onehot == "worried"


def test_meld_int_labels_map_to_words(tmp_path):
    save_npz_object(
        tmp_path / "label.npz",
        train_corpus={"train_dia0_utt0": {"emo": 0, "val": 0.0}},
        val_corpus={"dev_dia0_utt0": {"emo": 1, "val": 0.0}},
        test_corpus={f"test_dia0_utt{i}": {"emo": np.int64(i), "val": 0.0} for i in range(7)},
    )
    names = [f"test_dia0_utt{i}" for i in range(7)]
    polish_csv(tmp_path, names)
    media(tmp_path, names, "subvideo")
    records = read_unibench("MELD", tmp_path)
    assert [r.onehot for r in records] == ["anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise"]
    assert records[0].video == tmp_path / "subvideo" / "test_dia0_utt0.mp4"


def test_meld_index_out_of_range(tmp_path):
    save_npz_object(tmp_path / "label.npz", test_corpus={"t0": {"emo": 7}, "t1": {"emo": 1}})
    polish_csv(tmp_path, ["t0", "t1"])
    media(tmp_path, ["t0", "t1"], "subvideo")
    with pytest.raises(DataError, match=r"sample 't0'.*label\.npz.*index 7 out of range"):
        read_unibench("MELD", tmp_path)
    skips = SkipLog()
    assert [r.onehot for r in read_unibench("MELD", tmp_path, on_error="skip", skips=skips)] == ["joy"]
    assert skips.total == 1


def test_iemocap_session5_is_test(tmp_path):
    names = ["Ses01F_impro01_F000", "Ses05F_impro01_F000", "Ses05M_script02_M011", "Ses04M_impro03_M001"]
    save_npz_object(tmp_path / "label_4way.npz", whole_corpus={n: {"emo": i} for i, n in enumerate(names)})
    polish_csv(tmp_path, names)
    media(tmp_path, names, "subvideo-tgt", ".avi")
    records = read_unibench("iemocapfour", tmp_path)
    assert [(r.name, r.onehot) for r in records] == [
        ("Ses05F_impro01_F000", "sad"),
        ("Ses05M_script02_M011", "neutral"),
    ]
    assert records[0].video.suffix == ".avi" and records[0].video.parent.name == "subvideo-tgt"


@pytest.mark.parametrize(
    "name, video_dir",
    [
        ("CMUMOSI", "subvideo"),
        ("CMUMOSEI", "subvideo_new"),
        ("SIMS", "video"),
        ("SIMSv2", "video_new"),
    ],
)
def test_sentiment_sets(tmp_path, name, video_dir):
    save_npz_object(
        tmp_path / "label.npz",
        train_corpus={"tr": {"val": 1.0}},
        val_corpus={"va": {"val": 1.0}},
        test_corpus={"k5Y_838nuGo_1": {"val": np.float64(-1.2), "emo": 3}, "b": {"val": 0.6}},
    )
    polish_csv(tmp_path, ["k5Y_838nuGo_1", "b"])
    media(tmp_path, ["k5Y_838nuGo_1", "b"], video_dir)
    records = read_unibench(name, tmp_path)
    assert ground_truth(records, "dimension") == {"k5Y_838nuGo_1": -1.2, "b": 0.6}
    assert all(r.onehot is None for r in records)
    assert records[0].video == tmp_path / video_dir / "k5Y_838nuGo_1.mp4"


def test_ovmerdplus(tmp_path):
    write_csv(
        tmp_path / "ovlabel.csv",
        [{"name": "sample_00000007", "openset": "[relaxed, humorous]"}, {"name": "sample_00000008", "openset": ""}],
    )
    write_csv(
        tmp_path / "subtitle_eng.csv",
        [{"name": "sample_00000007", "sentence": "Ha ha."}, {"name": "sample_00000008", "sentence": "Fine."}],
    )
    media(tmp_path, ["sample_00000007", "sample_00000008"], "video")
    records = read_unibench("OVMERDPlus", tmp_path)
    assert ground_truth(records, "ovlabel") == {
        "sample_00000007": ["relaxed", "humorous"],
        "sample_00000008": ["neutral"],
    }
    assert records[0].subtitle == "Ha ha." and records[0].face == tmp_path / "openface_face" / "sample_00000007.npy"


def test_unibench_size_warning_and_empty_subtitles_are_counted(tmp_path, caplog):
    save_npz_object(tmp_path / "label.npz", test_corpus={"a": {"val": 1.0}, "b": {"val": -1.0}, "c": {"val": 0.5}})
    write_csv(
        tmp_path / "transcription-engchi-polish.csv",
        [
            {"name": "a", "chinese": "x", "english": "hello"},
            {"name": "b", "chinese": "y", "english": ""},
        ],
    )  # fmt: skip  (c has no row at all)
    media(tmp_path, ["a", "b", "c"], "video")
    report = ReadReport()
    with caplog.at_level(logging.WARNING):
        records = read_unibench("SIMS", tmp_path, report=report)
    assert [r.subtitle for r in records] == ["hello", "", ""]  # evaluation keeps every sample
    assert report.empty_subtitles == ["b", "c"] and report.listed == 3 and report.expected == 457
    assert "3 samples listed, official size is 457" in caplog.text
    assert "2 sample(s) have an empty subtitle" in caplog.text and "1 without a row" in caplog.text


@pytest.mark.parametrize(
    "kind, relative",
    [
        ("video", "video/b.mp4"),
        ("audio", "audio/b.wav"),
        ("face", "openface_face/b.npy"),
    ],
)
def test_unibench_missing_media(tmp_path, kind, relative):
    save_npz_object(tmp_path / "label.npz", test_corpus={"a": {"val": 1.0}, "b": {"val": -1.0}})
    polish_csv(tmp_path, ["a", "b"])
    media(tmp_path, ["a", "b"], "video")
    (tmp_path / relative).unlink()
    with pytest.raises(DataError) as err:
        read_unibench("SIMS", tmp_path)
    assert err.value.sample == "b" and f"missing {kind} file" in str(err.value) and relative in str(err.value)
    skips = SkipLog()
    assert [r.name for r in read_unibench("SIMS", tmp_path, on_error="skip", skips=skips)] == ["a"]
    assert skips.total == 1
    assert len(read_unibench("SIMS", tmp_path, check_media=False)) == 2


def test_spec_lookup_and_dispatch(tmp_path):
    assert list(UNIBENCH) == [
        "OVMERDPlus",
        "MER2023",
        "MER2024",
        "MELD",
        "IEMOCAPFour",
        "CMUMOSI",
        "CMUMOSEI",
        "SIMS",
        "SIMSv2",
    ]
    assert get_spec("simsv2").name == "SIMSv2" and get_spec("MELD").label_names[1] == "joy"
    with pytest.raises(ValueError, match=r"Did you mean 'CMUMOSEI'\?") as err:
        get_spec("CMU-MOSEI")
    assert "OVMERDPlus" in str(err.value)
    root = make_mer2025(tmp_path)
    assert len(read_dataset("OVMERD", root)) == 1
    with pytest.raises(ValueError, match="task"):
        ground_truth([], "regression")
    with pytest.raises(DataError, match="no discrete ground truth"):
        ground_truth(read_dataset("ovmerd", root), "discrete")

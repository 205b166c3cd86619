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
from affectgpt.data.unibench import (
    UNIBENCH,
    get_spec,
    ground_truth,
    read_dataset,
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
    write_csv(root / "track2_train_mercaptionplus.csv", [
        {"name": names[0], "openset": "[happy, excited]"},
        {"name": names[1], "openset": "[]"},
        {"name": names[2], "openset": "['sad', \"angry\"]"},
    ])  # fmt: skip
    write_csv(root / "track3_train_mercaptionplus.csv", [{"name": n, "reason": f"In the text, {n}."} for n in names])
    write_csv(root / "track2_train_ovmerd.csv", [{"name": names[0], "openset": "worried"}])
    write_csv(root / "track3_train_ovmerd.csv", [{"name": names[0], "reason": "In the text, worried."}])
    write_csv(root / "track_all_candidates.csv", [{"name": n} for n in names[:2]])
    write_csv(root / "subtitle_chieng.csv", [{"name": n, "chinese": f"中文{i}", "english": f"eng {i}"}
                                             for i, n in enumerate(names)])  # fmt: skip
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
    write_csv(root / "track2_train_mercaptionplus.csv", [
        {"name": "00012", "openset": "[a]"}, {"name": "00012", "openset": "[b]"},
    ])  # fmt: skip
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
        ("sample_00000010", "happy", "MER2023"), ("00012", "angry", "MER2023"),
    ]  # fmt: skip
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
        ("Ses05F_impro01_F000", "sad"), ("Ses05M_script02_M011", "neutral"),
    ]  # fmt: skip
    assert records[0].video.suffix == ".avi" and records[0].video.parent.name == "subvideo-tgt"


@pytest.mark.parametrize("name, video_dir", [
    ("CMUMOSI", "subvideo"), ("CMUMOSEI", "subvideo_new"), ("SIMS", "video"), ("SIMSv2", "video_new"),
])  # fmt: skip
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
    write_csv(tmp_path / "ovlabel.csv", [{"name": "sample_00000007", "openset": "[relaxed, humorous]"},
                                         {"name": "sample_00000008", "openset": ""}])  # fmt: skip
    write_csv(tmp_path / "subtitle_eng.csv", [{"name": "sample_00000007", "sentence": "Ha ha."},
                                              {"name": "sample_00000008", "sentence": "Fine."}])  # fmt: skip
    media(tmp_path, ["sample_00000007", "sample_00000008"], "video")
    records = read_unibench("OVMERDPlus", tmp_path)
    assert ground_truth(records, "ovlabel") == {"sample_00000007": ["relaxed", "humorous"],
                                                "sample_00000008": ["neutral"]}  # fmt: skip
    assert records[0].subtitle == "Ha ha." and records[0].face == tmp_path / "openface_face" / "sample_00000007.npy"


def test_unibench_size_warning_and_empty_subtitles_are_counted(tmp_path, caplog):
    save_npz_object(tmp_path / "label.npz", test_corpus={"a": {"val": 1.0}, "b": {"val": -1.0}, "c": {"val": 0.5}})
    write_csv(tmp_path / "transcription-engchi-polish.csv", [
        {"name": "a", "chinese": "x", "english": "hello"}, {"name": "b", "chinese": "y", "english": ""},
    ])  # fmt: skip  (c has no row at all)
    media(tmp_path, ["a", "b", "c"], "video")
    report = ReadReport()
    with caplog.at_level(logging.WARNING):
        records = read_unibench("SIMS", tmp_path, report=report)
    assert [r.subtitle for r in records] == ["hello", "", ""]  # evaluation keeps every sample
    assert report.empty_subtitles == ["b", "c"] and report.listed == 3 and report.expected == 457
    assert "3 samples listed, official size is 457" in caplog.text
    assert "2 sample(s) have an empty subtitle" in caplog.text and "1 without a row" in caplog.text


@pytest.mark.parametrize("kind, relative", [
    ("video", "video/b.mp4"), ("audio", "audio/b.wav"), ("face", "openface_face/b.npy"),
])  # fmt: skip
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
    assert list(UNIBENCH) == ["OVMERDPlus", "MER2023", "MER2024", "MELD", "IEMOCAPFour",
                              "CMUMOSI", "CMUMOSEI", "SIMS", "SIMSv2"]  # fmt: skip
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


# ------------------------------------------------------------------ verbatim text and pandas NA semantics


def test_mer2025_text_cells_are_verbatim(tmp_path):
    """The official datasets use row['english'] / row['reason'] as they are: no strip (prompt ids change)."""
    root = make_mer2025(tmp_path)
    write_csv(root / "subtitle_chieng.csv", [
        {"name": "00012", "chinese": " 中文 ", "english": "  Hello there.  "},
        {"name": "sample_00000001", "chinese": "x", "english": "Line one\nline two"},
        {"name": "sample_00000002", "chinese": "x", "english": " NA"},  # not exactly a pandas NA token: text
    ])  # fmt: skip
    write_csv(root / "track3_train_mercaptionplus.csv", [
        {"name": "00012", "reason": " In the text, he smiles. "},
        {"name": "sample_00000001", "reason": "In the text.\n"},
        {"name": "sample_00000002", "reason": "In the text, x."},
    ])  # fmt: skip
    records = read_mer2025(root, on_error="raise")
    assert [r.subtitle for r in records] == ["  Hello there.  ", "Line one\nline two", " NA"]
    assert [r.description for r in records] == [" In the text, he smiles. ", "In the text.\n", "In the text, x."]
    assert read_mer2025(root, subtitle_language="chinese")[0].subtitle == " 中文 "


NA_CELLS = {  # name -> subtitle cell as written in the CSV
    "s_na": "NA", "s_n_a": "N/A", "s_none": "None", "s_null": "null", "s_nan": "nan", "s_NULL": "NULL",
    "s_empty": "", "s_space": "   ", "s_text": "Fine.", "s_padded": " NA ", "s_word": "Nan bread",
}  # fmt: skip


def write_na_folder(root: Path) -> Path:
    names = list(NA_CELLS)
    write_csv(root / "track2_train_mercaptionplus.csv", [{"name": n, "openset": "[happy]"} for n in names])
    write_csv(root / "track3_train_mercaptionplus.csv", [{"name": n, "reason": "In the text."} for n in names])
    write_csv(root / "subtitle_chieng.csv", [{"name": n, "chinese": "x", "english": c} for n, c in NA_CELLS.items()])
    for n in names:
        touch(root / "video" / f"{n}.mp4")
    return root


def official_subtitles(path: Path, column: str) -> dict[str, str]:
    """The official reading: pandas defaults (default na_values), then NaN -> "" as the dataset classes do."""
    frame = pd.read_csv(path)
    return {name: ("" if pd.isna(cell) else cell) for name, cell in zip(frame["name"], frame[column])}


def test_subtitle_na_tokens_read_as_the_official_pandas_defaults(tmp_path, caplog):
    root = write_na_folder(tmp_path)
    official = official_subtitles(root / "subtitle_chieng.csv", "english")
    # the official rule by hand: exact pandas NA tokens become "", anything else (" NA ", "Nan bread") is text
    assert official == {**NA_CELLS, "s_na": "", "s_n_a": "", "s_none": "", "s_null": "", "s_nan": "", "s_NULL": ""}
    report = ReadReport()
    with caplog.at_level(logging.WARNING):
        records = read_mer2025(root, on_error="raise", check_media=False, allow_empty_subtitle=True, report=report)
    by_name = {r.name: r.subtitle for r in records}
    # verbatim official text, except that a whitespace-only subtitle is an empty one
    assert by_name == {n: (text if text.strip() else "") for n, text in official.items()}
    assert by_name["s_padded"] == " NA " and by_name["s_space"] == ""
    na_names = ["s_na", "s_n_a", "s_none", "s_null", "s_nan", "s_NULL"]  # "" was empty already
    assert report.na_text == {"subtitle_chieng.csv:english": na_names} and report.na_text_count == 6
    assert report.empty_subtitles == [*na_names, "s_empty", "s_space"]
    assert "mercaptionplus: 6 'english' cell(s) of subtitle_chieng.csv are pandas NA tokens" in caplog.text
    assert "[s_na, s_n_a, s_none" in caplog.text and "8 sample(s) with an empty subtitle are kept" in caplog.text

    skips = SkipLog()
    kept = read_mer2025(root, on_error="skip", skips=skips, check_media=False)  # training default: skip them
    assert [r.name for r in kept] == ["s_text", "s_padded", "s_word"] and skips.counts == {"empty subtitle": 8}


def test_na_tokens_in_descriptions_names_and_labels(tmp_path):
    root = make_mer2025(tmp_path, names=("NA", "null", "sample_00000002"))  # names stay names
    write_csv(root / "track2_train_mercaptionplus.csv", [
        {"name": "NA", "openset": "None"}, {"name": "null", "openset": "NA"},
        {"name": "sample_00000002", "openset": ""},
    ])  # fmt: skip
    write_csv(root / "track3_train_mercaptionplus.csv", [
        {"name": "NA", "reason": "In the text."}, {"name": "null", "reason": "In the text."},
        {"name": "sample_00000002", "reason": "N/A"},
    ])  # fmt: skip
    report, skips = ReadReport(), SkipLog()
    records = read_mer2025(root, skips=skips, report=report)
    # label cells keep being read as text: "None" is a label here, "" is the empty list -> neutral
    assert [(r.name, r.ovlabels) for r in records] == [("NA", ["None"]), ("null", ["NA"])]
    assert skips.counts == {"empty description (reason)": 1}
    assert report.na_text == {"track3_train_mercaptionplus.csv:reason": ["sample_00000002"]}


def test_unibench_subtitles_verbatim_with_na_tokens(tmp_path, caplog):
    save_npz_object(tmp_path / "label.npz", test_corpus={n: {"val": 1.0} for n in ("a", "b", "c", "d")})
    write_csv(tmp_path / "transcription-engchi-polish.csv", [
        {"name": "a", "chinese": "x", "english": " Hello. "}, {"name": "b", "chinese": "y", "english": "None"},
        {"name": "c", "chinese": "y", "english": "nan"}, {"name": "d", "chinese": "y", "english": " \t"},
    ])  # fmt: skip
    media(tmp_path, ["a", "b", "c", "d"], "video")
    report = ReadReport()
    with caplog.at_level(logging.WARNING):
        records = read_unibench("SIMS", tmp_path, report=report)
    assert [r.subtitle for r in records] == [" Hello. ", "", "", ""]
    assert report.na_text == {"transcription-engchi-polish.csv:english": ["b", "c"]}
    assert report.empty_subtitles == ["b", "c", "d"]
    assert "SIMS: 2 'english' cell(s) of transcription-engchi-polish.csv are pandas NA tokens" in caplog.text


def test_pandas_na_tokens_come_from_pandas():
    from pandas._libs.parsers import STR_NA_VALUES

    from affectgpt.data.mer2025 import PANDAS_NA_TOKENS, pandas_text

    assert PANDAS_NA_TOKENS == STR_NA_VALUES and {"NA", "N/A", "None", "null", "nan", ""} <= PANDAS_NA_TOKENS
    assert [pandas_text(t) for t in ("NA", " NA", "none", "<NA>", "text")] == ["", " NA", "none", "", "text"]


# ------------------------------------------------------------------------ the empty-subtitle policy


def test_load_records_passes_the_empty_subtitle_policy(tmp_path):
    from affectgpt.config import DataConfig, load_config
    from affectgpt.train.data import load_records

    root = make_mer2025(tmp_path)
    frame = pd.read_csv(root / "subtitle_chieng.csv", dtype=str, keep_default_na=False)
    frame.loc[frame["name"] == "sample_00000001", "english"] = "null"
    frame.to_csv(root / "subtitle_chieng.csv", index=False)
    cfg = DataConfig(root=str(root), val_dataset="ovmerd", empty_subtitles="keep")
    reports, skips = [], SkipLog()
    train, val = load_records(cfg, skips, reports)
    assert [r.name for r in train] == ["00012", "sample_00000001", "sample_00000002"] and skips.total == 0
    assert train[1].subtitle == "" and [r.name for r in val] == ["00012"]
    assert [r.dataset for r in reports] == ["mercaptionplus", "ovmerd"]
    assert reports[0].empty_subtitles == ["sample_00000001"] and reports[0].na_text_count == 1

    cfg.empty_subtitles = "skip"
    skips = SkipLog()
    train, _ = load_records(cfg, skips)
    assert [r.name for r in train] == ["00012", "sample_00000002"] and skips.counts == {"empty subtitle": 1}
    cfg.empty_subtitles = "drop"
    with pytest.raises(ValueError, match="data.empty_subtitles must be one of"):
        load_records(cfg, SkipLog())

    assert DataConfig().empty_subtitles == "skip"  # ours by default; the official recipe says "keep"
    official = load_config(Path(__file__).resolve().parents[1] / "configs" / "affectgpt_qwen2.5_7b.yaml")
    assert official.data.empty_subtitles == "keep"


# --------------------------------------------------------------- which file when several exist


def both_alternatives(root: Path, name: str, video_dir: str) -> None:
    for path in (f"{video_dir}/{name}.mp4", f"{video_dir}/{name}.avi", f"audio/{name}.wav",
                 f"subaudio/{name}.wav", f"openface_face/{name}.npy"):  # fmt: skip
        touch(root / path)


def test_meld_prefers_subaudio_and_iemocap_prefers_avi(tmp_path):
    meld, iemocap, mer2023 = tmp_path / "meld", tmp_path / "iemocap", tmp_path / "mer2023"
    save_npz_object(meld / "label.npz", test_corpus={"test_dia0_utt0": {"emo": 1}})
    polish_csv(meld, ["test_dia0_utt0"])
    both_alternatives(meld, "test_dia0_utt0", "subvideo")
    save_npz_object(iemocap / "label_4way.npz", whole_corpus={"Ses05F_impro01_F000": {"emo": 0}})
    polish_csv(iemocap, ["Ses05F_impro01_F000"])
    both_alternatives(iemocap, "Ses05F_impro01_F000", "subvideo-tgt")
    save_npz_object(mer2023 / "label-6way.npz", test1_corpus={"sample_1": {"emo": "happy"}})
    polish_csv(mer2023, ["sample_1"])
    both_alternatives(mer2023, "sample_1", "video")
    for check_media in (True, False):
        (m,) = read_unibench("MELD", meld, check_media=check_media)
        assert m.audio == meld / "subaudio" / "test_dia0_utt0.wav"
        assert m.video == meld / "subvideo" / "test_dia0_utt0.mp4"
        (i,) = read_unibench("IEMOCAPFour", iemocap, check_media=check_media)
        assert i.video == iemocap / "subvideo-tgt" / "Ses05F_impro01_F000.avi"
        assert i.audio == iemocap / "audio" / "Ses05F_impro01_F000.wav"
        (o,) = read_unibench("MER2023", mer2023, check_media=check_media)  # other sets: audio/ and .mp4 first
        assert (o.audio, o.video) == (mer2023 / "audio" / "sample_1.wav", mer2023 / "video" / "sample_1.mp4")
    # the alternative is still found when it is the only file
    (meld / "subaudio" / "test_dia0_utt0.wav").unlink()
    (iemocap / "subvideo-tgt" / "Ses05F_impro01_F000.avi").unlink()
    assert read_unibench("MELD", meld)[0].audio == meld / "audio" / "test_dia0_utt0.wav"
    assert read_unibench("IEMOCAPFour", iemocap)[0].video.suffix == ".mp4"


def test_ovmerdplus_names_come_from_the_subtitle_file(tmp_path, caplog):
    write_csv(tmp_path / "ovlabel.csv", [{"name": "gt_only", "openset": "[sad]"},
                                         {"name": "s2", "openset": "[angry]"},
                                         {"name": "s1", "openset": "[happy]"}])  # fmt: skip
    write_csv(tmp_path / "subtitle_eng.csv", [{"name": "s1", "sentence": "One."}, {"name": "s2", "sentence": "Two."},
                                              {"name": "sub_only", "sentence": "Three."}])  # fmt: skip
    media(tmp_path, ["s1", "s2", "sub_only", "gt_only"], "video")
    with pytest.raises(DataError) as err:
        read_unibench("OVMERDPlus", tmp_path)
    assert err.value.sample == "sub_only" and "no row in ovlabel.csv" in str(err.value)
    report, skips = ReadReport(), SkipLog()
    with caplog.at_level(logging.WARNING):
        records = read_unibench("OVMERDPlus", tmp_path, on_error="skip", skips=skips, report=report)
    assert [(r.name, r.ovlabels, r.subtitle) for r in records] == [("s1", ["happy"], "One."), ("s2", ["angry"], "Two.")]
    assert report.listed == 3 and skips.counts == {"no row in ovlabel.csv (no ground truth)": 1}
    assert "1 name(s) of ovlabel.csv are not in subtitle_eng.csv" in caplog.text
    assert "[gt_only (1 in total)]" in caplog.text


# ------------------------------------------------------------------------------ untrusted names


def outside_files(root: Path) -> Path:
    """Media for the name `../../outside/evil` where an unchecked reader would find it (outside `root`)."""
    outside = root.parent / "outside"
    for path in ("evil.mp4", "evil.wav", "evil.npy", "evil/"):
        (outside / path).parent.mkdir(parents=True, exist_ok=True)
        if path.endswith("/"):
            (outside / path).mkdir(exist_ok=True)
        else:
            touch(outside / path)
    for listed in ("video/evil.mp4", "audio/evil.wav"):  # the MER2025 reader checks listings by file name
        touch(root / listed)
    return outside


def assert_inside(records, root: Path) -> None:
    for record in records:
        for path in (record.video, record.audio, record.face):
            assert path is None or path.resolve().is_relative_to(root.resolve()), (record.name, path)


UNSAFE = ["../../outside/evil", "..\\..\\outside\\evil", "..", "sub/evil"]


@pytest.mark.parametrize("bad", UNSAFE + ["<absolute>"])
def test_mer2025_refuses_unsafe_names(tmp_path, bad):
    root = make_mer2025(tmp_path / "data" / "root")
    outside = outside_files(root)
    bad = str(outside / "evil") if bad == "<absolute>" else bad
    if bad.startswith(("../", "/")):  # the files an unchecked reader would open, outside the root, exist
        video = root / "video" / f"{bad}.mp4"
        assert video.is_file() and not video.resolve().is_relative_to(root)
        assert (root / "openface_face" / bad / f"{bad}.npy").is_file()
    for csv in ("track2_train_mercaptionplus.csv", "track_all_candidates.csv"):
        frame = pd.read_csv(root / csv, dtype=str, keep_default_na=False)
        frame.loc[1, "name"] = bad
        frame.to_csv(root / csv, index=False)
    for csv, column in (("track3_train_mercaptionplus.csv", "reason"), ("subtitle_chieng.csv", "english")):
        frame = pd.read_csv(root / csv, dtype=str, keep_default_na=False)
        pd.concat([frame, pd.DataFrame([{"name": bad, column: "In the text."}])]).to_csv(root / csv, index=False)
    for dataset, csv in (("mercaptionplus", "track2_train_mercaptionplus.csv"),
                         ("mer2025ov", "track_all_candidates.csv")):  # fmt: skip
        with pytest.raises(DataError) as err:
            read_mer2025(root, dataset=dataset, on_error="raise")
        assert err.value.sample == bad and err.value.path == str(root / csv)
        assert err.value.reason.startswith("unsafe sample name: ")
        for check_media in (True, False):
            skips = SkipLog()
            records = read_mer2025(root, dataset=dataset, skips=skips, check_media=check_media)
            assert bad not in [r.name for r in records] and len(records) >= 1
            assert skips.total == 1 and next(iter(skips.counts)).startswith("unsafe sample name")
            assert_inside(records, root)


@pytest.mark.parametrize("bad", UNSAFE + ["<absolute>"])
def test_unibench_refuses_unsafe_npz_keys_and_csv_names(tmp_path, bad):
    root = tmp_path / "data" / "root"
    outside = outside_files(root)
    bad = str(outside / "evil") if bad == "<absolute>" else bad
    save_npz_object(root / "label.npz", test_corpus={"a": {"val": 1.0}, bad: {"val": -1.0}})
    polish_csv(root, ["a", bad])
    media(root, ["a"], "video")
    for check_media in (True, False):
        with pytest.raises(DataError) as err:
            read_unibench("SIMS", root, check_media=check_media)
        assert err.value.sample == bad and err.value.path == str(root / "label.npz")
        skips = SkipLog()
        records = read_unibench("SIMS", root, on_error="skip", skips=skips, check_media=check_media)
        assert [r.name for r in records] == ["a"] and skips.total == 1
        assert_inside(records, root)

    write_csv(root / "ovlabel.csv", [{"name": "a", "openset": "[happy]"}, {"name": bad, "openset": "[sad]"}])
    write_csv(root / "subtitle_eng.csv", [{"name": "a", "sentence": "x"}, {"name": bad, "sentence": "y"}])
    with pytest.raises(DataError) as err:
        read_unibench("OVMERDPlus", root, check_media=False)
    assert err.value.sample == bad and err.value.path == str(root / "subtitle_eng.csv")
    assert [r.name for r in read_unibench("OVMERDPlus", root, on_error="skip")] == ["a"]


def test_iemocap_session_names_are_checked_too(tmp_path):
    save_npz_object(tmp_path / "label_4way.npz", whole_corpus={"Ses05/../../x": {"emo": 0}, "Ses05F_a": {"emo": 1}})
    polish_csv(tmp_path, ["Ses05F_a"])
    with pytest.raises(DataError, match=r"sample 'Ses05/\.\./\.\./x'.*label_4way\.npz.*unsafe sample name"):
        read_unibench("IEMOCAPFour", tmp_path, check_media=False)


# ------------------------------------------------------------------------------ malformed labels

MALFORMED = {"m1": "[happy", "m2": "happy]]", "m3": "['a'", "m4": "[[happy, sad]]", "m5": "happy; sad"}
WELL_FORMED = {"w1": "[a, b]", "w2": "a, b", "w3": "['a', 'b']", "w4": "[]"}


def test_mer2025_reports_malformed_label_cells(tmp_path, caplog):
    cells = {**WELL_FORMED, **MALFORMED}
    write_csv(tmp_path / "track2_train_mercaptionplus.csv", [{"name": n, "openset": c} for n, c in cells.items()])
    write_csv(tmp_path / "track3_train_mercaptionplus.csv", [{"name": n, "reason": "In the text."} for n in cells])
    write_csv(tmp_path / "subtitle_chieng.csv", [{"name": n, "chinese": "x", "english": "y"} for n in cells])
    report = ReadReport()
    with caplog.at_level(logging.WARNING):
        records = read_mer2025(tmp_path, on_error="raise", check_media=False, report=report)
    assert report.malformed_labels == {
        "m1": "unbalanced brackets (1 '[' and 0 ']')", "m2": "unbalanced brackets (0 '[' and 2 ']')",
        "m3": "unbalanced brackets (1 '[' and 0 ']')", "m4": "nested or repeated brackets",
        "m5": "separator ';' instead of ','",
    }  # fmt: skip
    assert "mercaptionplus: 5 malformed label cell(s) in track2_train_mercaptionplus.csv" in caplog.text
    assert "m1 (unbalanced brackets" in caplog.text and any("5 malformed" in w for w in report.warnings)
    # kept, parsed exactly as the official parser does (one leading '[' / trailing ']' dropped, split on ' " ,)
    parsed = {r.name: r.ovlabels for r in records}
    assert parsed == {"w1": ["a", "b"], "w2": ["a", "b"], "w3": ["a", "b"], "w4": ["neutral"], "m1": ["happy"],
                      "m2": ["happy]"], "m3": ["a"], "m4": ["[happy", "sad]"], "m5": ["happy; sad"]}  # fmt: skip


def test_ovmerdplus_reports_malformed_label_cells(tmp_path):
    write_csv(tmp_path / "ovlabel.csv", [{"name": "a", "openset": "[happy, sad"}, {"name": "b", "openset": "[calm]"}])
    write_csv(tmp_path / "subtitle_eng.csv", [{"name": "a", "sentence": "x"}, {"name": "b", "sentence": "y"}])
    report = ReadReport()
    records = read_unibench("OVMERDPlus", tmp_path, check_media=False, report=report)
    assert report.malformed_labels == {"a": "unbalanced brackets (1 '[' and 0 ']')"} and len(records) == 2
    assert records[0].ovlabels == ["happy", "sad"]

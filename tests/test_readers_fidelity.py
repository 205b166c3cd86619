"""Reader fidelity to the official loaders and untrusted input: verbatim CSV text with pandas' default NA
tokens, the empty-subtitle policy, which file wins when a release holds both alternatives, OV-MERD+ test
names, sample names that would escape the data root, and malformed label cells.

Expected values come from the official rules (reference "Corrections and additions": pandas defaults,
MELD subaudio/, IEMOCAP .avi, OV-MERD+ names from subtitle_eng.csv; §5.3 for label parsing), computed by
hand or, for the NA tokens, by reading the CSV with pandas' defaults as the official code does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from test_readers import make_mer2025, media, polish_csv, touch, write_csv

from affectgpt.data.mer2025 import ReadReport, read_mer2025
from affectgpt.data.records import DataError, SkipLog
from affectgpt.data.safe_npz import save_npz_object
from affectgpt.data.unibench import read_unibench

# ------------------------------------------------------------------ verbatim text and pandas NA semantics


def test_mer2025_text_cells_are_verbatim(tmp_path):
    """The official datasets use row['english'] / row['reason'] as they are: no strip (prompt ids change)."""
    root = make_mer2025(tmp_path)
    write_csv(
        root / "subtitle_chieng.csv",
        [
            {"name": "00012", "chinese": " 中文 ", "english": "  Hello there.  "},
            {"name": "sample_00000001", "chinese": "x", "english": "Line one\nline two"},
            {"name": "sample_00000002", "chinese": "x", "english": " NA"},  # not exactly a pandas NA token: text
        ],
    )
    write_csv(
        root / "track3_train_mercaptionplus.csv",
        [
            {"name": "00012", "reason": " In the text, he smiles. "},
            {"name": "sample_00000001", "reason": "In the text.\n"},
            {"name": "sample_00000002", "reason": "In the text, x."},
        ],
    )
    records = read_mer2025(root, on_error="raise")
    assert [r.subtitle for r in records] == ["  Hello there.  ", "Line one\nline two", " NA"]
    assert [r.description for r in records] == [" In the text, he smiles. ", "In the text.\n", "In the text, x."]
    assert read_mer2025(root, subtitle_language="chinese")[0].subtitle == " 中文 "


NA_CELLS = {  # name -> subtitle cell as written in the CSV
    "s_na": "NA",
    "s_n_a": "N/A",
    "s_none": "None",
    "s_null": "null",
    "s_nan": "nan",
    "s_NULL": "NULL",
    "s_empty": "",
    "s_space": "   ",
    "s_text": "Fine.",
    "s_padded": " NA ",
    "s_word": "Nan bread",
}


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
    write_csv(
        root / "track2_train_mercaptionplus.csv",
        [
            {"name": "NA", "openset": "None"},
            {"name": "null", "openset": "NA"},
            {"name": "sample_00000002", "openset": ""},
        ],
    )
    write_csv(
        root / "track3_train_mercaptionplus.csv",
        [
            {"name": "NA", "reason": "In the text."},
            {"name": "null", "reason": "In the text."},
            {"name": "sample_00000002", "reason": "N/A"},
        ],
    )
    report, skips = ReadReport(), SkipLog()
    records = read_mer2025(root, skips=skips, report=report)
    # label cells keep being read as text: "None" is a label here, "" is the empty list -> neutral
    assert [(r.name, r.ovlabels) for r in records] == [("NA", ["None"]), ("null", ["NA"])]
    assert skips.counts == {"empty description (reason)": 1}
    assert report.na_text == {"track3_train_mercaptionplus.csv:reason": ["sample_00000002"]}


def test_unibench_subtitles_verbatim_with_na_tokens(tmp_path, caplog):
    save_npz_object(tmp_path / "label.npz", test_corpus={n: {"val": 1.0} for n in ("a", "b", "c", "d")})
    write_csv(
        tmp_path / "transcription-engchi-polish.csv",
        [
            {"name": "a", "chinese": "x", "english": " Hello. "},
            {"name": "b", "chinese": "y", "english": "None"},
            {"name": "c", "chinese": "y", "english": "nan"},
            {"name": "d", "chinese": "y", "english": " \t"},
        ],
    )
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
    from affectgpt.data.sources import training_records

    root = make_mer2025(tmp_path)
    frame = pd.read_csv(root / "subtitle_chieng.csv", dtype=str, keep_default_na=False)
    frame.loc[frame["name"] == "sample_00000001", "english"] = "null"
    frame.to_csv(root / "subtitle_chieng.csv", index=False)
    cfg = DataConfig(root=str(root), val_dataset="ovmerd", empty_subtitles="keep")
    reports, skips = [], SkipLog()
    train, val = training_records(cfg, skips, reports)
    assert [r.name for r in train] == ["00012", "sample_00000001", "sample_00000002"] and skips.total == 0
    assert train[1].subtitle == "" and [r.name for r in val] == ["00012"]
    assert [r.dataset for r in reports] == ["mercaptionplus", "ovmerd"]
    assert reports[0].empty_subtitles == ["sample_00000001"] and reports[0].na_text_count == 1

    cfg.empty_subtitles = "skip"
    skips = SkipLog()
    train, _ = training_records(cfg, skips)
    assert [r.name for r in train] == ["00012", "sample_00000002"] and skips.counts == {"empty subtitle": 1}
    with pytest.raises(ValueError, match="data.empty_subtitles: 'drop' is not one of keep, skip"):
        load_config(overrides=["data.empty_subtitles=drop"])

    assert DataConfig().empty_subtitles == "skip"  # ours by default; the official recipe says "keep"
    official = load_config(Path(__file__).resolve().parents[1] / "configs" / "affectgpt_qwen2.5_7b.yaml")
    assert official.data.empty_subtitles == "keep"


# --------------------------------------------------------------- which file when several exist


def both_alternatives(root: Path, name: str, video_dir: str) -> None:
    for path in (
        f"{video_dir}/{name}.mp4",
        f"{video_dir}/{name}.avi",
        f"audio/{name}.wav",
        f"subaudio/{name}.wav",
        f"openface_face/{name}.npy",
    ):
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
    write_csv(
        tmp_path / "ovlabel.csv",
        [
            {"name": "gt_only", "openset": "[sad]"},
            {"name": "s2", "openset": "[angry]"},
            {"name": "s1", "openset": "[happy]"},
        ],
    )
    write_csv(
        tmp_path / "subtitle_eng.csv",
        [
            {"name": "s1", "sentence": "One."},
            {"name": "s2", "sentence": "Two."},
            {"name": "sub_only", "sentence": "Three."},
        ],
    )
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
    for dataset, csv in (
        ("mercaptionplus", "track2_train_mercaptionplus.csv"),
        ("mer2025ov", "track_all_candidates.csv"),
    ):
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
        "m1": "unbalanced brackets (1 '[' and 0 ']')",
        "m2": "unbalanced brackets (0 '[' and 2 ']')",
        "m3": "unbalanced brackets (1 '[' and 0 ']')",
        "m4": "nested or repeated brackets",
        "m5": "separator ';' instead of ','",
    }
    assert "mercaptionplus: 5 malformed label cell(s) in track2_train_mercaptionplus.csv" in caplog.text
    assert "m1 (unbalanced brackets" in caplog.text and any("5 malformed" in w for w in report.warnings)
    # kept, parsed exactly as the official parser does (one leading '[' / trailing ']' dropped, split on ' " ,)
    parsed = {r.name: r.ovlabels for r in records}
    assert parsed == {
        "w1": ["a", "b"],
        "w2": ["a", "b"],
        "w3": ["a", "b"],
        "w4": ["neutral"],
        "m1": ["happy"],
        "m2": ["happy]"],
        "m3": ["a"],
        "m4": ["[happy", "sad]"],
        "m5": ["happy; sad"],
    }


def test_ovmerdplus_reports_malformed_label_cells(tmp_path):
    write_csv(tmp_path / "ovlabel.csv", [{"name": "a", "openset": "[happy, sad"}, {"name": "b", "openset": "[calm]"}])
    write_csv(tmp_path / "subtitle_eng.csv", [{"name": "a", "sentence": "x"}, {"name": "b", "sentence": "y"}])
    report = ReadReport()
    records = read_unibench("OVMERDPlus", tmp_path, check_media=False, report=report)
    assert report.malformed_labels == {"a": "unbalanced brackets (1 '[' and 0 ']')"} and len(records) == 2
    assert records[0].ovlabels == ["happy", "sad"]

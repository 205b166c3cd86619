"""The wheel-file rules of reference §5.1-§5.4 on a tiny wheel folder written here, every table worked by hand.

The tiny folder is small enough that each mapping below is derived in a comment from the rules as written:
blank level1/level2 cells repeat the cell above; words are lower-cased and stripped; later rows overwrite
earlier ones; at L2 an L1 word maps to its alphabetically first L2 child; synonyms are the union over runs;
format forms map to their row name and a name to itself; M1 = alphabetically first y_f, M2 = alphabetically
first wheel word of that y_f, M3 = first (alphabetical) wheel word reachable from ALL y_f that the wheel has.
`write_tiny_wheel` is reused by tests/test_metrics_ew_rules.py.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from affectgpt.metrics.wheel import (
    DEMO_LABEL,
    DEMO_WHEEL_DIR,
    ENV_VAR,
    METRICS,
    WHEEL_FILES,
    WheelError,
    get_wheel,
    load_wheel,
    load_wheel_dir,
    read_formats,
    read_synonyms,
    read_wheel,
    resolve_wheel_dir,
    wheel_map,
)

N = None  # a blank (merged-style) cell
# W1-W4: (level1, level2, level3) rows. "pleased" is listed twice: the later row (sad/hurt) wins.
TINY_ROWS = [
    ("Happy", "joyful", "cheerful"),
    (N, N, " Glad "),
    (N, "content", "pleased"),
    ("sad", "lonely", "isolated"),
    (N, "hurt", "pleased"),
]
# W5: the same without the "glad" row, so M3 of a label reaching glad must fall back to its next word.
TINY_ROWS_W5 = [row for row in TINY_ROWS if row[2] != " Glad "]
# synonym.xlsx: two runs of different lengths (the shorter column is padded with blank cells).
TINY_SYNONYMS = {
    "word_run1": ["happy", "sad", "joyful", "pleased"],
    "synonym_run1": ["joy, delight", "unhappy", "joy", N],
    "word_run2": [" Sad ", "glad", N, N],
    "synonym_run2": ["sorrow, Unhappy", N, N, N],
}
# format.csv rows (name, format). "glad" lists "happy" as a form: the analogue of the official fearless/fear row.
TINY_FORMATS = [
    ("joy", "joys,joyfulness"),
    ("happy", "happier"),
    ("delight", "delighted, joys"),
    ("sad", ""),
    ("unhappy", "unhappily"),
    ("sorrow", "sorrows"),
    ("glad", "gladness,happy"),
    ("pleased", "pleasing"),
]


def _write_sheet(path: Path, rows: list[tuple]) -> None:
    pd.DataFrame(rows, columns=["level1", "level2", "level3"]).to_excel(path, sheet_name="Sheet1", index=False)


def write_tiny_wheel(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for w in (1, 2, 3, 4):
        _write_sheet(directory / f"wheel{w}.xlsx", TINY_ROWS)
    _write_sheet(directory / "wheel5.xlsx", TINY_ROWS_W5)
    pd.DataFrame(TINY_SYNONYMS).to_excel(directory / "synonym.xlsx", sheet_name="Sheet1", index=False)
    pd.DataFrame(TINY_FORMATS, columns=["name", "format"]).to_csv(directory / "format.csv", index=False)
    return directory


@pytest.fixture
def tiny(tmp_path: Path):
    return load_wheel_dir(write_tiny_wheel(tmp_path / "tiny"))


def test_wheel_rows_carry_blank_cells_and_are_normalised(tmp_path: Path) -> None:
    wheel = read_wheel(write_tiny_wheel(tmp_path / "w") / "wheel1.xlsx")
    assert wheel == {
        "happy": {"joyful": ["cheerful", "glad"], "content": ["pleased"]},
        "sad": {"lonely": ["isolated"], "hurt": ["pleased"]},
    }
    assert list(wheel["happy"]) == ["joyful", "content"]  # row order kept (the overwrites depend on it)


def test_wheel_maps_later_row_wins_and_l2_first_child(tiny) -> None:
    # L1: every word -> its L1; "pleased" first -> happy, then (later row) -> sad.
    assert tiny.wheel_maps["W1-L1"] == {
        "happy": "happy",
        "joyful": "happy",
        "cheerful": "happy",
        "glad": "happy",
        "content": "happy",
        "pleased": "sad",
        "sad": "sad",
        "lonely": "sad",
        "isolated": "sad",
        "hurt": "sad",
    }
    # L2: happy -> min(joyful, content) = content; sad -> min(lonely, hurt) = hurt; L2 words -> themselves.
    assert tiny.wheel_maps["W1-L2"] == {
        "happy": "content",
        "joyful": "joyful",
        "cheerful": "joyful",
        "glad": "joyful",
        "content": "content",
        "pleased": "hurt",
        "sad": "hurt",
        "lonely": "lonely",
        "isolated": "lonely",
        "hurt": "hurt",
    }
    assert "glad" not in tiny.wheel_maps["W5-L1"] and len(tiny.wheel_maps["W5-L1"]) == 9
    assert tiny.vocabulary == frozenset(tiny.wheel_maps["W1-L1"])  # union over wheels: W5 adds nothing


def test_wheel_map_overwrite_across_levels() -> None:
    # An L1 word that is also a later L3 leaf takes the later assignment; at L2 the same word is overwritten too.
    wheel = {"calm": {"peace": ["quiet"]}, "mad": {"rage": ["calm"]}}
    assert wheel_map(wheel, "L1") == {"calm": "mad", "peace": "calm", "quiet": "calm", "mad": "mad", "rage": "mad"}
    assert wheel_map(wheel, "L2") == {"calm": "rage", "peace": "peace", "quiet": "peace", "mad": "rage", "rage": "rage"}


def test_synonyms_union_over_runs(tiny) -> None:
    # run1 rows: happy<-joy,delight; sad<-unhappy; joyful<-joy; pleased (no synonym). run2: sad<-sorrow,unhappy; glad.
    assert tiny.raw_mapping == {
        "happy": ["happy"],
        "joy": ["happy", "joyful"],
        "delight": ["happy"],
        "sad": ["sad", "sad"],
        "unhappy": ["sad", "sad"],
        "joyful": ["joyful"],
        "pleased": ["pleased"],
        "sorrow": ["sad"],
        "glad": ["glad"],
    }


def test_formats_map_forms_and_names(tiny) -> None:
    assert tiny.format_mapping == {
        "joys": ["joy", "delight"],
        "joyfulness": ["joy"],
        "joy": ["joy"],
        "happier": ["happy"],
        "happy": ["happy", "glad"],
        "delighted": ["delight"],
        "delight": ["delight"],
        "sad": ["sad"],
        "unhappily": ["unhappy"],
        "unhappy": ["unhappy"],
        "sorrows": ["sorrow"],
        "sorrow": ["sorrow"],
        "gladness": ["glad"],
        "glad": ["glad"],
        "pleasing": ["pleased"],
        "pleased": ["pleased"],
    }


# label -> (M1, M2, W1-L1, W1-L2, W5-L1, W5-L2), each from the rules:
#   joys: y_f {joy, delight}; M1 = delight; M2 = min(raw[delight]) = happy; reachable {happy, joyful} -> happy
#   happy: y_f {happy, glad}; M1 = glad (the "fearless" analogue); M2 = glad; reachable {glad, happy}: W1 glad ->
#          happy/joyful, W5 has no glad -> happy -> happy/content
#   joyfulness: y_f {joy}; M2 = min(happy, joyful) = happy; reachable {happy, joyful} -> happy -> content at L2
#   unhappily: y_f {unhappy}; M2 = sad; -> sad/hurt.   pleasing: pleased -> sad/hurt (the later row)
TINY_TABLE = {
    "joys": ("delight", "happy", "happy", "content", "happy", "content"),
    "happy": ("glad", "glad", "happy", "joyful", "happy", "content"),
    "happier": ("happy", "happy", "happy", "content", "happy", "content"),
    "joyfulness": ("joy", "happy", "happy", "content", "happy", "content"),
    "gladness": ("glad", "glad", "happy", "joyful", "", ""),
    "unhappily": ("unhappy", "sad", "sad", "hurt", "sad", "hurt"),
    "sorrows": ("sorrow", "sad", "sad", "hurt", "sad", "hurt"),
    "sad": ("sad", "sad", "sad", "hurt", "sad", "hurt"),
    "pleasing": ("pleased", "pleased", "sad", "hurt", "sad", "hurt"),
    # wheel words without a format.csv row, and unknown words, map to nothing anywhere
    "isolated": ("", "", "", "", "", ""),
    "cheerful": ("", "", "", "", "", ""),
    "neutral": ("", "", "", "", "", ""),
}


@pytest.mark.parametrize("label", sorted(TINY_TABLE))
def test_m1_m2_m3_tables_by_hand(tiny, label: str) -> None:
    got = tuple(tiny.map_label(label, m) for m in ("M1", "M2", "W1-L1", "W1-L2", "W5-L1", "W5-L2"))
    assert got == TINY_TABLE[label]
    for w in (2, 3, 4):  # W2-W4 are copies of W1
        assert tiny.map_label(label, f"W{w}-L1") == TINY_TABLE[label][2]
        assert tiny.map_label(label, f"W{w}-L2") == TINY_TABLE[label][3]


def test_table_sizes(tiny) -> None:
    assert len(tiny.tables["M1"]) == len(tiny.tables["M2"]) == len(tiny.format_mapping) == 16
    assert all(len(tiny.tables[f"W{w}-L{lvl}"]) == 16 for w in (1, 2, 3, 4) for lvl in (1, 2))
    assert len(tiny.tables["W5-L1"]) == 14  # gladness and glad reach only "glad", absent from W5
    assert set(tiny.tables) == set(METRICS)


def test_names_and_demo_flag(tiny, tmp_path: Path) -> None:
    assert not tiny.is_demo and tiny.name == tiny.label == str(tmp_path / "tiny")
    demo = get_wheel(DEMO_WHEEL_DIR)
    assert demo.is_demo and demo.name == "demo" and demo.label == DEMO_LABEL
    copy = shutil.copytree(DEMO_WHEEL_DIR, tmp_path / "copy")
    assert not get_wheel(copy).is_demo  # a copy elsewhere is not "the demo"
    assert get_wheel(copy, is_demo=True).is_demo
    assert get_wheel(tmp_path / "tiny") is get_wheel(tmp_path / "tiny" / ".." / "tiny")


# ---------------------------------------------------------------- malformed files: clear errors naming the file


def test_missing_files_are_listed(tmp_path: Path) -> None:
    folder = write_tiny_wheel(tmp_path / "w")
    (folder / "wheel3.xlsx").unlink()
    (folder / "format.csv").unlink()
    with pytest.raises(WheelError, match=r"missing emotion-wheel files \['wheel3.xlsx', 'format.csv'\]"):
        load_wheel_dir(folder)


def test_sheet_errors(tmp_path: Path) -> None:
    with pytest.raises(WheelError, match="file not found"):
        read_wheel(tmp_path / "nope.xlsx")
    other = tmp_path / "other.xlsx"
    pd.DataFrame(TINY_ROWS, columns=["level1", "level2", "level3"]).to_excel(other, sheet_name="Data", index=False)
    with pytest.raises(WheelError, match=r"other.xlsx: cannot read sheet 'Sheet1'"):
        read_wheel(other)
    text = tmp_path / "text.xlsx"
    text.write_text("level1,level2,level3\n")
    with pytest.raises(WheelError, match=r"text.xlsx: cannot read sheet 'Sheet1'"):
        read_wheel(text)


def test_wheel_sheet_errors(tmp_path: Path) -> None:
    path = tmp_path / "wheel1.xlsx"
    pd.DataFrame({"level1": ["a"], "level3": ["b"]}).to_excel(path, sheet_name="Sheet1", index=False)
    with pytest.raises(WheelError, match=r"wheel1.xlsx: missing columns \['level2'\]"):
        read_wheel(path)
    _write_sheet(path, [("a", "b", "c"), (N, "x", N)])  # the second data row (sheet row 3) has no level3 word
    with pytest.raises(WheelError, match="wheel1.xlsx: row 3 has no level1/level2/level3 word"):
        read_wheel(path)
    _write_sheet(path, [(N, "b", "c")])  # nothing above to carry from
    with pytest.raises(WheelError, match="row 2 has no"):
        read_wheel(path)


def test_synonym_sheet_errors(tmp_path: Path) -> None:
    path = tmp_path / "synonym.xlsx"
    pd.DataFrame({"word_run1": ["happy"]}).to_excel(path, sheet_name="Sheet1", index=False)
    with pytest.raises(WheelError, match="expected column pairs word_runK, synonym_runK"):
        read_synonyms(path, {"happy"})
    pd.DataFrame({"word": ["happy"], "synonym": ["glad"]}).to_excel(path, sheet_name="Sheet1", index=False)
    with pytest.raises(WheelError, match="expected column pairs"):
        read_synonyms(path, {"happy"})
    sheet = pd.DataFrame({"word_run1": ["happy", "Gloomy"], "synonym_run1": ["glad", ""]})
    sheet.to_excel(path, sheet_name="Sheet1", index=False)
    with pytest.raises(WheelError, match="word_run1 row 3: 'gloomy' is not a word of any wheel"):
        read_synonyms(path, {"happy"})
    # a number is not a blank cell: it is read as its text and reported, never skipped silently
    numeric = pd.DataFrame({"word_run1": ["happy", 1.5], "synonym_run1": ["glad", "x"]})
    numeric.to_excel(path, sheet_name="Sheet1", index=False)
    with pytest.raises(WheelError, match="word_run1 row 3: '1.5' is not a word of any wheel"):
        read_synonyms(path, {"happy"})


def test_format_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(WheelError, match="format.csv: file not found"):
        read_formats(tmp_path / "format.csv")
    (tmp_path / "format.csv").write_text("word,forms\nhappy,happier\n")
    with pytest.raises(WheelError, match=r"expected columns name, format \(found \['word', 'forms'\]\)"):
        read_formats(tmp_path / "format.csv")
    # an empty name is ignored; "NA"-like strings are words, not missing values
    (tmp_path / "format.csv").write_text("name,format\n,ghost\nNA,n/a\n")
    assert read_formats(tmp_path / "format.csv") == {"n/a": ["na"], "na": ["na"]}


def test_format_names_must_be_synonym_keys(tmp_path: Path) -> None:
    folder = write_tiny_wheel(tmp_path / "w")
    rows = TINY_FORMATS + [("stranger", "")]
    pd.DataFrame(rows, columns=["name", "format"]).to_csv(folder / "format.csv", index=False)
    with pytest.raises(WheelError, match=r"names not found in synonym.xlsx .*\['stranger'\]$"):
        load_wheel_dir(folder)
    many = TINY_FORMATS + [(f"x{i:02d}", "") for i in range(21)]
    pd.DataFrame(many, columns=["name", "format"]).to_csv(folder / "format.csv", index=False)
    with pytest.raises(WheelError) as err:
        load_wheel_dir(folder)
    assert "'x19'" in str(err.value) and "'x20'" not in str(err.value) and str(err.value).endswith(" ...")
    twenty = TINY_FORMATS + [(f"x{i:02d}", "") for i in range(20)]
    pd.DataFrame(twenty, columns=["name", "format"]).to_csv(folder / "format.csv", index=False)
    with pytest.raises(WheelError) as err:
        load_wheel_dir(folder)
    assert str(err.value).endswith("'x19']")


# ---------------------------------------------------------------- resolution


def test_explicit_dir_wins_and_must_be_complete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(DEMO_WHEEL_DIR))
    tiny = write_tiny_wheel(tmp_path / "tiny")
    assert resolve_wheel_dir(tiny, allow_demo=True) == (tiny, False)
    assert resolve_wheel_dir(DEMO_WHEEL_DIR) == (DEMO_WHEEL_DIR, True)
    (tiny / "synonym.xlsx").unlink()
    with pytest.raises(WheelError, match=r"lacks \['synonym.xlsx'\]"):
        resolve_wheel_dir(tiny, allow_demo=True)  # never a silent fallback to the env var or the demo


def test_env_var_and_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    write_tiny_wheel(root / "emotion_wheel")
    monkeypatch.setenv(ENV_VAR, str(DEMO_WHEEL_DIR))
    assert resolve_wheel_dir(None, root) == (DEMO_WHEEL_DIR, True)  # the env var comes before the data root
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    assert resolve_wheel_dir(None, root) == (root / "emotion_wheel", False)  # an incomplete env dir is passed over
    monkeypatch.setenv(ENV_VAR, "")
    assert resolve_wheel_dir(None, root) == (root / "emotion_wheel", False)
    with pytest.raises(WheelError) as err:
        resolve_wheel_dir(None, None)
    message = str(err.value)
    assert f"${ENV_VAR} (not set)" in message and "<data root>/emotion_wheel (no data root given)" in message
    assert "opt in to the demo wheel" in message
    monkeypatch.delenv(ENV_VAR)
    wheel = load_wheel(None, root)
    assert wheel.directory == root / "emotion_wheel" and wheel.map_label("joys", "M1") == "delight"
    assert load_wheel(None, None, allow_demo=True).is_demo


def test_wheel_files_constant() -> None:
    assert WHEEL_FILES == tuple(f"wheel{w}.xlsx" for w in range(1, 6)) + ("synonym.xlsx", "format.csv")
    assert os.path.isdir(DEMO_WHEEL_DIR) and all((DEMO_WHEEL_DIR / name).is_file() for name in WHEEL_FILES)

"""Emotion-wheel tables from the official files (reference hooks H1-H4, §5.1-§5.4), resolution, demo wheel."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from affectgpt.metrics.wheel import (
    DEMO_WHEEL_DIR,
    ENV_VAR,
    METRICS,
    WheelError,
    get_wheel,
    load_wheel,
    load_wheel_dir,
    resolve_wheel_dir,
)
from affectgpt.resources.make_demo_wheel import write_demo_wheel

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "emotion_wheel"


@pytest.fixture(scope="module")
def wheel():
    return get_wheel(OFFICIAL)


def test_h1_vocabulary_sizes(wheel) -> None:
    assert len(wheel.vocabulary) == 253
    assert len(wheel.raw_mapping) == 1255
    assert len(wheel.format_mapping) == 7386
    assert sum(len(set(v)) > 1 for v in wheel.format_mapping.values()) == 887
    assert sum(len(set(v)) > 1 for v in wheel.raw_mapping.values()) == 431


def test_h2_group_counts_and_wheel_map_sizes(wheel) -> None:
    l1 = [len(wheel.wheels[w]) for w in range(1, 6)]
    l2 = [len({c for children in wheel.wheels[w].values() for c in children}) for w in range(1, 6)]
    assert l1 == [6, 7, 6, 6, 6] and l2 == [36, 41, 36, 48, 36]
    assert [len(wheel.wheel_maps[f"W{w}-L1"]) for w in range(1, 6)] == [114, 126, 78, 102, 77]
    assert [len(set(wheel.wheel_maps[f"W{w}-L1"].values())) for w in range(1, 6)] == l1
    assert [len(set(wheel.wheel_maps[f"W{w}-L2"].values())) for w in range(1, 6)] == l2


def test_coverage_of_the_7386_keys(wheel) -> None:
    sizes = [len(wheel.tables[f"W{w}-L1"]) for w in range(1, 6)]
    assert sizes == [4053, 4400, 3240, 4074, 3055]
    assert len(set(wheel.tables["M1"].values())) == 1213 and len(set(wheel.tables["M2"].values())) == 235


def test_h3_unmappable_labels(wheel) -> None:
    for label in ("neutral", "humorous", "xyzzy"):
        assert all(wheel.map_label(label, m) == "" for m in METRICS), label
    assert wheel.map_label("surprise", "W5-L1") == wheel.map_label("surprise", "W5-L2") == ""
    for metric in ("W3-L1", "W3-L2", "W5-L1", "W5-L2"):
        assert wheel.map_label("disgust", metric) == ""


def test_h4_tie_breaks(wheel) -> None:
    assert wheel.map_label("happy", "M1") == "happiness" and wheel.map_label("excited", "M1") == "excitable"
    assert wheel.map_label("happy", "M2") == "joy" and wheel.map_label("anxious", "M2") == "fear"
    assert wheel.map_label("fear", "W2-L1") == "happy" and wheel.map_label("fear", "W1-L1") == "scared"
    assert wheel.map_label("happy", "W1-L2") == "joyful" and wheel.map_label("joyful", "W1-L2") == "accepted"


# §5.4 "Selected mappings": label -> M1, M2, then W1..W5 as "L1/L2" ("-" = unmappable in that wheel).
SELECTED = {
    "happy": (
        "happiness",
        "joy",
        "happy/joyful",
        "happy/content",
        "joyful/cheerful",
        "joy/acceptance",
        "powerful/proud",
    ),
    "joyful": ("joy", "joy", "happy/accepted", "happy/accepted", "joyful/cheerful", "joy/acceptance", "powerful/proud"),
    "angry": ("anger", "anger", "mad/anger", "angry/aggressive", "mad/angry", "anger/aggressive", "mad/angry"),
    "anger": ("anger", "anger", "mad/anger", "angry/aggressive", "mad/angry", "anger/aggressive", "mad/angry"),
    "sad": ("sad", "depressed", "sad/depressed", "sad/depressed", "sad/depressed", "sad/disappointed", "sad/depressed"),
    "sadness": (
        "sad",
        "depressed",
        "sad/depressed",
        "sad/depressed",
        "sad/depressed",
        "sad/disappointed",
        "sad/depressed",
    ),
    "worried": (
        "worried",
        "anxious",
        "scared/anxious",
        "fearful/anxious",
        "scared/anxious",
        "fear/worried",
        "scared/anxious",
    ),
    "surprised": (
        "surprised",
        "amazed",
        "surprised/amazed",
        "surprised/amazed",
        "powerful/aware",
        "fear/surprised",
        "-",
    ),
    "fear": ("fear", "fear", "scared/fearful", "happy/powerful", "joyful/excited", "genius/embodied", "joyful/excited"),
    "frustrated": ("frustrated", "disappointed", "sad/hurt", "sad/hurt", "mad/angry", "sad/disappointed", "mad/angry"),
    "calm": ("calm", "calm", "happy/peaceful", "happy/peaceful", "peaceful/content", "joy/calm", "peaceful/content"),
    "disgust": ("disgust", "disgust", "disgusted/avoiding", "disgusted/awful", "-", "disgust/avoidance", "-"),
    "disgusted": ("disgust", "disgust", "disgusted/avoiding", "disgusted/awful", "-", "disgust/avoidance", "-"),
}


@pytest.mark.parametrize("label", sorted(SELECTED))
def test_selected_mappings_table(wheel, label: str) -> None:
    m1, m2, *per_wheel = SELECTED[label]
    assert wheel.map_label(label, "M1") == m1 and wheel.map_label(label, "M2") == m2
    for w, cell in enumerate(per_wheel, start=1):
        expected = ("", "") if cell == "-" else tuple(cell.split("/"))
        assert (wheel.map_label(label, f"W{w}-L1"), wheel.map_label(label, f"W{w}-L2")) == expected, (label, w)


def test_w2_overwrites_later_row_wins(wheel) -> None:
    level1, level2 = wheel.wheel_maps["W2-L1"], wheel.wheel_maps["W2-L2"]
    assert (level1["overwhelmed"], level2["overwhelmed"]) == ("bad", "stressed")
    assert (level1["embarrassed"], level2["embarrassed"]) == ("sad", "hurt")
    assert (level1["inferior"], level2["inferior"]) == ("sad", "depressed")
    assert (level1["disappointed"], level2["disappointed"]) == ("sad", "hurt")
    assert wheel.wheel_maps["W1-L2"]["mad"] == "aggressive"  # alphabetically first L2 child


def test_tables_are_cached_per_directory(wheel) -> None:
    assert get_wheel(OFFICIAL) is wheel
    assert get_wheel(str(OFFICIAL) + "/") is wheel


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dir, root = tmp_path / "env_wheel", tmp_path / "data"
    shutil.copytree(DEMO_WHEEL_DIR, env_dir)
    shutil.copytree(DEMO_WHEEL_DIR, root / "emotion_wheel")
    monkeypatch.setenv(ENV_VAR, str(env_dir))
    assert resolve_wheel_dir(OFFICIAL, root) == (OFFICIAL, False)
    assert resolve_wheel_dir(None, root) == (env_dir, False)
    monkeypatch.delenv(ENV_VAR)
    assert resolve_wheel_dir(None, root) == (root / "emotion_wheel", False)
    assert resolve_wheel_dir(None, tmp_path / "nowhere", allow_demo=True) == (DEMO_WHEEL_DIR, True)


def test_no_wheel_found_error_names_places_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(WheelError) as err:
        resolve_wheel_dir(None, tmp_path / "data")
    message = str(err.value)
    assert ENV_VAR in message and str(tmp_path / "missing") in message
    assert str(tmp_path / "data" / "emotion_wheel") in message
    assert "official OV-MER / AffectGPT repository" in message and "emotion_wheel/" in message


def test_explicit_incomplete_dir_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "format.csv").write_text("name,format\nhappy,happy\n")
    with pytest.raises(WheelError, match="wheel1.xlsx"):
        load_wheel(tmp_path, allow_demo=True)


def test_synonym_word_must_be_a_wheel_word(tmp_path: Path) -> None:
    shutil.copytree(DEMO_WHEEL_DIR, tmp_path / "w")
    sheet = pd.read_excel(tmp_path / "w" / "synonym.xlsx")
    sheet.loc[0, "word_run1"] = "notaword"
    sheet.to_excel(tmp_path / "w" / "synonym.xlsx", sheet_name="Sheet1", index=False)
    with pytest.raises(WheelError, match="'notaword' is not a word of any wheel"):
        load_wheel_dir(tmp_path / "w")


def test_demo_wheel_is_flagged_and_covers_the_demo_emotions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    demo = load_wheel(None, allow_demo=True)
    assert demo.is_demo and demo.name == "demo" and "not comparable" in demo.label
    words = (
        "happy excited sad lonely angry annoyed worried scared surprised disgusted joy anger sadness fear "
        "surprise disgust calm happiness afraid"
    ).split()
    for label in words:
        assert all(demo.map_label(label, m) for m in METRICS), label
    assert all(demo.map_label("neutral", m) == "" for m in METRICS)


def test_committed_demo_wheel_matches_its_script(tmp_path: Path) -> None:
    regenerated = load_wheel_dir(write_demo_wheel(tmp_path / "demo"))
    committed = load_wheel_dir(DEMO_WHEEL_DIR)
    assert regenerated.wheels == committed.wheels
    assert regenerated.tables == committed.tables
    assert (tmp_path / "demo" / "format.csv").read_text() == (DEMO_WHEEL_DIR / "format.csv").read_text()


def test_fearless_row_sends_fear_to_brave_words(wheel) -> None:
    # §5.4: format.csv's `fearless` row lists `fear` as a form, so "fear" also reaches fearless's wheel words
    # brave/courageous/daring, which sort before fearful/scared: M3 then lands there wherever the wheel has them.
    assert "fearless" in wheel.format_mapping["fear"]
    reachable = sorted({y_w for y_f in wheel.format_mapping["fear"] for y_w in wheel.raw_mapping[y_f]})
    assert {"brave", "courageous", "daring"} <= set(reachable) and reachable[0] == "brave"
    quirk = {"brave", "courageous", "daring"}
    for w in range(1, 6):
        first = next(y_w for y_w in reachable if y_w in wheel.wheel_maps[f"W{w}-L1"])
        assert (first in quirk) == (w != 1), (w, first)  # W1 has none of them: fear -> scared there (H4)
        for level in ("L1", "L2"):
            assert wheel.map_label("fear", f"W{w}-{level}") == wheel.wheel_maps[f"W{w}-{level}"][first]

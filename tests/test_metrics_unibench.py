"""MER-UniBench scoring through the dataset readers, on tiny official-format folders built here.

The folder builders are reused by tests/test_evaluate_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_metrics_examples import (
    E10_GT,
    E10_MSCORE,
    E10_PRED,
    E10_SCORE,
    E11_GT,
    E11_PRED,
    E11_SCORE,
    E12_ACC,
    E12_F1,
    E12_GT,
    E12_SENT,
    EW_EXAMPLES,
    TOL,
)
from test_metrics_wheel_files import write_tiny_wheel

from affectgpt.data.records import DataError
from affectgpt.data.safe_npz import save_npz_object
from affectgpt.metrics.unibench import (
    UNIBENCH_ORDER,
    DatasetScore,
    SentimentNeeded,
    dimension_score,
    hit_rate,
    score_dataset,
    sentiment_value,
    table_markdown,
    unibench_table,
)
from affectgpt.metrics.wheel import DEMO_LABEL, DEMO_WHEEL_DIR, get_wheel

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "emotion_wheel"
MELD_LABELS = ["anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise"]


def _subtitles(root: Path, names: list[str]) -> None:
    pd.DataFrame({"name": names, "chinese": "", "english": [f"line {n}" for n in names]}).to_csv(
        root / "transcription-engchi-polish.csv", index=False
    )


def build_mer2023(root: Path, gt: dict[str, str] = E10_GT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    test = {name: {"emo": emo, "val": 0.0} for name, emo in gt.items()}
    save_npz_object(root / "label-6way.npz", train_corpus={"t0": {"emo": "sad", "val": 0.0}}, test1_corpus=test)
    _subtitles(root, list(gt))
    return root


def build_meld(root: Path, gt: dict[str, str] = E11_GT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    test = {name: {"emo": MELD_LABELS.index(emo)} for name, emo in gt.items()}
    save_npz_object(root / "label.npz", train_corpus={}, val_corpus={}, test_corpus=test)
    _subtitles(root, list(gt))
    return root


def build_cmumosi(root: Path, gt: dict[str, float] = E12_GT) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    save_npz_object(root / "label.npz", test_corpus={name: {"val": val} for name, val in gt.items()})
    _subtitles(root, list(gt))
    return root


def build_ovmerdplus(root: Path, gt: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"name": list(gt), "openset": list(gt.values())}).to_csv(root / "ovlabel.csv", index=False)
    pd.DataFrame({"name": list(gt), "sentence": "hello"}).to_csv(root / "subtitle_eng.csv", index=False)
    return root


@pytest.fixture(scope="module")
def wheel():
    return get_wheel(OFFICIAL)


def test_e10_through_reader(tmp_path: Path, wheel) -> None:
    result = score_dataset("MER2023", build_mer2023(tmp_path / "mer2023"), wheel, openset=E10_PRED)
    assert result.dataset == "MER2023" and result.task == "discrete"
    assert abs(result.score - E10_SCORE) < TOL and abs(result.secondary["mscore"] - E10_MSCORE) < TOL
    assert (result.n_samples, result.n_skipped) == (6, 1)  # neutral is unmappable in every wheel


def test_e11_through_reader_with_integer_labels(tmp_path: Path, wheel) -> None:
    result = score_dataset("meld", build_meld(tmp_path / "meld"), wheel, openset=E11_PRED)
    assert result.dataset == "MELD" and abs(result.score - E11_SCORE) < TOL


def test_e12_through_reader(tmp_path: Path) -> None:
    result = score_dataset("CMUMOSI", build_cmumosi(tmp_path / "mosi"), sentiment=E12_SENT)
    assert abs(result.score - E12_F1) < TOL and abs(result.secondary["accuracy"] - E12_ACC) < TOL


def test_ovmerdplus_is_avg_l1_f(tmp_path: Path, wheel) -> None:
    gt, pred, _, summaries = EW_EXAMPLES["E2"]
    result = score_dataset("OVMERDPlus", build_ovmerdplus(tmp_path / "ov", gt), wheel, openset=pred)
    f, p, r = summaries["avg-L1"]
    assert abs(result.score - f) < TOL and abs(result.secondary["precision"] - p) < TOL
    assert abs(result.secondary["recall"] - r) < TOL


def test_empty_ovlabel_gt_becomes_neutral_and_is_skipped(tmp_path: Path, wheel) -> None:
    root = build_ovmerdplus(tmp_path / "ov", {"a": "[happy]", "b": ""})
    result = score_dataset("OVMERDPlus", root, wheel, openset={"a": "[happy]", "b": "[sad]"})
    assert result.score == 1.0 and result.n_skipped == 1


def test_dimension_needs_sentiment(tmp_path: Path, wheel) -> None:
    with pytest.raises(SentimentNeeded, match="sentiment extraction"):
        score_dataset("CMUMOSI", build_cmumosi(tmp_path / "mosi"), wheel, openset={"a": "[happy]"})


def test_missing_predictions_error_or_counted_empty(tmp_path: Path, wheel) -> None:
    root = build_mer2023(tmp_path / "mer2023")
    partial = {k: v for k, v in E10_PRED.items() if k not in ("a", "d")}
    with pytest.raises(DataError, match="2 GT name.*a, d"):
        score_dataset("MER2023", root, wheel, openset=partial)
    result = score_dataset("MER2023", root, wheel, openset={**partial, "zz": "[happy]"}, allow_missing=True)
    assert result.extra["missing_predictions"] == ["a", "d"] and result.extra["extra_predictions"] == ["zz"]
    # a and d were hits in W1-W4; counted as empty predictions they miss: W1 = 1/5 instead of 3/5
    assert abs(result.per_wheel["W1-L1"] - 0.2) < TOL
    assert any("no prediction" in note for note in result.notes)


def test_table_is_x100_with_mean() -> None:
    scores = {name: DatasetScore(name, "discrete", score=(i + 1) / 20) for i, name in enumerate(UNIBENCH_ORDER)}
    table = unibench_table(scores)
    assert list(table["scores_x100"]) == list(UNIBENCH_ORDER)
    assert table["scores_x100"]["MER2023"] == 5.0 and table["mean_x100"] == 25.0 and table["complete"]
    markdown = table_markdown(table)
    assert "| 5.00 | 10.00 |" in markdown and markdown.strip().endswith("| 25.00 |")
    partial = unibench_table({"MER2023": scores["MER2023"]})
    assert not partial["complete"] and "Mean (1/9)" in table_markdown(partial)


# ---------------------------------------------------------------- rules by hand on the tiny wheel (§4)
# Tiny-wheel L1 groups (tests/test_metrics_wheel_files.py): happy, joys, happier, pleasing -> happy except pleasing
# -> sad; sorrows, sad -> sad; gladness -> happy in W1-W4 and nothing in W5; neutral/isolated -> nothing anywhere.
HIT_GT = {"a": "happy", "b": "gladness", "c": "neutral", "d": "sorrows"}
HIT_PRED = {"a": "[joys]", "b": "[pleasing, joyfulness]", "c": "[happy]", "d": "[]"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return get_wheel(write_tiny_wheel(tmp_path_factory.mktemp("w") / "tiny"))


def test_hit_rate_by_hand(tiny) -> None:
    result = hit_rate(HIT_GT, HIT_PRED, tiny, ("neutral", "happy", "sad"), dataset="X")
    # W1-W4: a hit ({happy} & {happy}), b hit ({happy} & {sad, happy}), c skipped (neutral), d miss (empty) -> 2/3
    # W5: b's GT (gladness) maps to nothing -> skipped; a hit, d miss -> 1/2. Reported: mean over the 5 wheels.
    assert list(result.per_wheel) == [f"W{w}-L1" for w in range(1, 6)]
    assert [round(v, 12) for v in result.per_wheel.values()] == [round(2 / 3, 12)] * 4 + [0.5]
    assert abs(result.score - (4 * 2 / 3 + 0.5) / 5) < 1e-12  # 19/30; float sums of 5 terms: a few ulp
    assert result.extra["skipped_per_wheel"] == {"W1-L1": 1, "W2-L1": 1, "W3-L1": 1, "W4-L1": 1, "W5-L1": 2}
    assert (result.n_samples, result.n_scored, result.n_skipped) == (4, 3, 1)
    # mscore = |pred & gt| / |pred & candidates| (0 when that is empty), candidates {happy, sad} in every wheel:
    # W1-W4: a 1/1, b 1/2, d 0 -> 1/2; W5: a 1, d 0 -> 1/2
    assert abs(result.secondary["mscore"] - 0.5) < 1e-12
    assert (result.dataset, result.task, result.notes) == ("X", "discrete", [])
    assert result.extra["wheel"] == str(tiny.directory)


def test_hit_rate_without_candidates_has_no_mscore_and_a_wheel_with_nothing_kept_scores_zero(tiny) -> None:
    result = hit_rate({"b": "gladness"}, {"b": "[happy]"}, tiny)
    assert "mscore" not in result.secondary
    # W1-W4 hit; W5 keeps no sample (official 0/0 = NaN; 0.0 here, the project convention of reference §9)
    assert list(result.per_wheel.values()) == [1.0, 1.0, 1.0, 1.0, 0.0] and result.score == 0.8
    assert result.extra["skipped_per_wheel"]["W5-L1"] == 1 and result.n_skipped == 0
    with pytest.raises(KeyError, match="1 GT names have no prediction: b"):
        hit_rate({"b": "gladness"}, {}, tiny)


def test_hit_rate_demo_wheel_note() -> None:
    result = hit_rate({"a": "happy"}, {"a": "[happy]"}, get_wheel(DEMO_WHEEL_DIR))
    assert result.notes == [f"wheel: {DEMO_LABEL}"] and result.extra["wheel"] == "demo" and result.score == 1.0


def test_dimension_weighted_f1_differs_from_accuracy() -> None:
    gt = {"a": 0.5, "b": 1.2, "c": 3.0, "d": -0.2, "e": -2.0, "f": 0.0}
    result = dimension_score(gt, {n: "positive" for n in gt}, dataset="SIMS")
    # kept a..e: y_true T T T F F, y_pred all T. Accuracy 3/5. Class T: P 3/5 R 1 F1 3/4 (support 3);
    # class F: no TP -> F1 0 (support 2). Weighted F1 = (3 * 3/4 + 2 * 0) / 5 = 0.45.
    assert abs(result.score - 0.45) < 1e-12 and abs(result.secondary["accuracy"] - 0.6) < 1e-12
    assert (result.dataset, result.task) == ("SIMS", "dimension")
    assert (result.n_samples, result.n_scored, result.n_skipped) == (6, 5, 1)
    assert result.notes == ["1 sample(s) with GT valence 0 dropped (official)"]


def test_dimension_mapping_and_edge_cases() -> None:
    assert [sentiment_value(w) for w in ("positive", "negative", "neutral", "mixed", "Positive", None, 1)] == [
        1,
        -1,
        0,
        0,
        0,
        0,
        0,
    ]
    # a negative GT predicted "negative" is correct; neutral/other predictions count as non-positive
    result = dimension_score({"a": -1.0, "b": -0.5, "c": 2.0}, {"a": "negative", "b": "mixed", "c": "neutral"})
    assert result.secondary["accuracy"] == pytest.approx(2 / 3, abs=1e-12)
    assert result.notes[-1] == "sentiments other than positive/negative/neutral count as 0 (non-positive): ['mixed']"
    empty = dimension_score({"a": 0.0, "b": 0}, {"a": "positive", "b": "negative"})
    assert (empty.score, empty.secondary["accuracy"], empty.n_scored, empty.n_skipped) == (0.0, 0.0, 0, 2)
    assert empty.notes == [
        "2 sample(s) with GT valence 0 dropped (official)",
        "no sample with non-zero GT: scores set to 0.0",
    ]
    with pytest.raises(KeyError, match="1 GT names have no prediction: b"):
        dimension_score({"a": 1.0, "b": 0.0}, {"a": "positive"})  # checked before GT == 0 samples are dropped


def test_dataset_score_to_dict() -> None:
    score = DatasetScore(
        "MELD",
        "discrete",
        0.5,
        secondary={"mscore": 0.25},
        n_samples=3,
        n_scored=2,
        n_skipped=1,
        per_wheel={"W1-L1": 0.5},
        notes=["x"],
        extra={"wheel": "demo"},
    )
    assert score.to_dict() == {
        "dataset": "MELD",
        "task": "discrete",
        "score": 0.5,
        "mscore": 0.25,
        "n_samples": 3,
        "n_scored": 2,
        "n_skipped": 1,
        "per_wheel": {"W1-L1": 0.5},
        "notes": ["x"],
        "wheel": "demo",
    }


def test_dataset_score_defaults() -> None:
    assert DatasetScore("SIMS", "dimension", 0.25).to_dict() == {
        "dataset": "SIMS",
        "task": "dimension",
        "score": 0.25,
        "n_samples": 0,
        "n_scored": 0,
        "n_skipped": 0,
        "per_wheel": {},
        "notes": [],
    }


def test_score_dataset_needs_predictions_and_a_wheel(tmp_path: Path, tiny) -> None:
    mer = build_mer2023(tmp_path / "mer2023")
    with pytest.raises(ValueError, match="MER2023 needs an openset prediction file"):
        score_dataset("MER2023", mer, tiny)
    with pytest.raises(ValueError, match="the discrete score needs an emotion wheel"):
        score_dataset("MER2023", mer, None, openset=E10_PRED)
    ov = build_ovmerdplus(tmp_path / "ov", {"a": "[happy]"})
    with pytest.raises(ValueError, match="the OV score needs an emotion wheel"):
        score_dataset("OVMERDPlus", ov, None, openset={"a": "[happy]"})
    result = score_dataset("OVMERDPlus", ov, tiny, openset={"a": "[joys]"})
    assert result.score == 1.0 and result.extra["missing_predictions"] == [] and result.task == "ovlabel"


def test_table_rounding_order_partial_mean_and_markdown() -> None:
    scores = {
        "SIMS": DatasetScore("SIMS", "dimension", 0.987654),
        "MER2023": DatasetScore("MER2023", "discrete", 0.123456),
    }
    table = unibench_table(scores)
    # x100 with two decimals, in MER-UniBench order whatever the input order; the mean covers the scored sets
    assert list(table["scores_x100"].items()) == [("MER2023", 12.35), ("SIMS", 98.77)]
    assert table["mean_x100"] == 55.56  # (0.123456 + 0.987654) / 2 = 0.555555
    missing = ["MER2024", "MELD", "IEMOCAPFour", "CMUMOSI", "CMUMOSEI", "SIMSv2", "OVMERDPlus"]
    assert table["missing_datasets"] == missing and table["complete"] is False
    assert list(table["datasets"]) == ["MER2023", "SIMS"] and table["datasets"]["SIMS"]["score"] == 0.987654
    assert table_markdown(table) == (
        "| MER2023 | MER2024 | MELD | IEMOCAPFour | CMUMOSI | CMUMOSEI | SIMS | SIMSv2 | OVMERDPlus | Mean (2/9) |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        "| 12.35 | - | - | - | - | - | 98.77 | - | - | 55.56 |\n"
        "\n"
        "Not scored: MER2024, MELD, IEMOCAPFour, CMUMOSI, CMUMOSEI, SIMSv2, OVMERDPlus "
        "(the mean covers the scored datasets only)."
    )
    empty = unibench_table({})
    assert (empty["scores_x100"], empty["mean_x100"], empty["complete"]) == ({}, 0.0, False)
    assert empty["missing_datasets"] == list(UNIBENCH_ORDER) and "Mean (0/9)" in table_markdown(empty)


def test_complete_table_markdown_has_no_note() -> None:
    scores = {name: DatasetScore(name, "x", 0.5) for name in UNIBENCH_ORDER}
    markdown = table_markdown(unibench_table(scores))
    assert markdown.splitlines()[0].endswith("| OVMERDPlus | Mean |") and len(markdown.splitlines()) == 3
    assert markdown.splitlines()[2] == "| " + " | ".join(["50.00"] * 10) + " |"

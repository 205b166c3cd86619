"""MER-UniBench scoring through the dataset readers, on tiny official-format folders built here.

The folder builders are reused by tests/test_evaluate_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from affectgpt.data.records import DataError
from affectgpt.data.safe_npz import save_npz_object
from affectgpt.metrics.unibench import (
    UNIBENCH_ORDER,
    DatasetScore,
    SentimentNeeded,
    score_dataset,
    table_markdown,
    unibench_table,
)
from affectgpt.metrics.wheel import get_wheel
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

"""Worked examples E1-E12 of reference §9 through the Python API, with the official wheel files.

NaN cells of the official output are 0.0 here (documented deviation); values match to 4 decimals.
`EW_EXAMPLES`, `E10`..`E12` are reused by tests/test_evaluate_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from affectgpt.metrics.ew import ew_scores
from affectgpt.metrics.unibench import DISCRETE_CANDIDATES, dimension_score, hit_rate
from affectgpt.metrics.wheel import METRICS, get_wheel

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "emotion_wheel"
TOL = 5e-5  # four decimals

ALL = [1.0] * 12
# name -> (gt, pred, expected 12 F in OV-MER order, {summary: (F, P, R)} with None where not given)
EW_EXAMPLES: dict[str, tuple[dict, dict, list[float], dict]] = {
    "E1": (
        {"a": "[happy, excited]"},
        {"a": "[joyful]"},
        [0, 2 / 3, 2 / 3, 0, 1, 0, 1, 2 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3],
        {"avg-L1": (0.8, 1.0, 0.7), "avg-L2": (0.4, None, None)},
    ),
    "E2": (
        {"a": "[angry, frustrated]"},
        {"a": "[anger, annoyed, sad]"},
        [0.4, 0.4, 1, 0.4, 1, 0.5, 2 / 3, 2 / 3, 1, 0.8, 2 / 3, 2 / 3],
        {"avg-L1": (0.8667, 0.8, 1.0), "avg-L2": (0.6067, 0.5, 0.8)},
    ),
    "E3": ({"a": "[worried, nervous]"}, {"a": "[anxious]"}, [0, 0] + [1.0] * 10, {"avg-L1": (1.0, 1.0, 1.0)}),
    "E4": ({"a": "[happy]"}, {"a": "[]"}, [0.0] * 12, {"avg-L1": (0.0, 0.0, 0.0), "avg-L2": (0.0, 0.0, 0.0)}),
    "E5": ({"a": "[sad]"}, {"a": "[sadness, sad, humorous, xyzzy]"}, ALL, {"avg-L1": (1.0, 1.0, 1.0)}),
    "E6": (
        {"s1": "neutral", "s2": "[happy]", "s3": "[sad, angry]"},
        {"s1": "[calm]", "s2": "[happy, nervous]", "s3": "[sad]"},
        [0.75] * 12,
        {"avg-L1": (0.75, 0.75, 0.75), "avg-L2": (0.75, 0.75, 0.75)},
    ),
    "E7": ({"a": "[fear]"}, {"a": "[brave]"}, [0, 0, 0, 0] + [1.0] * 8, {"avg-L1": (0.8, 0.8, 0.8)}),
    "E8": ({"a": "['happy', 'sad']"}, {"a": "happy, sad"}, ALL, {"avg-L1": (1.0, 1.0, 1.0)}),
    "E9": (
        {"s1": "[happy]", "s2": "[sad, angry, worried]"},
        {"s1": "[happy, sad, angry, worried]", "s2": "[sad]"},
        [0.6452] * 12,
        {"avg-L1": (0.6452, 0.625, 2 / 3), "avg-L2": (0.6452, 0.625, 2 / 3)},
    ),
}
# Per-metric P and R stated by the reference (E6: 0.75 everywhere; E9: 0.625 / 0.6667 everywhere).
EW_PR = {"E6": (0.75, 0.75), "E9": (0.625, 2 / 3)}
EW_SKIPPED = {"E6": 1}

E10_GT = {"a": "happy", "b": "worried", "c": "neutral", "d": "angry", "e": "sad", "f": "surprise"}
E10_PRED = {
    "a": "[joyful, relaxed]",
    "b": "[calm]",
    "c": "[neutral]",
    "d": "[frustrated, annoyed]",
    "e": "[]",
    "f": "[surprised, happy]",
}
E10_WHEELS, E10_SCORE, E10_MSCORE = [0.6, 0.6, 0.6, 0.6, 0.5], 0.58, 0.44
E11_GT = {"a": "joy", "b": "disgust", "c": "fear", "d": "sadness"}
E11_PRED = {"a": "[happy]", "b": "[disgusted, angry]", "c": "[scared]", "d": "[lonely]"}
E11_WHEELS, E11_SCORE = [1.0, 0.75, 0.6667, 0.75, 0.6667], 0.7667
E12_GT = {"a": 2.4, "b": -1.2, "c": 0.0, "d": 0.6, "e": -0.4, "f": 1.0}
E12_SENT = {"a": "positive", "b": "negative", "c": "positive", "d": "neutral", "e": "mixed", "f": "positive"}
E12_ACC, E12_F1 = 0.8, 0.8


def check_ew(example: str, result: dict) -> None:
    """Assert one EW result dict (EWResult.to_dict() or the CLI JSON) against the reference example."""
    _, _, vector, summaries = EW_EXAMPLES[example]
    for metric, expected in zip(METRICS, vector):
        assert abs(result[metric]["f1"] - expected) < TOL, (example, metric, result[metric], expected)
    for key, triple in summaries.items():
        for field, expected in zip(("f1", "precision", "recall"), triple):
            if expected is not None:
                assert abs(result[key][field] - expected) < TOL, (example, key, field, result[key])
    if example in EW_PR:
        p, r = EW_PR[example]
        for metric in METRICS:
            assert abs(result[metric]["precision"] - p) < TOL and abs(result[metric]["recall"] - r) < TOL
    assert result["n_skipped"] == EW_SKIPPED.get(example, 0)
    assert abs(result["M-avg"] - sum(vector) / 12) < TOL


@pytest.fixture(scope="module")
def wheel():
    return get_wheel(OFFICIAL)


@pytest.mark.parametrize("example", sorted(EW_EXAMPLES))
def test_ew_worked_examples(example: str, wheel) -> None:
    gt, pred, _, _ = EW_EXAMPLES[example]
    result = ew_scores(gt, pred, wheel)
    check_ew(example, result.to_dict())
    assert result.n_samples == len(gt)
    assert result.to_dict()["wheel"] == str(wheel.directory)


def test_e2_wheel_average_is_mean_of_f_not_f_of_means(wheel) -> None:
    gt, pred, _, _ = EW_EXAMPLES["E2"]
    avg = ew_scores(gt, pred, wheel).wheel_average("L1")
    f_of_means = 2 * avg.precision * avg.recall / (avg.precision + avg.recall)
    assert abs(f_of_means - 0.8889) < TOL and abs(avg.f1 - 0.8667) < TOL


def test_e6_neutral_skipped_everywhere(wheel) -> None:
    gt, pred, _, _ = EW_EXAMPLES["E6"]
    result = ew_scores(gt, pred, wheel)
    assert all(result.scores[m].n_skipped == 1 and result.scores[m].n_scored == 2 for m in METRICS)


def test_e10_hit_rate(wheel) -> None:
    result = hit_rate(E10_GT, E10_PRED, wheel, DISCRETE_CANDIDATES["MER2023"])
    assert [round(v, 4) for v in result.per_wheel.values()] == E10_WHEELS
    assert abs(result.score - E10_SCORE) < TOL
    assert abs(result.secondary["mscore"] - E10_MSCORE) < TOL
    assert result.extra["skipped_per_wheel"] == {"W1-L1": 1, "W2-L1": 1, "W3-L1": 1, "W4-L1": 1, "W5-L1": 2}


def test_e11_hit_rate_fear_quirk_and_unmappable_disgust(wheel) -> None:
    result = hit_rate(E11_GT, E11_PRED, wheel, DISCRETE_CANDIDATES["MELD"])
    assert [round(v, 4) for v in result.per_wheel.values()] == E11_WHEELS
    assert abs(result.score - E11_SCORE) < TOL
    assert result.extra["skipped_per_wheel"]["W3-L1"] == 1 and result.extra["skipped_per_wheel"]["W1-L1"] == 0


def test_e12_dimension_score() -> None:
    result = dimension_score(E12_GT, E12_SENT)
    assert abs(result.score - E12_F1) < TOL
    assert abs(result.secondary["accuracy"] - E12_ACC) < TOL
    assert (result.n_scored, result.n_skipped) == (5, 1)
    assert any("mixed" in note for note in result.notes)


def test_sentiment_match_is_exact_as_official() -> None:
    # "Positive" is not "positive" in the official code: it counts as 0 (non-positive).
    result = dimension_score({"a": 1.0, "b": -1.0}, {"a": "Positive", "b": "negative"})
    assert result.secondary["accuracy"] == 0.5

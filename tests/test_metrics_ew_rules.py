"""EW metric rules of reference §5.3-§5.6 on a multi-sample set over the tiny hand-made wheel, computed by hand.

Tiny-wheel mappings used (derived in tests/test_metrics_wheel_files.py, TINY_TABLE):
    label        M1       M2     W1..W4 L1/L2    W5 L1/L2
    happy        glad     glad   happy/joyful    happy/content
    happier      happy    happy  happy/content   happy/content
    gladness     glad     glad   happy/joyful    -
    joys         delight  happy  happy/content   happy/content
    sorrows      sorrow   sad    sad/hurt        sad/hurt
    sad          sad      sad    sad/hurt        sad/hurt
    isolated     -        -      -               -          (a wheel word without a format.csv row)
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction as Fr
from pathlib import Path

import numpy as np
import pytest
from test_metrics_wheel_files import write_tiny_wheel

from affectgpt.metrics.ew import PRF, MetricScore, ew_scores, f_score, mapped_set, normalise_labels
from affectgpt.metrics.unibench import ov_score
from affectgpt.metrics.wheel import DEMO_LABEL, DEMO_WHEEL_DIR, METRICS, get_wheel, load_wheel_dir

TOL = 1e-12  # float64 means of a handful of exact fractions: a few ulp at most

GT = {"s1": "[happy]", "s2": "[joys, sorrows]", "s3": "[isolated]", "s4": "gladness"}
PRED = {"s1": "[sad, gladness, happier]", "s2": "[]", "s3": ["happy"], "s4": ["Happy", " happy", "GLADNESS "]}
# Per sample (P, R), kept samples only:
#   M1:     s1 gt {glad} pred {sad, glad, happy} -> 1/3, 1;  s2 gt {delight, sorrow} pred {} -> 0, 0;  s4 -> 1, 1
#   M2:     s1 gt {glad} pred {sad, glad, happy} -> 1/3, 1;  s2 -> 0, 0;  s4 -> 1, 1
#   Wk-L1:  s1 gt {happy} pred {sad, happy} -> 1/2, 1;  s2 -> 0, 0;  s4 {happy}/{happy} -> 1, 1          (k = 1..4)
#   Wk-L2:  s1 gt {joyful} pred {hurt, joyful, content} -> 1/3, 1;  s2 -> 0, 0;  s4 -> 1, 1
#   W5-L1:  s1 gt {happy} pred {sad, happy} -> 1/2, 1;  s2 -> 0, 0;  s4 gt {} skipped (gladness unmapped in W5)
#   W5-L2:  s1 gt {content} pred {hurt, content} -> 1/2, 1;  s2 -> 0, 0;  s4 skipped
# s3's GT maps nowhere: skipped by every metric. Dataset P, R = means over kept samples; F = 2PR/(P+R).
P_THIRD, P_HALF = Fr(1, 3 * 3) + Fr(1, 3), Fr(1, 2 * 3) + Fr(1, 3)  # (1/3 + 0 + 1)/3 = 4/9 and (1/2 + 0 + 1)/3 = 1/2
EXPECTED_PR = {
    "M1": (P_THIRD, Fr(2, 3)),
    "M2": (P_THIRD, Fr(2, 3)),
    **{f"W{w}-L1": (P_HALF, Fr(2, 3)) for w in (1, 2, 3, 4)},
    **{f"W{w}-L2": (P_THIRD, Fr(2, 3)) for w in (1, 2, 3, 4)},
    "W5-L1": (Fr(1, 4), Fr(1, 2)),
    "W5-L2": (Fr(1, 4), Fr(1, 2)),
}
EXPECTED_F = {m: 2 * p * r / (p + r) for m, (p, r) in EXPECTED_PR.items()}  # 8/15, 4/7, 1/3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_wheel_dir(write_tiny_wheel(tmp_path_factory.mktemp("w") / "tiny"))


def test_expected_values_are_the_hand_fractions() -> None:
    assert P_THIRD == Fr(4, 9) and P_HALF == Fr(1, 2)
    assert EXPECTED_F["M1"] == Fr(8, 15) and EXPECTED_F["W1-L1"] == Fr(4, 7) and EXPECTED_F["W5-L1"] == Fr(1, 3)


def test_macro_p_r_then_f_on_a_multi_sample_set(tiny) -> None:
    result = ew_scores(GT, PRED, tiny)
    for metric in METRICS:
        score = result.scores[metric]
        p, r = EXPECTED_PR[metric]
        assert abs(score.precision - float(p)) < TOL and abs(score.recall - float(r)) < TOL, metric
        assert abs(score.f1 - float(EXPECTED_F[metric])) < TOL, metric
    assert [abs(a - float(EXPECTED_F[m])) < TOL for a, m in zip([result.scores[m].f1 for m in METRICS], METRICS)] == [
        True
    ] * 12


def test_skipped_counts_per_metric_and_overall(tiny) -> None:
    result = ew_scores(GT, PRED, tiny)
    for metric in METRICS:
        kept = 2 if metric.startswith("W5") else 3
        assert (result.scores[metric].n_scored, result.scores[metric].n_skipped) == (kept, 4 - kept), metric
    assert (result.n_samples, result.n_skipped) == (4, 1)  # only s3 is scored by no metric
    summary = result.to_dict()
    assert summary["skipped_per_metric"] == {m: (2 if m.startswith("W5") else 1) for m in METRICS}
    assert (summary["n_samples"], summary["n_skipped"]) == (4, 1)


def test_wheel_averages_and_m_avg(tiny) -> None:
    result = ew_scores(GT, PRED, tiny)
    # avg-Lk = per-column mean over W1..W5 of (F, P, R)
    l1 = (4 * EXPECTED_F["W1-L1"] + EXPECTED_F["W5-L1"]) / 5  # (16/7 + 1/3)/5 = 11/21
    l2 = (4 * EXPECTED_F["W1-L2"] + EXPECTED_F["W5-L2"]) / 5  # (32/15 + 1/3)/5 = 37/75
    assert l1 == Fr(11, 21) and l2 == Fr(37, 75)
    avg1, avg2 = result.wheel_average("L1"), result.wheel_average("L2")
    assert abs(avg1.f1 - 11 / 21) < TOL and abs(avg1.precision - 0.45) < TOL and abs(avg1.recall - 19 / 30) < TOL
    assert abs(avg2.f1 - 37 / 75) < TOL and abs(avg2.precision - 73 / 180) < TOL and abs(avg2.recall - 19 / 30) < TOL
    m_avg = sum(EXPECTED_F[m] for m in METRICS) / 12
    assert abs(result.m_avg - float(m_avg)) < TOL
    summary = result.to_dict()
    assert summary["avg-L1"] == avg1.to_dict() and summary["avg-L2"] == avg2.to_dict()
    assert summary["M-avg"] == result.m_avg and summary["W5-L1"] == result.scores["W5-L1"].to_dict()
    assert list(summary)[:12] == list(METRICS)
    assert summary["wheel"] == str(tiny.directory) and "notes" not in summary


def test_ov_score_is_avg_l1_with_per_wheel_detail(tiny) -> None:
    result = ov_score(GT, PRED, tiny, dataset="OVMERDPlus")
    assert (result.dataset, result.task) == ("OVMERDPlus", "ovlabel")
    assert abs(result.score - 11 / 21) < TOL
    assert abs(result.secondary["precision"] - 0.45) < TOL and abs(result.secondary["recall"] - 19 / 30) < TOL
    assert [round(v, 12) for v in result.per_wheel.values()] == [round(4 / 7, 12)] * 4 + [round(1 / 3, 12)]
    assert list(result.per_wheel) == [f"W{w}-L1" for w in range(1, 6)]
    assert result.extra["skipped_per_wheel"] == {"W1-L1": 1, "W2-L1": 1, "W3-L1": 1, "W4-L1": 1, "W5-L1": 2}
    assert (result.n_samples, result.n_scored, result.n_skipped) == (4, 3, 1)
    assert result.extra["wheel"] == str(tiny.directory) and result.notes == []


def test_no_sample_kept_gives_zero_and_all_skipped(tiny) -> None:
    result = ew_scores({"a": "[neutral]", "b": "[]", "c": "isolated"}, {"a": "[happy]", "b": "[sad]", "c": "[]"}, tiny)
    for metric in METRICS:
        assert dataclasses.astuple(result.scores[metric]) == (0.0, 0.0, 0.0, 0, 3)  # official: NaN means
    assert result.n_skipped == 3 and result.m_avg == 0.0


def test_only_empty_predictions_give_zero_not_nan(tiny) -> None:
    result = ew_scores({"a": "[happy]", "b": "[sad]"}, {"a": "[]", "b": "[xyzzy, isolated]"}, tiny)
    assert all(dataclasses.astuple(result.scores[m]) == (0.0, 0.0, 0.0, 2, 0) for m in METRICS)


def test_the_same_string_in_many_samples_and_non_string_values(tiny) -> None:
    # 3 samples share the GT string (parsed once, scored three times); predictions as list, tuple and ndarray
    gt = {"a": "[happy, sad]", "b": "[happy, sad]", "c": "[happy, sad]"}
    pred = {"a": ["happy"], "b": ("sad", "sorrows"), "c": np.array(["joys", "sad"])}
    result = ew_scores(gt, pred, tiny)
    # W1-L1: a P 1 R 1/2; b pred {sad} P 1 R 1/2; c pred {happy, sad} P 1 R 1 -> P 1, R 2/3, F 4/5
    score = result.scores["W1-L1"]
    assert abs(score.precision - 1) < TOL and abs(score.recall - 2 / 3) < TOL and abs(score.f1 - 0.8) < TOL
    # M1: gt {glad, sad}; a {glad} 1, 1/2; b {sad, sorrow} 1/2, 1/2; c {delight, sad} 1/2, 1/2 -> P 2/3, R 1/2
    m1 = result.scores["M1"]
    assert abs(m1.precision - 2 / 3) < TOL and abs(m1.recall - 0.5) < TOL and abs(m1.f1 - 4 / 7) < TOL


def test_missing_predictions_raise_naming_them(tiny) -> None:
    with pytest.raises(KeyError, match=r"2 GT names have no prediction: b, c"):
        ew_scores({"a": "[happy]", "b": "[sad]", "c": "[sad]"}, {"a": "[happy]"}, tiny)
    twenty = {f"n{i:02d}": "[happy]" for i in range(20)}
    with pytest.raises(KeyError) as err:
        ew_scores(twenty, {}, tiny)
    assert "n19" in str(err.value) and "in all" not in str(err.value)
    with pytest.raises(KeyError) as err:
        ew_scores({**twenty, "n20": "[sad]"}, {}, tiny)
    assert "n19 ... (21 in all)" in str(err.value) and "n20" not in str(err.value)


def test_extra_predictions_are_ignored(tiny) -> None:
    base = ew_scores({"a": "[happy]"}, {"a": "[happy, sad]"}, tiny)
    extra = ew_scores({"a": "[happy]"}, {"a": "[happy, sad]", "zz": "[sad]"}, tiny)
    assert base.to_dict() == extra.to_dict() and extra.n_samples == 1


def test_demo_wheel_results_carry_the_note() -> None:
    demo = get_wheel(DEMO_WHEEL_DIR)
    summary = ew_scores({"a": "[happy]"}, {"a": "[happy]"}, demo).to_dict()
    assert summary["wheel"] == "demo" and summary["notes"] == [f"wheel: {DEMO_LABEL}"]


def test_helpers(tiny, tmp_path: Path) -> None:
    assert f_score(0.5, 0.25) == 2 * 0.5 * 0.25 / 0.75 and f_score(0.0, 0.0) == 0.0 and f_score(1.0, 0.0) == 0.0
    assert normalise_labels("[ Happy , SAD]") == ("happy", "sad") and normalise_labels(["A "]) == ("a",)
    assert mapped_set(("happy", "gladness", "isolated", "happier"), tiny.tables["W1-L2"]) == {"joyful", "content"}
    score = MetricScore(0.5, 0.5, 0.5)
    assert (score.n_scored, score.n_skipped) == (0, 0)
    assert PRF(0.1, 0.2, 0.3).to_dict() == {"precision": 0.1, "recall": 0.2, "f1": 0.3}
    with pytest.raises(dataclasses.FrozenInstanceError):  # results are shared between reports: immutable
        score.f1 = 1.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRF(0, 0, 0).precision = 1.0  # type: ignore[misc]

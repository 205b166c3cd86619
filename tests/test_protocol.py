"""Paper protocol (per-dataset best epoch) vs one common epoch, on hand-made score tables.

Expected values are hand computations written next to each table; the published row comes from the
AffectGPT paper (Table 2, A,V,T) whose 74.77 is the mean of per-dataset maxima (reference §2, §4).
"""

from __future__ import annotations

import pytest

from affectgpt.metrics.protocol import (
    common_epoch,
    compare_protocols,
    paper_protocol,
    parse_epochs,
)

# Sums of three two-decimal fractions: float rounding ~1e-16, far below this.
TOL = 1e-12

# Best epoch differs per dataset: A peaks at 35, B ties at 30 and 40 (-> 30, the earliest), C peaks at 40.
# Epoch 25 is outside the protocol's epochs and has the highest scores: it must be ignored.
TABLE = {
    "A": {25: 0.99, 30: 0.50, 35: 0.60, 40: 0.55},
    "B": {25: 0.99, 30: 0.70, 35: 0.65, 40: 0.70},
    "C": {25: 0.99, 30: 0.40, 35: 0.42, 40: 0.48},
}
VAL = {25: 0.9, 30: 0.30, 35: 0.50, 40: 0.40}  # validation picks 35


def test_paper_protocol_takes_each_datasets_best_epoch():
    result = paper_protocol(TABLE, [30, 35, 40])
    assert result.best_epoch == {"A": 35, "B": 30, "C": 40}
    assert result.best_score == {"A": 0.60, "B": 0.70, "C": 0.48}
    assert abs(result.mean - (0.60 + 0.70 + 0.48) / 3) < TOL  # 0.59333
    assert result.epochs == [30, 35, 40]


def test_common_epoch_on_validation_and_the_optimism_gap():
    common = common_epoch(TABLE, VAL, [30, 35, 40])
    assert common.epoch == 35 and common.selected_by == "best validation score"
    assert common.scores == {"A": 0.60, "B": 0.65, "C": 0.42}
    assert abs(common.mean - (0.60 + 0.65 + 0.42) / 3) < TOL  # 0.55667
    both = compare_protocols(TABLE, [30, 35, 40], VAL)
    assert abs(both.optimism_gap - (1.78 - 1.67) / 3) < TOL  # 0.03667
    assert both.paper.best_epoch == {"A": 35, "B": 30, "C": 40} and both.common.epoch == 35


def test_without_validation_the_best_mean_epoch_is_used_and_labelled():
    # Test means: 30 -> 1.60/3, 35 -> 1.67/3, 40 -> 1.73/3: epoch 40.
    common = common_epoch(TABLE, None, [30, 35, 40])
    assert common.epoch == 40 and "no validation" in common.selected_by
    assert abs(common.mean - 1.73 / 3) < TOL
    assert abs(compare_protocols(TABLE, [30, 35, 40]).optimism_gap - 0.05 / 3) < TOL


def test_ties_go_to_the_earliest_epoch():
    flat = {"A": {30: 0.5, 35: 0.5, 40: 0.5}}
    assert paper_protocol(flat).best_epoch == {"A": 30}
    assert common_epoch(flat, {30: 0.1, 35: 0.2, 40: 0.2}).epoch == 35
    assert common_epoch(flat, None).epoch == 30


def test_default_epochs_are_those_every_dataset_has():
    result = paper_protocol({"A": {30: 0.1, 35: 0.9}, "B": {30: 0.2, 35: 0.3, 60: 0.8}})
    assert result.epochs == [30, 35] and result.best_epoch == {"A": 35, "B": 35}


def test_published_row_is_a_mean_of_per_dataset_maxima():
    """The nine published best scores, put at different epochs of 30-60:5, give the paper's 74.77."""
    published = {
        "MER2023": 78.54,
        "MER2024": 78.80,
        "MELD": 55.65,
        "IEMOCAPFour": 60.54,
        "CMUMOSI": 81.30,
        "CMUMOSEI": 80.90,
        "SIMS": 88.49,
        "SIMSv2": 86.18,
        "OVMERDPlus": 62.52,
    }
    epochs = parse_epochs("30-60:5")
    scores = {}
    for k, (name, best) in enumerate(published.items()):
        peak = epochs[k % len(epochs)]
        scores[name] = {e: (best - (1.0 if e != peak else 0.0)) / 100 for e in epochs}
    result = paper_protocol(scores, epochs)
    assert result.best_epoch == {name: epochs[k % len(epochs)] for k, name in enumerate(published)}
    assert round(result.mean * 100, 2) == 74.77  # 672.92 / 9 = 74.769 (two-decimal inputs)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("30-60:5", [30, 35, 40, 45, 50, 55, 60]),
        ("30,40,60", [30, 40, 60]),
        ("60", [60]),
        ("3-5", [3, 4, 5]),
        (" 60 , 10-30:10 ", [10, 20, 30, 60]),
        ("0", [0]),
        ("30-30", [30]),
        ("1-7:3", [1, 4, 7]),
    ],
)
def test_parse_epochs(spec, expected):
    assert parse_epochs(spec) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty"),
        ("30-60:0", "step 0"),
        ("60-30:5", "ends before it starts"),
        ("30-62:5", "does not reach 62"),
        ("30,40,30", r"\[30\] listed more than once"),
        ("30-40:5,40", r"\[40\]"),
        ("thirty", "cannot read 'thirty'"),
        ("-5", "cannot read '-5'"),
        ("30-60:5:1", "cannot read"),
        ("30,,40", "cannot read ''"),
    ],
)
def test_parse_epochs_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_epochs(spec)


def test_scores_of_exactly_zero_and_one_are_fractions():
    result = paper_protocol({"A": {30: 0.0, 35: 1.0}, "B": {30: 0.0, 35: 0.0}})
    assert result.best_score == {"A": 1.0, "B": 0.0} and result.mean == 0.5


def test_bad_tables_are_clear_errors():
    with pytest.raises(ValueError, match=r"B: no score for epoch\(s\) \[40\]"):
        paper_protocol({"A": {30: 0.5, 40: 0.6}, "B": {30: 0.5}}, [30, 40])
    with pytest.raises(ValueError, match="A epoch 30: score 55.6 is not a fraction"):
        paper_protocol({"A": {30: 55.6}})
    with pytest.raises(ValueError, match="not a fraction"):
        paper_protocol({"A": {30: float("nan")}})
    with pytest.raises(ValueError, match="score -0.1 is not a fraction"):
        paper_protocol({"A": {30: -0.1}})
    with pytest.raises(ValueError, match="no dataset"):
        paper_protocol({})
    with pytest.raises(ValueError, match="no epoch is scored for every dataset"):
        paper_protocol({"A": {30: 0.5}, "B": {35: 0.5}})
    with pytest.raises(ValueError, match=r"validation: no score for epoch\(s\) \[40\]"):
        common_epoch(TABLE, {30: 0.1, 35: 0.2}, [30, 35, 40])
    with pytest.raises(ValueError, match=r"validation: score of epoch\(s\) \[35\] is not a finite number"):
        common_epoch(TABLE, {30: 0.1, 35: float("nan"), 40: 0.2}, [30, 35, 40])

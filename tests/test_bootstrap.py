"""Bootstrap intervals (affectgpt.metrics.bootstrap) against the project's scoring functions.

Expected values come from (a) affectgpt.metrics.unibench.hit_rate / dimension_score / ov_score on the same
inputs and the reference §9 worked examples, (b) a plain loop over the same resample indices that scores each
resampled dataset with those functions, (c) hand computations on tiny count vectors, and (d) known population
values for the coverage simulations. Comparisons are float64; 1e-12 absorbs summation-order differences
(BLAS dot vs Python sum vs np.mean, ~1e-16 relative on sums of a few hundred terms).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.metrics import f1_score
from test_metrics_examples import (
    E10_GT,
    E10_PRED,
    E11_GT,
    E11_PRED,
    E12_GT,
    E12_SENT,
    EW_EXAMPLES,
)

from affectgpt.metrics import bootstrap as bs
from affectgpt.metrics.unibench import dimension_score, hit_rate, ov_score
from affectgpt.metrics.wheel import get_wheel

EXACT = 1e-12  # see the module docstring
E9_GT, E9_PRED = EW_EXAMPLES["E9"][:2]
MER_LABELS = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
# Words a model answers with: mappable forms, two unmappable ones (neutral, humorous) and nonsense.
WORDS = [
    "happy",
    "joyful",
    "relaxed",
    "excited",
    "calm",
    "worried",
    "anxious",
    "nervous",
    "angry",
    "annoyed",
    "frustrated",
    "sad",
    "lonely",
    "disappointed",
    "surprised",
    "scared",
    "fear",
    "disgusted",
    "neutral",
    "humorous",
    "xyzzy",
]


@pytest.fixture(scope="module")
def wheel(official_wheel_dir):
    return get_wheel(official_wheel_dir)


def _answer(rng: random.Random, low: int, high: int) -> str:
    return "[" + ", ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))) + "]"


def discrete_set(n: int, seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    gt = {f"s{i:04d}": rng.choice(MER_LABELS) for i in range(n)}
    return gt, {name: _answer(rng, 0, 4) for name in gt}


def ov_set(n: int, seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    gt = {f"s{i:04d}": _answer(rng, 1, 4) for i in range(n)}
    return gt, {name: _answer(rng, 0, 5) for name in gt}


def dimension_set(n: int, seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    gt = {f"s{i:04d}": rng.choice([-2.4, -1.0, -0.4, 0.0, 0.6, 1.2, 3.0]) for i in range(n)}
    return gt, {name: rng.choice(["positive", "negative", "neutral", "mixed"]) for name in gt}


SETS = {"discrete": discrete_set, "ovlabel": ov_set, "dimension": dimension_set}


def project_scores(task: str, gt: dict, pred: dict, wheel) -> dict[str, float]:
    """The project's own scoring function, as {statistic: value}."""
    if task == "discrete":
        return {"score": hit_rate(gt, pred, wheel).score}
    if task == "dimension":
        result = dimension_score(gt, pred)
        return {"score": result.score, "accuracy": result.secondary["accuracy"]}
    result = ov_score(gt, pred, wheel)
    return {"score": result.score, **result.secondary}


def resampled(names: tuple[str, ...], rows: np.ndarray, gt: dict, pred: dict) -> tuple[dict, dict]:
    """One resampled dataset; duplicates renamed (a resample repeats samples)."""
    picked = [names[i] for i in rows]
    return ({f"{n}#{k}": gt[n] for k, n in enumerate(picked)}, {f"{n}#{k}": pred[n] for k, n in enumerate(picked)})


# ---- (a) point estimates ------------------------------------------------------------------------------


@pytest.mark.parametrize("task", list(SETS))
def test_point_scores_equal_project_scoring(task, wheel):
    gt, pred = SETS[task](150, seed=1)
    ps = bs.per_sample(task, gt, pred, wheel, dataset="X")
    expected = project_scores(task, gt, pred, wheel)
    got = bs.point_scores(ps)
    assert set(got) == set(expected)
    for statistic, value in expected.items():
        assert abs(got[statistic] - value) < EXACT, (statistic, got[statistic], value)
    assert abs(bs.bootstrap(ps, n_resamples=20).point - expected["score"]) < EXACT


def test_points_of_the_reference_worked_examples(wheel):
    """Reference §9: E10 hit rate 0.58, E11 0.7667, E12 weighted F1 0.8 and accuracy 0.8, E9 F 0.6452."""
    assert abs(bs.point_scores(bs.discrete_samples(E10_GT, E10_PRED, wheel))["score"] - 0.58) < EXACT
    assert abs(bs.point_scores(bs.discrete_samples(E11_GT, E11_PRED, wheel))["score"] - 0.7667) < 5e-5  # 4 dp
    e12 = bs.point_scores(bs.dimension_samples(E12_GT, E12_SENT))
    assert abs(e12["score"] - 0.8) < EXACT and abs(e12["accuracy"] - 0.8) < EXACT
    e9 = bs.point_scores(bs.ov_samples(E9_GT, E9_PRED, wheel))
    assert abs(e9["score"] - 0.6452) < 5e-5 and abs(e9["precision"] - 0.625) < EXACT  # F printed to 4 dp


def test_dimension_drops_zero_ground_truth_before_resampling():
    ps = bs.dimension_samples(E12_GT, E12_SENT, dataset="CMUMOSI")
    assert ps.names == ("a", "b", "d", "e", "f")  # c has GT 0.0
    assert ps.y_true.tolist() == [True, False, True, False, True]
    assert ps.y_pred.tolist() == [True, False, False, False, True]  # neutral and mixed count as non-positive


# ---- (b) against a direct reference loop --------------------------------------------------------------


@pytest.mark.parametrize("task", list(SETS))
def test_replicates_equal_a_reference_loop_over_the_same_indices(task, wheel):
    gt, pred = SETS[task](40, seed=2)
    ps = bs.per_sample(task, gt, pred, wheel, dataset="MELD")
    n_resamples = 30
    indices = bs.resample_indices(len(ps.names), n_resamples, seed=7, key="MELD")
    reference = [project_scores(task, *resampled(ps.names, rows, gt, pred), wheel) for rows in indices]
    for statistic in reference[0]:
        iv = bs.bootstrap(ps, n_resamples=n_resamples, seed=7, statistic=statistic)
        expected = np.array([r[statistic] for r in reference])
        np.testing.assert_allclose(iv.samples, expected, rtol=0, atol=EXACT, err_msg=statistic)
        low, high = np.quantile(expected, [0.025, 0.975])  # the percentile interval of those replicates
        assert abs(iv.low - low) < EXACT and abs(iv.high - high) < EXACT


def test_evaluate_on_hand_counts():
    hits = bs.HitSamples(("a", "b", "c"), np.array([[1.0, 0, 0], [1, 0, 0]]), np.array([[1, 1, 0], [1, 0, 0]], bool))
    # counts (1, 2, 3): wheel 1 = 1 hit / 3 kept, wheel 2 = 1 / 1; mean 2/3. counts (0, 1, 1): 0/1 and nothing kept.
    np.testing.assert_allclose(hits.evaluate(np.array([[1.0, 2, 3], [0, 1, 1]]))["score"], [2 / 3, 0.0], atol=EXACT)

    dim = bs.DimensionSamples(("a", "b", "c", "d"), np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 1], bool))
    # counts (2, 1, 1, 0): tp 2, fn 1, fp 0, tn 1. F1(pos) = 4/5 (support 3), F1(non-pos) = 2/3 (support 1)
    # -> weighted (3 * 4/5 + 2/3) / 4 = 23/30; accuracy 3/4.
    out = dim.evaluate(np.array([[2.0, 1, 1, 0]]))
    assert abs(out["score"][0] - 23 / 30) < EXACT and abs(out["accuracy"][0] - 0.75) < EXACT
    expanded_true, expanded_pred = [True, True, True, False], [True, True, False, False]
    assert abs(out["score"][0] - f1_score(expanded_true, expanded_pred, average="weighted")) < EXACT

    ov = bs.OVSamples(("a", "b"), np.array([[0.5, 1.0]]), np.array([[1.0, 0.5]]), np.ones((1, 2), bool))
    # counts (2, 1): P = (0.5 + 0.5 + 1) / 3 = 2/3, R = (1 + 1 + 0.5) / 3 = 5/6, F = 2PR / (P + R) = 20/27.
    out = ov.evaluate(np.array([[2.0, 1]]))
    assert abs(out["precision"][0] - 2 / 3) < EXACT and abs(out["recall"][0] - 5 / 6) < EXACT
    assert abs(out["score"][0] - 20 / 27) < EXACT
    zero = bs.OVSamples(("a",), np.zeros((1, 1)), np.zeros((1, 1)), np.ones((1, 1), bool))
    assert zero.evaluate(np.ones((1, 1)))["score"][0] == 0.0  # P = R = 0 -> F 0.0, not NaN


def test_counts_and_resample_indices():
    np.testing.assert_array_equal(bs.counts_from_indices(np.array([[0, 0, 2], [1, 2, 1]]), 3), [[2, 0, 1], [0, 2, 1]])
    indices = bs.resample_indices(57, 300, seed=3, key="SIMS")
    assert indices.shape == (300, 57) and indices.min() >= 0 and indices.max() <= 56
    assert indices.min() == 0 and indices.max() == 56  # 17,100 draws reach both ends
    counts = np.bincount(indices.ravel(), minlength=57)
    assert np.abs(counts - 300).max() < 6 * np.sqrt(300)  # uniform: each index drawn ~300 times (6 sd)
    np.testing.assert_array_equal(indices, bs.resample_indices(57, 300, seed=3, key="SIMS"))
    np.testing.assert_array_equal(indices[:100], bs.resample_indices(57, 100, seed=3, key="SIMS"))
    assert not np.array_equal(indices, bs.resample_indices(57, 300, seed=4, key="SIMS"))
    assert not np.array_equal(indices, bs.resample_indices(57, 300, seed=3, key="MELD"))
    small_chunks = np.concatenate(list(bs._index_chunks(57, 300, 3, "SIMS", chunk=7)))
    np.testing.assert_array_equal(indices, small_chunks)  # the chunking does not change the draws


# ---- (c) coverage on simulated data -------------------------------------------------------------------

N_SIMULATIONS = 200
# With true coverage 0.95 the observed rate over 200 datasets has binomial SE sqrt(.95 * .05 / 200) = 0.0154;
# [0.90, 0.99] is -3.2 / +2.6 SE (the percentile bootstrap is known to under-cover slightly at small n).
COVERAGE_BAND = (0.90, 0.99)


def _bernoulli_hits(rng: np.random.Generator, n: int, p: float) -> bs.HitSamples:
    hits = np.repeat((rng.random(n) < p).astype(np.float64)[None], 5, axis=0)  # the same hit in all 5 wheels
    return bs.HitSamples(tuple(map(str, range(n))), hits, np.ones((5, n), bool))


def _ov_draw(rng: np.random.Generator, n: int) -> bs.OVSamples:
    precision = rng.choice([0.0, 0.5, 1.0], size=(1, n), p=[0.2, 0.3, 0.5])  # E[P] = 0.65
    recall = rng.choice([0.0, 1 / 3, 1.0], size=(1, n), p=[0.3, 0.3, 0.4])  # E[R] = 0.5
    return bs.OVSamples(tuple(map(str, range(n))), precision, recall, np.ones((1, n), bool))


def _dimension_draw(rng: np.random.Generator, n: int) -> bs.DimensionSamples:
    cell = rng.choice(4, size=n, p=[0.4, 0.1, 0.15, 0.35])  # (tp, fn, fp, tn) probabilities
    return bs.DimensionSamples(tuple(map(str, range(n))), cell < 2, (cell == 0) | (cell == 2))


# Population values by hand: Bernoulli p; F = 2 * .65 * .5 / 1.15; weighted F1 from the cell probabilities:
# F1(pos) = .8 / (.8 + .15 + .1), F1(non-pos) = .7 / (.7 + .1 + .15), supports .5 and .5.
COVERAGE_CASES = {
    "discrete": (lambda rng: _bernoulli_hits(rng, 150, 0.7), 0.7),
    "ovlabel": (lambda rng: _ov_draw(rng, 200), 2 * 0.65 * 0.5 / 1.15),
    "dimension": (lambda rng: _dimension_draw(rng, 200), 0.5 * 0.8 / 1.05 + 0.5 * 0.7 / 0.95),
}


@pytest.mark.parametrize("task", list(COVERAGE_CASES))
def test_95_percent_interval_covers_the_population_value(task):
    draw, truth = COVERAGE_CASES[task]
    rng = np.random.default_rng(2026)
    covered = []
    for k in range(N_SIMULATIONS):
        iv = bs.bootstrap(draw(rng), n_resamples=1000, seed=k)
        covered.append(iv.low <= truth <= iv.high)
    assert COVERAGE_BAND[0] <= np.mean(covered) <= COVERAGE_BAND[1], np.mean(covered)


# ---- nine-set mean ------------------------------------------------------------------------------------

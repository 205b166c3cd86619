"""Property tests of the EW metrics (hypothesis) against the official wheel, plus a plain-Python oracle.

The oracle below is the per-sample set definition of reference §5.5 written as directly as possible;
the library computes the same thing with numpy arrays for speed.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from affectgpt.data.records import string_to_list
from affectgpt.metrics.ew import ew_scores
from affectgpt.metrics.wheel import METRICS, get_wheel

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "emotion_wheel"
WHEEL = get_wheel(OFFICIAL)
# ASCII vocabulary without the parser's separators; plus words no table knows.
KNOWN = sorted(k for k in WHEEL.format_mapping if k.isascii() and not set("'\",[]") & set(k) and k == k.strip())
UNMAPPABLE = ["neutral", "humorous", "xyzzy", "not an emotion"]
VOCAB = random.Random(0).sample(KNOWN, 150) + ["happy", "sad", "angry", "fear", "surprise", "disgust"] + UNMAPPABLE

label_lists = st.lists(st.sampled_from(VOCAB), min_size=0, max_size=5)
datasets = st.lists(st.tuples(label_lists, label_lists), min_size=1, max_size=8)


def as_dicts(pairs: list[tuple[list[str], list[str]]]) -> tuple[dict, dict]:
    gt = {f"s{i}": "[" + ", ".join(g) + "]" for i, (g, _) in enumerate(pairs)}
    pred = {f"s{i}": list(p) for i, (_, p) in enumerate(pairs)}
    return gt, pred


def oracle(gt: dict, pred: dict, metric: str) -> tuple[float, float, float]:
    table = WHEEL.tables[metric]
    precisions, recalls = [], []
    for name in gt:
        g = {table.get(x.lower().strip(), "") for x in string_to_list(gt[name])} - {""}
        p = {table.get(x.lower().strip(), "") for x in string_to_list(pred[name])} - {""}
        if not g:
            continue
        precisions.append(len(g & p) / len(p) if p else 0.0)
        recalls.append(len(g & p) / len(g) if p else 0.0)
    if not precisions:
        return 0.0, 0.0, 0.0
    pr, rc = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    return pr, rc, (2 * pr * rc / (pr + rc) if pr + rc else 0.0)


def numbers(result) -> list[float]:
    return [v for m in METRICS for v in (result.scores[m].precision, result.scores[m].recall, result.scores[m].f1)]


@settings(max_examples=60, deadline=None)
@given(datasets)
def test_matches_plain_oracle(pairs) -> None:
    gt, pred = as_dicts(pairs)
    result = ew_scores(gt, pred, WHEEL)
    for metric in METRICS:
        got = result.scores[metric]
        expected = oracle(gt, pred, metric)
        assert all(math.isclose(a, b, abs_tol=1e-12) for a, b in zip((got.precision, got.recall, got.f1), expected))


@settings(max_examples=60, deadline=None)
@given(datasets, st.randoms(use_true_random=False))
def test_invariant_to_order_duplicates_case_and_whitespace(pairs, rng) -> None:
    def mangle(labels: list[str]) -> list[str]:
        out = labels + [rng.choice(labels) for _ in range(rng.randint(0, 3))] if labels else []
        rng.shuffle(out)
        cased = [rng.choice([w.upper(), w.title(), w]) for w in out]
        return [rng.choice(["", " ", "  "]) + w + rng.choice(["", " "]) for w in cased]

    gt, pred = as_dicts(pairs)
    mangled_gt = {n: "[" + ",".join(mangle(string_to_list(v))) + "]" for n, v in gt.items()}
    mangled_pred = {n: mangle(v) for n, v in pred.items()}
    assert numbers(ew_scores(gt, pred, WHEEL)) == numbers(ew_scores(mangled_gt, mangled_pred, WHEEL))


@settings(max_examples=60, deadline=None)
@given(datasets)
def test_scores_within_unit_interval(pairs) -> None:
    result = ew_scores(*as_dicts(pairs), WHEEL)
    assert all(0.0 <= v <= 1.0 for v in numbers(result))
    summary = result.to_dict()
    assert 0.0 <= summary["M-avg"] <= 1.0
    assert all(0.0 <= summary[k][f] <= 1.0 for k in ("avg-L1", "avg-L2") for f in ("precision", "recall", "f1"))


@settings(max_examples=60, deadline=None)
@given(datasets, st.sampled_from(UNMAPPABLE))
def test_adding_an_unmappable_prediction_changes_nothing(pairs, extra) -> None:
    gt, pred = as_dicts(pairs)
    padded = {n: v + [extra] for n, v in pred.items()}
    assert numbers(ew_scores(gt, pred, WHEEL)) == numbers(ew_scores(gt, padded, WHEEL))


@settings(max_examples=60, deadline=None)
@given(st.lists(label_lists, min_size=1, max_size=8))
def test_prediction_equal_to_gt_scores_one_where_gt_maps(gts) -> None:
    gt = {f"s{i}": list(g) for i, g in enumerate(gts)}
    result = ew_scores(gt, dict(gt), WHEEL)
    for metric in METRICS:
        score = result.scores[metric]
        if score.n_scored:
            assert (score.precision, score.recall, score.f1) == (1.0, 1.0, 1.0)
        else:
            assert score.n_skipped == len(gt)

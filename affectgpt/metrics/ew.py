"""EW-based open-vocabulary metrics: M1, M2 and M3 (W1-W5 x L1/L2), reference §5.3-§5.6.

Per metric: every label is lower-cased/stripped and mapped; unmappable labels are dropped; the
mapped labels form a set. A sample whose GT set is empty is skipped (and counted); an empty
prediction scores P = R = 0. Dataset P and R are means over the kept samples and F comes from
those means (not a mean of per-sample F), exactly as the official code.

Documented deviation: where the official code yields NaN (P = R = 0, or no sample kept) we report 0.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from affectgpt.data.records import string_to_list
from affectgpt.metrics.wheel import DEMO_LABEL, LEVELS, METRICS, WHEELS, EmotionWheel


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float

    def to_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1}


@dataclass(frozen=True)
class MetricScore(PRF):
    n_scored: int = 0  # samples whose GT maps under this metric
    n_skipped: int = 0  # samples whose GT maps to nothing under this metric


def f_score(precision: float, recall: float) -> float:
    """F from (averaged) P and R; 0.0 where the official 0/0 gives NaN."""
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def normalise_labels(value: Any) -> tuple[str, ...]:
    """Official parsing (string_to_list) followed by lower().strip() of every label."""
    return tuple(label.lower().strip() for label in string_to_list(value))


class _Parser:
    """Parses each distinct raw value once: result files repeat the same strings a lot."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, ...]] = {}

    def __call__(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, str):
            return normalise_labels(value)
        labels = self._cache.get(value)
        if labels is None:
            labels = self._cache[value] = normalise_labels(value)
        return labels


def mapped_set(labels: tuple[str, ...], table: Mapping[str, str]) -> set[str]:
    """The mapped label set under one metric table (unmappable labels dropped, duplicates collapsed)."""
    return {table[label] for label in labels if label in table}


class _Encoded:
    """All label occurrences of one side as integer arrays: sample index and label id (numpy speed)."""

    def __init__(self, label_lists: list[tuple[str, ...]], ids: dict[str, int]):
        flat = [label for labels in label_lists for label in labels]
        self.label = np.fromiter((ids.setdefault(label, len(ids)) for label in flat), dtype=np.int64, count=len(flat))
        self.sample = np.repeat(np.arange(len(label_lists), dtype=np.int64), [len(x) for x in label_lists])

    def mapped_keys(self, lookup: np.ndarray, n_groups: int) -> np.ndarray:
        """Distinct (sample, group) pairs encoded as sample * n_groups + group: the per-sample mapped sets."""
        groups = lookup[self.label]
        valid = groups >= 0
        keys = np.sort(self.sample[valid] * n_groups + groups[valid])
        return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys


def _lookup(vocabulary: list[str], table: Mapping[str, str]) -> tuple[np.ndarray, int]:
    """label id -> group id under one metric table (-1 = unmappable), and the number of groups."""
    group_ids: dict[str, int] = {}
    lookup = [group_ids.setdefault(table[label], len(group_ids)) if label in table else -1 for label in vocabulary]
    return np.asarray(lookup, dtype=np.int64).reshape(-1), max(len(group_ids), 1)


def overlap_scores(gt_keys: np.ndarray, pred_keys: np.ndarray, n_samples: int, n_groups: int) -> MetricScore:
    """Macro P/R over the samples whose GT maps, and F of those means (calculate_openset_overlap_rate).

    Per kept sample: empty prediction -> P = R = 0, else P = |gt∩pred|/|pred|, R = |gt∩pred|/|gt|.
    """
    gt_size = np.bincount(gt_keys // n_groups, minlength=n_samples)
    pred_size = np.bincount(pred_keys // n_groups, minlength=n_samples)
    hits = np.bincount(np.intersect1d(gt_keys, pred_keys, assume_unique=True) // n_groups, minlength=n_samples)
    kept = gt_size > 0
    n_kept = int(kept.sum())
    if not n_kept:
        return MetricScore(0.0, 0.0, 0.0, n_scored=0, n_skipped=n_samples)
    hits, gt_size, pred_size = hits[kept], gt_size[kept], pred_size[kept]
    precision = float(np.mean(np.divide(hits, pred_size, out=np.zeros(n_kept), where=pred_size > 0)))
    recall = float(np.mean(hits / gt_size))
    return MetricScore(precision, recall, f_score(precision, recall), n_scored=n_kept, n_skipped=n_samples - n_kept)


@dataclass
class EWResult:
    """The 12 EW metrics of one (GT, prediction) set plus the OV-MER / AffectGPT summaries."""

    scores: dict[str, MetricScore]
    n_samples: int
    n_skipped: int  # samples that no metric could score (GT maps to nothing anywhere, e.g. "neutral")
    wheel: str  # the wheel directory, or "demo"
    notes: list[str] = field(default_factory=list)

    @property
    def m_avg(self) -> float:
        """OV-MER's M-avg: the plain mean of the 12 F-scores."""
        return sum(self.scores[m].f1 for m in METRICS) / len(METRICS)

    def wheel_average(self, level: str) -> PRF:
        """AffectGPT's aggregation: per-column mean of (F, P, R) over W1-W5 at one level.

        avg-L1 F is the OV-MERD+ score of MER-UniBench; it is a mean of per-wheel F, not F of means.
        """
        cells = [self.scores[f"W{w}-{level}"] for w in WHEELS]
        n = len(cells)
        return PRF(
            precision=sum(c.precision for c in cells) / n,
            recall=sum(c.recall for c in cells) / n,
            f1=sum(c.f1 for c in cells) / n,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {m: self.scores[m].to_dict() for m in METRICS}
        for level in LEVELS:
            out[f"avg-{level}"] = self.wheel_average(level).to_dict()
        out["M-avg"] = self.m_avg
        out["n_samples"] = self.n_samples
        out["n_skipped"] = self.n_skipped
        out["skipped_per_metric"] = {m: self.scores[m].n_skipped for m in METRICS}
        out["wheel"] = self.wheel
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def ew_scores(gt: Mapping[str, Any], pred: Mapping[str, Any], wheel: EmotionWheel) -> EWResult:
    """Score predictions against GT (name -> label list or list-like string) on the 12 EW metrics.

    The loop runs over GT names, as official; a GT name without a prediction is an error here
    (the IO layer decides whether a missing prediction becomes an empty one, and reports it).
    """
    missing = [name for name in gt if name not in pred]
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
        raise KeyError(f"{len(missing)} GT names have no prediction: {shown}")
    parse = _Parser()
    names = list(gt)
    ids: dict[str, int] = {}
    gt_encoded = _Encoded([parse(gt[name]) for name in names], ids)
    pred_encoded = _Encoded([parse(pred[name]) for name in names], ids)
    vocabulary = list(ids)
    scores: dict[str, MetricScore] = {}
    scored_somewhere = np.zeros(len(names), dtype=bool)
    for metric in METRICS:
        lookup, n_groups = _lookup(vocabulary, wheel.tables[metric])
        gt_keys = gt_encoded.mapped_keys(lookup, n_groups)
        scores[metric] = overlap_scores(gt_keys, pred_encoded.mapped_keys(lookup, n_groups), len(names), n_groups)
        scored_somewhere[gt_keys // n_groups] = True
    n_skipped = len(names) - int(scored_somewhere.sum())
    notes = [f"wheel: {DEMO_LABEL}"] if wheel.is_demo else []
    return EWResult(scores=scores, n_samples=len(names), n_skipped=n_skipped, wheel=wheel.name, notes=notes)


def score_predictions(gt: Mapping[str, Any], parsed: Mapping[str, list[str]], wheel: EmotionWheel) -> dict[str, Any]:
    """Flat EW scores of an OV-labelled set (validation, MER2025 sets): avg-L1/avg-L2 precision/recall/f1, M-avg,
    n_samples, n_empty, n_missing, n_skipped_gt.

    A GT sample without a prediction (its media failed to load) scores as an empty prediction and is counted in
    n_missing, so a failure can never raise the score.
    """
    preds = {name: parsed.get(name, []) for name in gt}
    result = ew_scores(gt, preds, wheel)
    scores: dict[str, Any] = {}
    for level in LEVELS:
        for key, value in result.wheel_average(level).to_dict().items():
            scores[f"avg-{level}/{key}"] = value
    scores["M-avg"] = result.m_avg
    scores["n_samples"] = result.n_samples
    scores["n_empty"] = sum(1 for name in gt if not preds[name])
    scores["n_missing"] = sum(1 for name in gt if name not in parsed)
    scores["n_skipped_gt"] = result.n_skipped
    scores["wheel"] = result.wheel
    return scores

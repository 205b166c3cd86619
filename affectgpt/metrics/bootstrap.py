"""Seeded bootstrap confidence intervals for MER-UniBench scores, per set, for the nine-set mean, and paired.

Each score type is reduced once to per-sample arrays from which the score of any resampled multiset of
samples follows from its count vector (how often each sample was drawn) by a few matrix products, so
1,000 resamples of all nine sets take well under a second and no Python loop runs over resamples:

- discrete (hit rate): per wheel, hits[w, i] = |pred ∩ gt| at L1 and kept[w, i] (the GT maps in wheel w);
  wheel score = sum(c * hits) / sum(c * kept) (0.0 when nothing is kept, as the point score); mean over wheels.
- dimension: y_true[i], y_pred[i] over the samples with GT != 0 (the others are dropped before resampling,
  as the official scoring drops them); weighted F1 (sklearn's definition: per-class F1 weighted by true
  support) and accuracy from the resampled confusion counts.
- ovlabel (OV-MERD+, MER2025-OV): per wheel, precision[w, i], recall[w, i], kept[w, i]; macro P_w and R_w
  over kept samples, F_w = 2PR/(P+R) (0.0 when P = R = 0), mean over wheels.

Discrete and OV sets resample every test sample (a neutral GT, skipped in every wheel, is still drawn: the
number of scored samples varies between resamples as it would between test sets).

Intervals are plain **percentile** intervals (numpy's linear quantiles of the replicate scores), not BCa.
Resample indices depend only on (seed, dataset key, set size): replicate j of a set is the same for every
run scored on that set (paired comparison) and independent across sets (the nine-set mean).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from affectgpt.data.records import DataError
from affectgpt.metrics.ew import mapped_set, normalise_labels
from affectgpt.metrics.unibench import sentiment_value
from affectgpt.metrics.wheel import WHEELS, EmotionWheel

# |B - A| at or below this counts as a tie in p_b_le_a: equal scores reached through different sums can
# differ by float rounding (~1e-16); a real difference between two runs on the same set is far larger.
TIE = 1e-12
# Resamples per count matrix: 128 x 4,659 (CMU-MOSEI) float64 is 4.8 MB; larger chunks save little time.
CHUNK = 128


def _zero_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _check_names(names: tuple[str, ...], n: int, what: str) -> None:
    if len(names) != n:
        raise ValueError(f"{what}: {len(names)} names for {n} samples")


@dataclass(frozen=True, eq=False)
class HitSamples:
    """Discrete hit rate per sample: hits and kept are [n_wheels, n] (kept: the GT maps in that wheel)."""

    names: tuple[str, ...]
    hits: np.ndarray
    kept: np.ndarray
    dataset: str = ""
    task = "discrete"

    def __post_init__(self) -> None:
        if self.hits.shape != self.kept.shape or self.hits.ndim != 2:
            raise ValueError(f"{self.dataset}: hits {self.hits.shape} and kept {self.kept.shape} must be equal 2-D")
        _check_names(self.names, self.hits.shape[1], self.dataset)

    def evaluate(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """counts [r, n] (multiplicity of each sample in each resample) -> {"score": [r]}."""
        kept = self.kept.astype(np.float64)
        per_wheel = _zero_div(counts @ (self.hits * kept).T, counts @ kept.T)
        return {"score": per_wheel.mean(axis=1)}

    def same_ground_truth(self, other: Any) -> bool:
        return isinstance(other, HitSamples) and np.array_equal(self.kept, other.kept)


@dataclass(frozen=True, eq=False)
class DimensionSamples:
    """Binary sentiment per sample with GT != 0: y_true = GT > 0, y_pred = predicted sentiment > 0."""

    names: tuple[str, ...]
    y_true: np.ndarray
    y_pred: np.ndarray
    dataset: str = ""
    task = "dimension"

    def __post_init__(self) -> None:
        if self.y_true.shape != self.y_pred.shape or self.y_true.ndim != 1:
            raise ValueError(f"{self.dataset}: y_true {self.y_true.shape} and y_pred {self.y_pred.shape} differ")
        _check_names(self.names, len(self.y_true), self.dataset)

    def evaluate(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """counts [r, n] -> {"score": weighted F1 [r], "accuracy": [r]} from resampled confusion counts."""
        t, p = self.y_true.astype(bool), self.y_pred.astype(bool)
        cells = np.stack([t & p, t & ~p, ~t & p, ~t & ~p], axis=1).astype(np.float64)  # [n, 4]
        tp, fn, fp, tn = (counts @ cells).T  # with "positive" as the class; tn is the tp of "non-positive"
        support_pos, support_neg = tp + fn, fp + tn
        f1_pos = _zero_div(2 * tp, 2 * tp + fp + fn)
        f1_neg = _zero_div(2 * tn, 2 * tn + fp + fn)
        total = support_pos + support_neg
        return {
            "score": _zero_div(support_pos * f1_pos + support_neg * f1_neg, total),
            "accuracy": _zero_div(tp + tn, total),
        }

    def same_ground_truth(self, other: Any) -> bool:
        return isinstance(other, DimensionSamples) and np.array_equal(self.y_true, other.y_true)


@dataclass(frozen=True, eq=False)
class OVSamples:
    """OV-label scores per sample at L1: precision, recall and kept are [n_wheels, n]."""

    names: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    kept: np.ndarray
    dataset: str = ""
    task = "ovlabel"

    def __post_init__(self) -> None:
        shapes = {self.precision.shape, self.recall.shape, self.kept.shape}
        if len(shapes) != 1 or self.kept.ndim != 2:
            raise ValueError(f"{self.dataset}: precision, recall and kept must be equal 2-D arrays, got {shapes}")
        _check_names(self.names, self.kept.shape[1], self.dataset)

    def evaluate(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """counts [r, n] -> {"score": mean_w F_w, "precision": mean_w P_w, "recall": mean_w R_w}, each [r]."""
        kept = self.kept.astype(np.float64)
        n_kept = counts @ kept.T
        p = _zero_div(counts @ (self.precision * kept).T, n_kept)
        r = _zero_div(counts @ (self.recall * kept).T, n_kept)
        f = _zero_div(2 * p * r, p + r)
        return {"score": f.mean(axis=1), "precision": p.mean(axis=1), "recall": r.mean(axis=1)}

    def same_ground_truth(self, other: Any) -> bool:
        return isinstance(other, OVSamples) and np.array_equal(self.kept, other.kept)


PerSample = HitSamples | DimensionSamples | OVSamples


def _labels(gt: Mapping[str, Any], pred: Mapping[str, Any], dataset: str) -> tuple[list, list]:
    missing = [name for name in gt if name not in pred]
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
        raise DataError(
            f"{dataset or 'dataset'}: {len(missing)} GT name(s) have no prediction: {shown}", sample=missing[0]
        )
    return [normalise_labels(gt[n]) for n in gt], [normalise_labels(pred[n]) for n in gt]


def discrete_samples(
    gt: Mapping[str, Any], pred: Mapping[str, Any], wheel: EmotionWheel, dataset: str = ""
) -> HitSamples:
    """Per-sample hits as in unibench.hit_rate: the L1 tables of W1-W5 via ew.mapped_set."""
    gt_labels, pred_labels = _labels(gt, pred, dataset)
    hits = np.zeros((len(WHEELS), len(gt_labels)))
    kept = np.zeros((len(WHEELS), len(gt_labels)), dtype=bool)
    for row, w in enumerate(WHEELS):
        table = wheel.tables[f"W{w}-L1"]
        for i, (g, p) in enumerate(zip(gt_labels, pred_labels)):
            gt_set = mapped_set(g, table)
            kept[row, i] = bool(gt_set)
            hits[row, i] = len(gt_set & mapped_set(p, table))
    return HitSamples(tuple(gt), hits, kept, dataset)


def ov_samples(gt: Mapping[str, Any], pred: Mapping[str, Any], wheel: EmotionWheel, dataset: str = "") -> OVSamples:
    """Per-sample P and R at L1 of W1-W5 (empty prediction: P = R = 0), as ew.overlap_scores."""
    gt_labels, pred_labels = _labels(gt, pred, dataset)
    shape = (len(WHEELS), len(gt_labels))
    precision, recall, kept = np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=bool)
    for row, w in enumerate(WHEELS):
        table = wheel.tables[f"W{w}-L1"]
        for i, (g, p) in enumerate(zip(gt_labels, pred_labels)):
            gt_set, pred_set = mapped_set(g, table), mapped_set(p, table)
            if not gt_set:
                continue
            kept[row, i] = True
            hit = len(gt_set & pred_set)
            precision[row, i] = hit / len(pred_set) if pred_set else 0.0
            recall[row, i] = hit / len(gt_set)
    return OVSamples(tuple(gt), precision, recall, kept, dataset)


def dimension_samples(gt: Mapping[str, float], sentiment: Mapping[str, Any], dataset: str = "") -> DimensionSamples:
    """(GT > 0, sentiment > 0) over the samples with GT != 0, as unibench.dimension_score."""
    missing = [name for name in gt if name not in sentiment]
    if missing:
        raise DataError(
            f"{dataset or 'dataset'}: {len(missing)} GT name(s) have no sentiment: {', '.join(missing[:20])}",
            sample=missing[0],
        )
    kept = [name for name, value in gt.items() if float(value) != 0]
    y_true = np.array([float(gt[n]) > 0 for n in kept], dtype=bool)
    y_pred = np.array([sentiment_value(sentiment[n]) > 0 for n in kept], dtype=bool)
    return DimensionSamples(tuple(kept), y_true, y_pred, dataset)


def per_sample(
    task: str, gt: Mapping[str, Any], pred: Mapping[str, Any], wheel: EmotionWheel | None = None, dataset: str = ""
) -> PerSample:
    """Dispatch on the MER-UniBench task (discrete | dimension | ovlabel) of affectgpt.data.unibench specs."""
    if task == "dimension":
        return dimension_samples(gt, pred, dataset)
    if task not in ("discrete", "ovlabel"):
        raise ValueError(f"{dataset}: unknown task '{task}' (expected discrete, dimension or ovlabel)")
    if wheel is None:
        raise ValueError(f"{dataset}: the {task} score needs an emotion wheel")
    return discrete_samples(gt, pred, wheel, dataset) if task == "discrete" else ov_samples(gt, pred, wheel, dataset)


def point_scores(ps: PerSample) -> dict[str, float]:
    """The full-data scores (every sample once): equal to the unibench scoring functions."""
    return {k: float(v[0]) for k, v in ps.evaluate(np.ones((1, len(ps.names)))).items()}


# ---- resampling -------------------------------------------------------------------------------------


def _check_args(n_resamples: int, seed: int, alpha: float) -> None:
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r} (0.05 gives a 95% interval)")


def _index_chunks(n: int, n_resamples: int, seed: int, key: str, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """[c, n] sample indices per chunk of resamples; the stream is one uniform double per index, so the
    indices do not depend on the chunk size. The dataset key (crc32, stable across processes) separates sets."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    for start in range(0, n_resamples, chunk):
        uniform = rng.random((min(chunk, n_resamples - start), n))
        yield np.minimum((uniform * n).astype(np.int64), n - 1)


def resample_indices(n: int, n_resamples: int = 1000, seed: int = 0, key: str = "") -> np.ndarray:
    """All [n_resamples, n] indices of one set (what bootstrap() draws; for reference computations)."""
    return np.concatenate(list(_index_chunks(n, n_resamples, seed, key)), axis=0)


def counts_from_indices(indices: np.ndarray, n: int) -> np.ndarray:
    """[r, n] indices -> [r, n] float64 multiplicities (one bincount over row-offset indices)."""
    rows = indices.shape[0]
    offset = indices + (np.arange(rows, dtype=np.int64) * n)[:, None]
    return np.bincount(offset.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def _replicates(runs: list[PerSample], n_resamples: int, seed: int, key: str, statistic: str) -> list[np.ndarray]:
    """Replicate scores of every run of one set, all on the same resample indices."""
    n = len(runs[0].names)
    if n == 0:
        raise ValueError(f"{key or runs[0].dataset or 'dataset'}: no scorable sample, nothing to resample")
    out: list[list[np.ndarray]] = [[] for _ in runs]
    for indices in _index_chunks(n, n_resamples, seed, key):
        counts = counts_from_indices(indices, n)
        for slot, run in zip(out, runs):
            values = run.evaluate(counts)
            if statistic not in values:
                raise ValueError(f"{key}: the {run.task} score has no statistic '{statistic}' (has {list(values)})")
            slot.append(values[statistic])
    return [np.concatenate(parts) for parts in out]


@dataclass(frozen=True, eq=False)
class Interval:
    """A point score and its percentile bootstrap interval; samples are the replicate scores."""

    point: float
    low: float
    high: float
    samples: np.ndarray
    alpha: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        return {
            "point": self.point,
            "low": self.low,
            "high": self.high,
            "alpha": self.alpha,
            "n_resamples": len(self.samples),
            "method": "percentile bootstrap",
        }


@dataclass(frozen=True, eq=False)
class Difference(Interval):
    """B - A on the same resamples; p_b_le_a = fraction of replicates where B scores <= A (ties within TIE
    included): a one-sided bootstrap tail fraction, not a calibrated test."""

    p_b_le_a: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "p_b_le_a": self.p_b_le_a}


@dataclass(frozen=True, eq=False)
class SetIntervals:
    """Per-set results and the result for the mean over the given sets (nine for MER-UniBench); the values
    are Difference objects when returned by paired_difference."""

    per_dataset: dict[str, Interval]
    mean: Interval


def percentile_interval(point: float, samples: np.ndarray, alpha: float) -> Interval:
    low, high = np.quantile(samples, [alpha / 2, 1 - alpha / 2])
    return Interval(point, float(low), float(high), samples, alpha)


def _difference(point: float, samples: np.ndarray, alpha: float) -> Difference:
    iv = percentile_interval(point, samples, alpha)
    return Difference(point, iv.low, iv.high, samples, alpha, p_b_le_a=float(np.mean(samples <= TIE)))


def bootstrap(
    ps: PerSample,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    statistic: str = "score",
    key: str | None = None,
) -> Interval:
    """Percentile interval of one set's score; key (default: ps.dataset) selects the resample stream."""
    _check_args(n_resamples, seed, alpha)
    key = ps.dataset if key is None else key
    (samples,) = _replicates([ps], n_resamples, seed, key, statistic)
    return percentile_interval(point_scores(ps)[statistic], samples, alpha)


def nine_set_mean_interval(
    per_dataset: Mapping[str, PerSample], n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05
) -> SetIntervals:
    """Each set resampled independently (stream key = its mapping key); per replicate the mean of the sets."""
    _check_args(n_resamples, seed, alpha)
    if not per_dataset:
        raise ValueError("no dataset given")
    per: dict[str, Interval] = {}
    for name, ps in per_dataset.items():
        (samples,) = _replicates([ps], n_resamples, seed, name, "score")
        per[name] = percentile_interval(point_scores(ps)["score"], samples, alpha)
    point = sum(iv.point for iv in per.values()) / len(per)
    return SetIntervals(per, percentile_interval(point, np.mean([iv.samples for iv in per.values()], axis=0), alpha))


def _as_sets(run: PerSample | Mapping[str, PerSample]) -> Mapping[str, PerSample]:
    return run if isinstance(run, Mapping) else {run.dataset: run}


def _check_pair(name: str, a: PerSample, b: PerSample) -> None:
    if a.task != b.task:
        raise ValueError(f"{name}: run A is scored as {a.task}, run B as {b.task}")
    if a.names != b.names:
        if len(a.names) != len(b.names):
            raise DataError(f"{name}: run A has {len(a.names)} scored samples, run B {len(b.names)}")
        first = next(x for x, y in zip(a.names, b.names) if x != y)
        raise DataError(
            f"{name}: the runs list different samples (or orders); A has '{first}' where B differs", sample=first
        )
    if not a.same_ground_truth(b):
        raise DataError(f"{name}: the two runs were scored against different ground truth")


def paired_difference(
    a: PerSample | Mapping[str, PerSample],
    b: PerSample | Mapping[str, PerSample],
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> SetIntervals:
    """B - A (Difference) per set, both runs on the same resample indices, and for the mean over the sets."""
    _check_args(n_resamples, seed, alpha)
    a_sets, b_sets = _as_sets(a), _as_sets(b)
    if set(a_sets) != set(b_sets):
        raise ValueError(
            f"the runs cover different sets: only A {sorted(set(a_sets) - set(b_sets))}, "
            f"only B {sorted(set(b_sets) - set(a_sets))}"
        )
    if not a_sets:
        raise ValueError("no dataset given")
    out: dict[str, Difference] = {}
    for name, run_a in a_sets.items():
        run_b = b_sets[name]
        _check_pair(name, run_a, run_b)
        sa, sb = _replicates([run_a, run_b], n_resamples, seed, name, "score")
        out[name] = _difference(point_scores(run_b)["score"] - point_scores(run_a)["score"], sb - sa, alpha)
    per = list(out.values())
    mean = _difference(sum(d.point for d in per) / len(per), np.mean([d.samples for d in per], axis=0), alpha)
    return SetIntervals(dict(out), mean)


def format_interval(iv: Interval, scale: float = 100, digits: int = 2, signed: bool = False) -> str:
    """'78.54 [76.90, 80.20]' (x100 by default, as the paper prints scores); signed for differences."""
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    return f"{fmt.format(iv.point * scale)} [{fmt.format(iv.low * scale)}, {fmt.format(iv.high * scale)}]"

"""`evaluate.py ov --dataset MER2025OV`: the MER2025 OV track (= MER2026 fine-grained track) score of one
prediction file, with a 95% bootstrap interval.

Rule (reference §4 "ovlabel" and §5; anchors "MER2026 fine-grained track"): per GT sample the L1 groups of the
GT and predicted labels in each of the five emotion wheels; P_w and R_w are macro means over the samples whose
GT maps in wheel w (an empty or unmappable prediction scores P = R = 0), F_w = 2 P_w R_w / (P_w + R_w), and the
score is the mean of F_w over W1-W5. This is the OV-MERD+ score of MER-UniBench (metrics/bootstrap.OVSamples).

Predictions are made over every name of `track_all_candidates.csv` (20,000 in MER2025); the hidden GT
(`track2_test`-style `name,openset`) covers a subset. With --candidates the prediction file must cover
exactly the candidate list (a missing name is an error naming it, or counts as an empty prediction with
--allow-missing; a name outside the list is always an error), and every GT name must be a candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectgpt.data.tables import preview
from affectgpt.labels.io import load_name_values
from affectgpt.labels.submission import read_candidates
from affectgpt.metrics.bootstrap import Interval, OVSamples, bootstrap, format_interval, ov_samples, point_scores
from affectgpt.metrics.io import align
from affectgpt.metrics.wheel import WHEELS, EmotionWheel

OV_DATASETS = ("MER2025OV",)


@dataclass
class OVTrackScore:
    dataset: str
    score: Interval  # mean_w F_w at L1
    precision: float
    recall: float
    per_wheel_f1: dict[str, float]
    n_gt: int
    n_scored: int  # GT maps in at least one wheel
    missing: list[str]  # names counted as empty predictions (--allow-missing)
    n_candidates: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "rule": "EW F1 averaged over W1-W5 at level 1 (MER2025 OV / MER2026 fine-grained)",
            "score": self.score.to_dict(),
            "precision": self.precision,
            "recall": self.recall,
            "per_wheel_f1": self.per_wheel_f1,
            "n_gt": self.n_gt,
            "n_scored": self.n_scored,
            "n_skipped": self.n_gt - self.n_scored,
            "missing_counted_empty": self.missing,
            "n_candidates": self.n_candidates,
        }


def _per_wheel_f1(ps: OVSamples) -> dict[str, float]:
    kept = ps.kept.astype(np.float64)
    n = kept.sum(axis=1)
    p = np.divide((ps.precision * kept).sum(axis=1), n, out=np.zeros(len(n)), where=n > 0)
    r = np.divide((ps.recall * kept).sum(axis=1), n, out=np.zeros(len(n)), where=n > 0)
    f = np.divide(2 * p * r, p + r, out=np.zeros(len(n)), where=(p + r) > 0)
    return {f"W{w}": float(v) for w, v in zip(WHEELS, f)}


def check_candidates(pred: dict[str, str], gt: dict[str, str], candidates: list[str], allow_missing: bool) -> None:
    """Errors naming the GT names outside the candidate list, the predicted names outside it, and (unless
    allow_missing) the candidates without a prediction."""
    known = set(candidates)
    outside_gt = [n for n in gt if n not in known]
    if outside_gt:
        raise ValueError(f"{len(outside_gt)} GT name(s) are not in the candidate list: {preview(outside_gt)}")
    extra = [n for n in pred if n not in known]
    if extra:
        raise ValueError(f"{len(extra)} predicted name(s) are not in the candidate list: {preview(extra)}")
    missing = [n for n in candidates if n not in pred]
    if missing and not allow_missing:
        raise ValueError(
            f"{len(missing)} candidate name(s) have no prediction: {preview(missing)} "
            "(pass --allow-missing to count them as empty predictions)"
        )


def score_ov_track(
    gt_path: str | Path,
    pred_path: str | Path,
    wheel: EmotionWheel,
    candidates_path: str | Path | None = None,
    allow_missing: bool = False,
    n_resamples: int = 1000,
    seed: int = 0,
    dataset: str = "MER2025OV",
) -> OVTrackScore:
    if dataset not in OV_DATASETS:
        raise ValueError(f"--dataset {dataset}: the OV track scorer knows {', '.join(OV_DATASETS)}")
    gt = load_name_values(gt_path)
    pred = load_name_values(pred_path)
    candidates = read_candidates(candidates_path) if candidates_path else None
    if candidates is not None:
        check_candidates(pred, gt, candidates, allow_missing)
    aligned = align(gt, pred, allow_missing, fill="[]", source=str(pred_path))
    ps = ov_samples(gt, aligned.values, wheel, dataset)
    point = point_scores(ps)
    return OVTrackScore(
        dataset=dataset,
        score=bootstrap(ps, n_resamples, seed),
        precision=point["precision"],
        recall=point["recall"],
        per_wheel_f1=_per_wheel_f1(ps),
        n_gt=len(gt),
        n_scored=int(ps.kept.any(axis=0).sum()),
        missing=aligned.missing,
        n_candidates=None if candidates is None else len(candidates),
    )


def ov_markdown(result: OVTrackScore) -> str:
    pct = int(round((1 - result.score.alpha) * 100))
    lines = [
        f"{result.dataset}: EW F1 (mean over W1-W5 at L1) {format_interval(result.score)} "
        f"({pct}% bootstrap, {len(result.score.samples)} resamples); P {result.precision * 100:.2f}, "
        f"R {result.recall * 100:.2f}",
        "per wheel F1: " + ", ".join(f"{w} {v * 100:.2f}" for w, v in result.per_wheel_f1.items()),
        f"GT samples: {result.n_gt}, scored: {result.n_scored}, skipped (GT maps to nothing): "
        f"{result.n_gt - result.n_scored}",
    ]
    if result.n_candidates is not None:
        lines.append(f"predictions checked against {result.n_candidates} candidate names")
    if result.missing:
        lines.append(f"{len(result.missing)} GT name(s) without prediction counted as empty: {preview(result.missing)}")
    return "\n".join(lines)

"""MER-UniBench scoring (reference §4): hit rate, sentiment F1/accuracy and the OV F_s, plus the table.

Scoring functions work on plain dicts (name -> GT, name -> prediction); `score_dataset` is the glue
that reads the official test split through affectgpt.data.unibench and dispatches on its task.

- discrete (MER2023, MER2024, MELD, IEMOCAPFour): does any predicted label fall in the GT's L1 group?
  Averaged over W1-W5; a GT that maps to nothing in a wheel (neutral; surprise in W5) is skipped there.
  It is not top-1 accuracy.
- dimension (CMUMOSI, CMUMOSEI, SIMS, SIMSv2): sentiment words -> positive 1, negative -1, anything
  else 0 (exact, case-sensitive match as official); samples with GT valence 0 are dropped; binary
  (gt > 0) vs (pred > 0) weighted F1 (main) and accuracy.
- ovlabel (OVMERDPlus): mean over W1-W5 of the L1 EW F-score (avg-L1 of affectgpt.metrics.ew).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sklearn.metrics import accuracy_score, f1_score

from affectgpt.data.unibench import (
    DISCRETE_CANDIDATES,
    UNIBENCH_ORDER,
    get_spec,
    ground_truth,
    read_unibench,
)
from affectgpt.metrics.ew import ew_scores, mapped_set, normalise_labels
from affectgpt.metrics.io import align
from affectgpt.metrics.wheel import DEMO_LABEL, WHEELS, EmotionWheel

# DISCRETE_CANDIDATES (affectgpt.data.unibench): used here only for the secondary (never reported) mscore.
SENTIMENT_VALUES = {"positive": 1, "negative": -1, "neutral": 0}


@dataclass
class DatasetScore:
    """One dataset's MER-UniBench result; `score` is the reported main score as a fraction."""

    dataset: str
    task: str
    score: float
    secondary: dict[str, float] = field(default_factory=dict)
    n_samples: int = 0
    n_scored: int = 0
    n_skipped: int = 0
    per_wheel: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "task": self.task,
            "score": self.score,
            **self.secondary,
            "n_samples": self.n_samples,
            "n_scored": self.n_scored,
            "n_skipped": self.n_skipped,
            "per_wheel": self.per_wheel,
            "notes": self.notes,
            **self.extra,
        }


def _require_all(gt: Mapping[str, Any], pred: Mapping[str, Any]) -> None:
    missing = [n for n in gt if n not in pred]
    if missing:
        raise KeyError(f"{len(missing)} GT names have no prediction: {', '.join(missing[:20])}")


def hit_rate(
    gt: Mapping[str, Any],
    pred: Mapping[str, Any],
    wheel: EmotionWheel,
    candidates: tuple[str, ...] | None = None,
    dataset: str = "",
) -> DatasetScore:
    """Discrete score: per wheel, the mean over kept samples of |pred ∩ gt| at L1; then the mean over wheels.

    With `candidates` (the dataset's label words) the secondary mscore = |pred∩gt| / |pred ∩ candidates|
    is also computed (official, never reported).
    """
    _require_all(gt, pred)
    gt_labels = {n: normalise_labels(v) for n, v in gt.items()}
    pred_labels = {n: normalise_labels(pred[n]) for n in gt}
    per_wheel: dict[str, float] = {}
    mscores: list[float] = []
    skipped: dict[str, int] = {}
    scored: set[str] = set()  # names whose GT maps in at least one wheel
    for w in WHEELS:
        table = wheel.tables[f"W{w}-L1"]
        allowed = mapped_set(tuple(candidates), table) if candidates else set()
        hits: list[float] = []
        ms: list[float] = []
        for name, labels in gt_labels.items():
            gt_set = mapped_set(labels, table)
            if not gt_set:
                continue
            scored.add(name)
            pred_set = mapped_set(pred_labels[name], table)
            hit = len(gt_set & pred_set)
            hits.append(hit)
            denominator = len(pred_set & allowed)
            ms.append(hit / denominator if denominator else 0.0)
        per_wheel[f"W{w}-L1"] = sum(hits) / len(hits) if hits else 0.0
        skipped[f"W{w}-L1"] = len(gt_labels) - len(hits)
        mscores.append(sum(ms) / len(ms) if ms else 0.0)
    all_skipped = len(gt_labels) - len(scored)
    result = DatasetScore(
        dataset=dataset,
        task="discrete",
        score=sum(per_wheel.values()) / len(WHEELS),
        n_samples=len(gt),
        n_scored=len(gt) - all_skipped,
        n_skipped=all_skipped,
        per_wheel=per_wheel,
        extra={"skipped_per_wheel": skipped, "wheel": wheel.name},
    )
    if candidates:
        result.secondary["mscore"] = sum(mscores) / len(WHEELS)
    if wheel.is_demo:
        result.notes.append(f"wheel: {DEMO_LABEL}")
    return result


def sentiment_value(word: Any) -> int:
    """Official mapping: exactly 'positive' 1, 'negative' -1, everything else (neutral, mixed, ...) 0."""
    return SENTIMENT_VALUES.get(word, 0) if isinstance(word, str) else 0


def dimension_score(gt: Mapping[str, float], sentiment: Mapping[str, Any], dataset: str = "") -> DatasetScore:
    """Binary weighted F1 (main) and accuracy of (gt > 0) vs (pred > 0) over samples with GT != 0."""
    _require_all(gt, sentiment)
    kept = [name for name, value in gt.items() if float(value) != 0]
    y_true = [float(gt[n]) > 0 for n in kept]
    y_pred = [sentiment_value(sentiment[n]) > 0 for n in kept]
    others = sorted({str(sentiment[n]) for n in gt if sentiment[n] not in SENTIMENT_VALUES})
    result = DatasetScore(
        dataset=dataset,
        task="dimension",
        score=float(f1_score(y_true, y_pred, average="weighted")) if kept else 0.0,
        secondary={"accuracy": float(accuracy_score(y_true, y_pred)) if kept else 0.0},
        n_samples=len(gt),
        n_scored=len(kept),
        n_skipped=len(gt) - len(kept),
    )
    result.notes.append(f"{len(gt) - len(kept)} sample(s) with GT valence 0 dropped (official)")
    if others:
        result.notes.append(f"sentiments other than positive/negative/neutral count as 0 (non-positive): {others}")
    if not kept:
        result.notes.append("no sample with non-zero GT: scores set to 0.0")
    return result


def ov_score(gt: Mapping[str, Any], pred: Mapping[str, Any], wheel: EmotionWheel, dataset: str = "") -> DatasetScore:
    """OV F_s: mean over W1-W5 of the L1 EW F-score (with mean P and mean R as secondary scores)."""
    ew = ew_scores(gt, pred, wheel)
    avg = ew.wheel_average("L1")
    return DatasetScore(
        dataset=dataset,
        task="ovlabel",
        score=avg.f1,
        secondary={"precision": avg.precision, "recall": avg.recall},
        n_samples=ew.n_samples,
        n_scored=ew.n_samples - ew.n_skipped,
        n_skipped=ew.n_skipped,
        per_wheel={f"W{w}-L1": ew.scores[f"W{w}-L1"].f1 for w in WHEELS},
        notes=list(ew.notes),
        extra={"skipped_per_wheel": {f"W{w}-L1": ew.scores[f"W{w}-L1"].n_skipped for w in WHEELS}, "wheel": wheel.name},
    )


class SentimentNeeded(ValueError):
    """A dimension dataset was given OV labels only: sentiment extraction must run first."""


def score_dataset(
    name: str,
    root: str | Path,
    wheel: EmotionWheel | None = None,
    openset: Mapping[str, Any] | None = None,
    sentiment: Mapping[str, Any] | None = None,
    allow_missing: bool = False,
) -> DatasetScore:
    """Read one dataset's official test split (no media check) and score the matching predictions.

    `openset`: name -> label list string (discrete/ovlabel); `sentiment`: name -> word (dimension).
    """
    spec = get_spec(name)
    gt = ground_truth(read_unibench(spec.name, root, on_error="raise", check_media=False), spec.task)
    if spec.task == "dimension":
        if sentiment is None:
            raise SentimentNeeded(
                f"{spec.name} is scored on sentiment (positive/negative/neutral), but only OV labels were given: "
                "run sentiment extraction on the openset file first and pass the name,sentiment file (--sentiment)"
            )
        aligned = align(gt, sentiment, allow_missing, fill="", source=f"{spec.name} sentiment")
        result = dimension_score(gt, aligned.values, dataset=spec.name)
    else:
        if openset is None:
            raise ValueError(f"{spec.name} needs an openset prediction file (name,openset)")
        aligned = align(gt, openset, allow_missing, fill="[]", source=f"{spec.name} predictions")
        if spec.task == "discrete":
            if wheel is None:
                raise ValueError("the discrete score needs an emotion wheel")
            result = hit_rate(gt, aligned.values, wheel, DISCRETE_CANDIDATES.get(spec.name), dataset=spec.name)
        else:
            if wheel is None:
                raise ValueError("the OV score needs an emotion wheel")
            result = ov_score(gt, aligned.values, wheel, dataset=spec.name)
    result.notes.extend(aligned.notes())
    result.extra.update(aligned.to_dict())
    return result


def unibench_table(scores: Mapping[str, DatasetScore]) -> dict[str, Any]:
    """The MER-UniBench row: each main score and their mean, x100 with two decimals (as the paper)."""
    row = {name: round(scores[name].score * 100, 2) for name in UNIBENCH_ORDER if name in scores}
    missing = [name for name in UNIBENCH_ORDER if name not in scores]
    mean = sum(scores[n].score for n in row) / len(row) if row else 0.0
    return {
        "scores_x100": row,
        "mean_x100": round(mean * 100, 2),
        "complete": not missing,
        "missing_datasets": missing,
        "datasets": {name: scores[name].to_dict() for name in row},
    }


def table_markdown(table: Mapping[str, Any]) -> str:
    """Markdown of unibench_table(): one header row, one score row; absent datasets shown as '-'."""
    header = list(UNIBENCH_ORDER) + ["Mean" if table["complete"] else f"Mean ({len(table['scores_x100'])}/9)"]
    cells = [f"{table['scores_x100'][n]:.2f}" if n in table["scores_x100"] else "-" for n in UNIBENCH_ORDER]
    cells.append(f"{table['mean_x100']:.2f}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(cells) + " |"]
    if table["missing_datasets"]:
        lines.append("")
        lines.append(f"Not scored: {', '.join(table['missing_datasets'])} (the mean covers the scored datasets only).")
    return "\n".join(lines)

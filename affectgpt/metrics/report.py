"""Human-readable tables for metric results (the JSON files hold the same numbers as fractions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from affectgpt.metrics.unibench import DatasetScore
from affectgpt.metrics.wheel import DEMO_LABEL, LEVELS, METRICS


def _wheel_line(wheel: str) -> str:
    return f"wheel: {DEMO_LABEL}" if wheel == "demo" else f"wheel: {wheel}"


def ew_table(result: Mapping[str, Any]) -> str:
    """EWResult.to_dict() as a fixed-width table: P/R/F x100 and skip count per metric, then summaries."""
    lines = [f"{'metric':<8} {'P':>7} {'R':>7} {'F':>7} {'skipped':>8}"]
    for metric in METRICS:
        cell = result[metric]
        skipped = result["skipped_per_metric"][metric]
        lines.append(
            f"{metric:<8} {cell['precision'] * 100:7.2f} {cell['recall'] * 100:7.2f} {cell['f1'] * 100:7.2f}"
            f" {skipped:8d}"
        )
    for level in LEVELS:
        cell = result[f"avg-{level}"]
        lines.append(
            f"{'avg-' + level:<8} {cell['precision'] * 100:7.2f} {cell['recall'] * 100:7.2f} {cell['f1'] * 100:7.2f}"
        )
    lines.append(f"M-avg (mean of the 12 F): {result['M-avg'] * 100:.2f}")
    lines.append(f"samples: {result['n_samples']}, skipped by every metric (GT maps to nothing): {result['n_skipped']}")
    for note in result.get("notes", []):
        if not note.startswith("wheel:"):
            lines.append(f"note: {note}")
    lines.append(_wheel_line(result["wheel"]))
    return "\n".join(lines)


def dataset_summary(score: DatasetScore) -> str:
    """One dataset's main and secondary scores (x100), counts and notes."""
    main = {"discrete": "hit rate", "dimension": "weighted F1", "ovlabel": "F_s (avg-L1)"}[score.task]
    parts = [f"{score.dataset} ({score.task}): {main} {score.score * 100:.2f}"]
    parts += [f"{key} {value * 100:.2f}" for key, value in score.secondary.items()]
    lines = [", ".join(parts), f"samples: {score.n_samples}, scored: {score.n_scored}, skipped: {score.n_skipped}"]
    if score.per_wheel:
        lines.append("per wheel: " + ", ".join(f"{k} {v * 100:.2f}" for k, v in score.per_wheel.items()))
    lines += [f"note: {note}" for note in score.notes if not note.startswith("wheel:")]
    if "wheel" in score.extra:
        lines.append(_wheel_line(score.extra["wheel"]))
    return "\n".join(lines)

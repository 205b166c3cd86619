"""Model-selection protocols over per-epoch scores: the paper's per-dataset best epoch vs one common epoch.

The official evaluation scores every saved epoch (30-60, step 5) on each test set and reports, per dataset,
the best epoch on that test set; the published 74.77 is the mean of those nine maxima (reference §2, §4).
That is test-set selection, so we report beside it the nine-set mean at ONE common epoch chosen on validation
scores; the difference (the optimism gap) shows how much the per-dataset choice adds.

All functions are pure and take scores[dataset][epoch] as fractions in [0, 1]. Ties go to the earliest epoch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

Scores = Mapping[str, Mapping[int, float]]
_RANGE = re.compile(r"^(\d+)-(\d+)(?::(\d+))?$")


def parse_epochs(spec: str) -> list[int]:
    """'30-60:5' -> [30, 35, ..., 60]; '30-60' (step 1); '30,40,60'; '60'; items may be mixed ('10,30-60:10').

    The result is sorted; a repeated epoch, a reversed range, a zero step or an end the step does not reach
    (a likely typo: '30-62:5') is an error.
    """
    text = str(spec).strip()
    if not text:
        raise ValueError("empty epoch list: expected e.g. '30-60:5', '30,40,60' or '60'")
    epochs: list[int] = []
    for item in (piece.strip() for piece in text.split(",")):
        if item.isdigit():
            epochs.append(int(item))
            continue
        match = _RANGE.match(item)
        if not match:
            raise ValueError(f"epoch list '{spec}': cannot read '{item}' (expected N, A-B or A-B:STEP, N >= 0)")
        start, end, step = int(match[1]), int(match[2]), int(match[3] or 1)
        if step == 0:
            raise ValueError(f"epoch list '{spec}': step 0 in '{item}'")
        if end < start:
            raise ValueError(f"epoch list '{spec}': '{item}' ends before it starts")
        if (end - start) % step:
            raise ValueError(f"epoch list '{spec}': '{item}' does not reach {end} from {start} in steps of {step}")
        epochs.extend(range(start, end + 1, step))
    repeated = sorted({e for e in epochs if epochs.count(e) > 1})
    if repeated:
        raise ValueError(f"epoch list '{spec}': epoch(s) {repeated} listed more than once")
    return sorted(epochs)


def _checked(scores: Scores, epochs: list[int] | None) -> tuple[list[int], dict[str, dict[int, float]]]:
    """The epochs to use (given, or those every dataset has) and the scores, validated as fractions."""
    if not scores:
        raise ValueError("no dataset scores given")
    if epochs is None:
        epochs = sorted(set.intersection(*(set(per) for per in scores.values())))
    if not epochs:
        raise ValueError("no epoch is scored for every dataset")
    table: dict[str, dict[int, float]] = {}
    for dataset, per_epoch in scores.items():
        missing = [e for e in epochs if e not in per_epoch]
        if missing:
            raise ValueError(f"{dataset}: no score for epoch(s) {missing} (scored: {sorted(per_epoch)})")
        for epoch in epochs:
            value = float(per_epoch[epoch])
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{dataset} epoch {epoch}: score {value} is not a fraction in [0, 1] (x100 given?)")
        table[dataset] = {e: float(per_epoch[e]) for e in epochs}
    return sorted(epochs), table


def _best(per_epoch: Mapping[int, float]) -> int:
    """Argmax epoch; ties -> the earliest (max keeps the first maximum of the ascending epochs)."""
    return max(sorted(per_epoch), key=lambda e: per_epoch[e])


@dataclass(frozen=True)
class PaperSelection:
    """Per dataset the best epoch on its own test set and that score; mean = mean of those maxima."""

    epochs: list[int]
    best_epoch: dict[str, int]
    best_score: dict[str, float]
    mean: float


@dataclass(frozen=True)
class CommonEpoch:
    """One epoch for every dataset; selected_by says how it was chosen."""

    epoch: int
    selected_by: str
    scores: dict[str, float]
    mean: float


@dataclass(frozen=True)
class ProtocolComparison:
    paper: PaperSelection
    common: CommonEpoch
    optimism_gap: float  # paper.mean - common.mean: what per-test-set selection adds


def paper_protocol(scores: Scores, epochs: list[int] | None = None) -> PaperSelection:
    """The official protocol: per dataset the max over the listed epochs (default: those all datasets have)."""
    epochs, table = _checked(scores, epochs)
    best_epoch = {dataset: _best(per_epoch) for dataset, per_epoch in table.items()}
    best_score = {dataset: table[dataset][epoch] for dataset, epoch in best_epoch.items()}
    return PaperSelection(epochs, best_epoch, best_score, sum(best_score.values()) / len(best_score))


def common_epoch(
    scores: Scores, val_scores: Mapping[int, float] | None, epochs: list[int] | None = None
) -> CommonEpoch:
    """The epoch with the best validation score and the mean over datasets at that epoch.

    Without validation scores (e.g. official result folders) the epoch with the best test-set mean is taken
    and labelled so: still test selection, but one epoch for all sets, so the gap isolates the per-set choice.
    """
    epochs, table = _checked(scores, epochs)
    means = {e: sum(per[e] for per in table.values()) / len(table) for e in epochs}
    if val_scores is None:
        epoch, selected_by = _best(means), "best mean test score (no validation scores; optimistic)"
    else:
        missing = [e for e in epochs if e not in val_scores]
        if missing:
            raise ValueError(f"validation: no score for epoch(s) {missing} (scored: {sorted(val_scores)})")
        bad = [e for e in epochs if not math.isfinite(float(val_scores[e]))]
        if bad:
            raise ValueError(f"validation: score of epoch(s) {bad} is not a finite number")
        epoch, selected_by = _best({e: float(val_scores[e]) for e in epochs}), "best validation score"
    return CommonEpoch(epoch, selected_by, {d: per[epoch] for d, per in table.items()}, means[epoch])


def compare_protocols(
    scores: Scores, epochs: list[int] | None = None, val_scores: Mapping[int, float] | None = None
) -> ProtocolComparison:
    """Both protocols on the same epochs, and the optimism gap (mean of maxima - common-epoch mean)."""
    paper = paper_protocol(scores, epochs)
    common = common_epoch(scores, val_scores, paper.epochs)
    return ProtocolComparison(paper, common, paper.mean - common.mean)

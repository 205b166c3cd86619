"""GRPO rewards on label lists: the EW score of one completion, a label-count penalty, format, combination.

Pure functions of already parsed label lists (metrics/ may not import labels/: the caller turns a
completion's text into labels with the deterministic sentence parser, never an LLM per rollout).

`ew_reward` is the single-sample version of the score MER-UniBench reports for OV-MERD+ (reference
§4 "ovlabel", §5.5-§5.6): per wheel W1..W5 at level 1, P = |gt∩pred|/|pred| and R = |gt∩pred|/|gt| on
the mapped label sets, F = 2PR/(P+R) (0 when P = R = 0, as metrics.ew), and the mean of F over the
wheels. A wheel where the GT maps to nothing is left out of the mean, because the dataset metric
skips the sample for that wheel; when the GT maps to nothing in every wheel (e.g. "neutral") the
sample carries no reward signal and the reward is None (the RL loop excludes and counts such samples).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from affectgpt.metrics.ew import f_score, mapped_set, normalise_labels
from affectgpt.metrics.wheel import WHEELS, EmotionWheel

PENALTIES = ("inverse", "ratio", "log", "none")


def label_count(labels: Any) -> int:
    """Distinct labels after the official normalisation (string_to_list, lower().strip()): the p and g of
    the length penalty. Unmappable labels count: predicting extra words the wheel does not know still
    inflates the answer."""
    return len(set(normalise_labels(labels)))


def ew_reward(pred_labels: Any, gt_labels: Any, wheel: EmotionWheel) -> float | None:
    """Mean over W1..W5 (level 1) of the single-sample F of `pred_labels` against `gt_labels`; None when the
    GT maps to nothing in every wheel. Either side may be a list or a list-like string (official parsing)."""
    pred, gt = normalise_labels(pred_labels), normalise_labels(gt_labels)
    scores = []
    for w in WHEELS:
        table = wheel.tables[f"W{w}-L1"]
        gt_set = mapped_set(gt, table)
        if not gt_set:  # the dataset metric skips this sample in this wheel
            continue
        pred_set = mapped_set(pred, table)
        hits = len(gt_set & pred_set)
        precision = hits / len(pred_set) if pred_set else 0.0
        scores.append(f_score(precision, hits / len(gt_set)))
    return sum(scores) / len(scores) if scores else None


def length_penalty(p: int, g: int, kind: str) -> float:
    """Factor on the EW reward for an answer with p predicted labels against g GT labels (1.0 when p <= g).

    Recall rewards listing many labels; these factors take that back when p > g: "inverse" 1/(p-g+1)
    (harsh: one extra label halves the reward), "ratio" g/p (proportional), "log" log g / log p (mild for
    large g, but 0 for g = 1: any extra label voids a single-label answer), "none" 1.0 (no correction).
    """
    if kind not in PENALTIES:
        raise ValueError(f"length penalty {kind!r} is not supported; choose one of: {', '.join(PENALTIES)}")
    if g < 1 or p < 0:
        raise ValueError(f"length penalty needs g >= 1 GT labels and p >= 0 predicted labels, got p={p}, g={g}")
    if p <= g or kind == "none":
        return 1.0
    if kind == "inverse":
        return 1.0 / (p - g + 1)
    if kind == "ratio":
        return g / p
    return math.log(g) / math.log(p)


def format_reward(ok: bool) -> float:
    """1.0 when the answer has the trained label-sentence form (labels.sentence.is_label_sentence), else 0.0."""
    return 1.0 if ok else 0.0


def combine(components: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted sum of reward components. Every component needs a weight and every weight a component
    (a typo in a config key must not silently drop a reward); weight 0 switches a component off."""
    unweighted = sorted(set(components) - set(weights))
    missing = sorted(set(weights) - set(components))
    if unweighted or missing:
        raise ValueError(
            f"reward components {sorted(components)} do not match weights {sorted(weights)}: "
            f"no weight for {unweighted}, no component for {missing}"
        )
    total = 0.0
    for name, value in components.items():
        if not math.isfinite(value) or not math.isfinite(weights[name]):
            raise ValueError(f"reward component {name!r}: value {value} x weight {weights[name]} is not finite")
        total += weights[name] * value
    return total

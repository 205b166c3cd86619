"""Intervals for one run's MER-UniBench table (`--protocol selected`) and the paired comparison of two runs
(`evaluate.py compare A B`), both on folders in the `evaluate.py unibench --all` layout.

A and B are resampled with the same indices per set (metrics/bootstrap.paired_difference), so the interval of
B - A reflects only how the two runs differ on the same samples; "B beats A" means the whole 95% interval of
the difference lies above 0.
"""

from __future__ import annotations

import json
from pathlib import Path

from affectgpt.data.unibench import UNIBENCH_ORDER
from affectgpt.labels.io import find_result_files
from affectgpt.metrics.bootstrap import (
    PerSample,
    SetIntervals,
    format_interval,
    nine_set_mean_interval,
    paired_difference,
)
from affectgpt.metrics.wheel import EmotionWheel
from affectgpt.protocols import set_ground_truth, set_samples


def run_samples(
    results_dir: str | Path, roots: dict[str, str], wheel: EmotionWheel | None, allow_missing: bool = False
) -> tuple[dict[str, PerSample], list[str]]:
    """Per-sample arrays of every set with label files in `results_dir` and a data root; (sets, skipped)."""
    sets: dict[str, PerSample] = {}
    skipped: list[str] = []
    for name in UNIBENCH_ORDER:
        openset, sentiment = find_result_files(results_dir, name)
        if openset is None and sentiment is None:
            skipped.append(f"{name}: no label files in {results_dir}")
            continue
        if name not in roots:
            skipped.append(f"{name}: no data root")
            continue
        sets[name] = set_samples(name, set_ground_truth(name, roots[name]), openset, sentiment, wheel, allow_missing)
    return sets, skipped


def interval_markdown(result: SetIntervals, n_resamples: int) -> str:
    """One row of `score [low, high]` per set and the mean over the sets (x100)."""
    lines = [
        f"Protocol: selected (one checkpoint). 95% percentile bootstrap intervals, {n_resamples} resamples, "
        "each set resampled independently.",
        "",
        "| dataset | score [95% CI] |",
        "|---|---|",
    ]
    lines += [f"| {d} | {format_interval(iv)} |" for d, iv in result.per_dataset.items()]
    label = "Mean" if len(result.per_dataset) == len(UNIBENCH_ORDER) else f"Mean ({len(result.per_dataset)}/9)"
    lines.append(f"| **{label}** | {format_interval(result.mean)} |")
    return "\n".join(lines)


def selected_intervals(
    results_dir: str | Path,
    roots: dict[str, str],
    wheel: EmotionWheel | None,
    n_resamples: int = 1000,
    seed: int = 0,
    allow_missing: bool = False,
) -> SetIntervals:
    sets, _ = run_samples(results_dir, roots, wheel, allow_missing)
    if not sets:
        raise ValueError(f"{results_dir}: no set to score")
    return nine_set_mean_interval(sets, n_resamples, seed)


def compare_runs(
    a_dir: str | Path,
    b_dir: str | Path,
    roots: dict[str, str],
    wheel: EmotionWheel | None,
    n_resamples: int = 1000,
    seed: int = 0,
    allow_missing: bool = False,
) -> tuple[SetIntervals, list[str]]:
    """B - A per set both runs have, and on their mean; notes name the sets only one run has."""
    a, _ = run_samples(a_dir, roots, wheel, allow_missing)
    b, _ = run_samples(b_dir, roots, wheel, allow_missing)
    common = [name for name in a if name in b]
    notes = [
        f"{name}: only in {'A' if name in a else 'B'}, not compared"
        for name in UNIBENCH_ORDER
        if (name in a) != (name in b)
    ]
    if not common:
        raise ValueError(f"{a_dir} and {b_dir} have no scored set in common")
    return paired_difference({n: a[n] for n in common}, {n: b[n] for n in common}, n_resamples, seed), notes


def verdict(diff) -> str:
    if diff.low > 0:
        return "B better"
    if diff.high < 0:
        return "A better"
    return "no clear difference"


def compare_markdown(result: SetIntervals, notes: list[str], n_resamples: int) -> str:
    lines = [
        f"B - A (x100), paired bootstrap on the same resamples, 95% intervals, {n_resamples} resamples.",
        "",
        "| dataset | B - A [95% CI] | P(B <= A) | verdict |",
        "|---|---|---|---|",
    ]
    for name, diff in [*result.per_dataset.items(), ("**Mean**", result.mean)]:
        lines.append(f"| {name} | {format_interval(diff, signed=True)} | {diff.p_b_le_a:.3f} | {verdict(diff)} |")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


# Which inputs each infer.py variant leaves the model (folder suffix -> modalities, the paper's Table 6 rows).
_KEEPS = {
    "": "A,V,T",
    "drop-audio": "V,T",
    "drop-face+frame": "A,T",
    "drop-face": "A,T (frames)",
    "drop-frame": "A,T (faces)",
    "drop-text": "A,V",
    "drop-audio+text": "V",
    "drop-face+frame+text": "A",
    "shuffle-media": "mismatched A,V + T",
}


def ablation_rows(results_dir: str | Path, extractor: str = "parser") -> list[tuple[str, str, dict]]:
    """(variant, modalities, unibench.json table) of every `<checkpoint>[-<variant>]/eval-<extractor>/unibench.json`
    under `results_dir` (the folders infer.py --drop / --shuffle-media and `evaluate.py run` write)."""
    tables = sorted(Path(results_dir).glob(f"*/eval-{extractor}/unibench.json"))
    if not tables:
        raise ValueError(f"{results_dir}: no */eval-{extractor}/unibench.json (run evaluate.py run on each variant)")
    names = [t.parent.parent.name for t in tables]
    base = min(names, key=len)  # the full model's folder is the prefix of every variant's
    rows = []
    for path, name in zip(tables, names):
        variant = name[len(base) + 1 :] if name != base else ""
        rows.append((variant or "full", _KEEPS.get(variant, variant), json.loads(path.read_text(encoding="utf-8"))))
    return rows


def ablation_markdown(rows: list[tuple[str, str, dict]]) -> str:
    """Variant x dataset table (x100) with each variant's mean and its change from the full model."""
    datasets = [d for d in UNIBENCH_ORDER if any(d in t["scores_x100"] for _, _, t in rows)]
    full = next((t["mean_x100"] for v, _, t in rows if v == "full"), None)
    lines = ["| variant | inputs | " + " | ".join(datasets) + " | Mean | vs full |", "|" + "---|" * (len(datasets) + 4)]
    for variant, keeps, table in rows:
        cells = [f"{table['scores_x100'][d]:.2f}" if d in table["scores_x100"] else "-" for d in datasets]
        delta = f"{table['mean_x100'] - full:+.2f}" if full is not None else "-"
        lines.append(f"| {variant} | {keeps} | " + " | ".join(cells) + f" | {table['mean_x100']:.2f} | {delta} |")
    return "\n".join(lines)

"""The published AffectGPT MER-UniBench rows and the markdown of `evaluate.py report`.

Source of every number below: AffectGPT (ICML 2025, arXiv 2501.16566v2), Table 2, as transcribed in
`shared/reference/anchors.md` §1.1 (its table rows "AffectGPT (A,V,T) | 78.54 | 78.80 | ...", lines 27-29 as of
2026-12), whose recomputed 9-set means match the printed Mean to within 0.01. They were obtained with the paper
protocol (per dataset the best of epochs 30-60 on its own test set), so they compare with our `--protocol paper`
numbers, not `selected`.
"""

from __future__ import annotations

from typing import Any

from affectgpt.data.unibench import UNIBENCH_ORDER
from affectgpt.metrics.bootstrap import format_interval

PUBLISHED_SOURCE = "AffectGPT paper (arXiv 2501.16566v2) Table 2, via shared/reference/anchors.md §1.1"
PUBLISHED_PROTOCOL = "paper (per-dataset best epoch of 30-60 on the test set)"
# x100, in UNIBENCH_ORDER (MER2023, MER2024, MELD, IEMOCAPFour, CMUMOSI, CMUMOSEI, SIMS, SIMSv2, OVMERDPlus), Mean
_ROWS = {
    "A,V,T": (78.54, 78.80, 55.65, 60.54, 81.30, 80.90, 88.49, 86.18, 62.52, 74.77),
    "V,T": (74.58, 75.29, 57.63, 62.19, 82.39, 81.57, 87.20, 86.29, 61.65, 74.31),
    "A,T": (72.94, 73.41, 56.63, 55.68, 83.46, 80.74, 82.99, 83.75, 59.98, 72.18),
}
PUBLISHED: dict[str, dict[str, float]] = {
    row: {**dict(zip(UNIBENCH_ORDER, values[:-1])), "Mean": values[-1]} for row, values in _ROWS.items()
}


def deltas(ours_x100: dict[str, float], row: str = "A,V,T") -> dict[str, float]:
    """ours - published (x100) for every dataset we scored, and for the mean when all nine were scored."""
    published = PUBLISHED[row]
    return {d: round(v - published[d], 2) for d, v in ours_x100.items() if d in published}


def report_markdown(report: dict[str, Any]) -> str:
    """report.md: the table with intervals, the protocol, published rows and deltas, provenance."""
    intervals = report["intervals"]
    datasets = [d for d in UNIBENCH_ORDER if d in intervals]
    complete = len(datasets) == len(UNIBENCH_ORDER)
    mean_label = "Mean" if complete else f"Mean ({len(datasets)}/9)"
    lines = [f"# MER-UniBench report: {report['results_dir']}", "", "## Protocol", "", report["protocol_text"], ""]
    lines += ["## Scores (x100, 95% percentile bootstrap intervals)", ""]
    lines += ["| dataset | ours [95% CI] |" + (" best epoch |" if report["protocol"] == "paper" else "")]
    lines += ["|---|---|" + ("---|" if report["protocol"] == "paper" else "")]
    for d in datasets:
        epoch = f" {report['best_epoch'][d]} |" if report["protocol"] == "paper" else ""
        lines.append(f"| {d} | {format_interval(intervals[d])} |{epoch}")
    paper = report["protocol"] == "paper"
    lines.append(f"| **{mean_label}** | {format_interval(report['mean'])} |" + (" - |" if paper else ""))
    if paper:
        lines += [
            "",
            f"Common epoch {report['common_epoch']} ({report['common_selected_by']}): mean "
            f"{format_interval(report['common_mean'])}; optimism gap (mean of maxima - common-epoch mean) "
            f"{format_interval(report['gap'], signed=True)}.",
        ]
    if report.get("published"):
        lines += _published_lines(report, datasets, complete)
    lines += ["", "## Provenance", ""]
    prov = report["provenance"]
    lines.append(f"- wheel: {prov['wheel']}")
    lines += [f"  - sha256 {digest}  {name}" for name, digest in prov["wheel_sha256"].items()]
    lines.append(f"- extractor: {prov['extractor']} (model: {prov['extractor_model']})")
    lines += [f"- checkpoint: {c}" for c in prov["checkpoints"]] or ["- checkpoint: unknown (no infer.py .meta.json)"]
    lines.append(f"- bootstrap: {prov['n_resamples']} resamples, seed {prov['seed']}, each set resampled independently")
    lines += [f"- not scored: {s}" for s in report.get("skipped", [])]
    return "\n".join(lines)


def _published_lines(report: dict[str, Any], datasets: list[str], complete: bool) -> list[str]:
    ours = {d: report["intervals"][d].point * 100 for d in datasets}
    if complete:
        ours["Mean"] = report["mean"].point * 100
    columns = [*datasets, "Mean"]
    lines = ["", f"## Published AffectGPT rows ({PUBLISHED_SOURCE}; protocol {PUBLISHED_PROTOCOL})", ""]
    lines += ["| row | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines.append("| ours | " + " | ".join(_fmt(ours.get(c)) for c in columns) + " |")
    for row, values in PUBLISHED.items():
        lines.append(f"| AffectGPT ({row}) | " + " | ".join(_fmt(values[c]) for c in columns) + " |")
    row = report["published"]
    diff = deltas(ours, row)
    lines.append(f"| ours - AffectGPT ({row}) | " + " | ".join(_fmt(diff.get(c), signed=True) for c in columns) + " |")
    if report["provenance"]["wheel"].startswith("demo"):
        lines.append("\nScored with the demo wheel: these deltas are NOT a comparison with the paper.")
    if not complete:
        lines.append("\nThe published mean covers nine sets; ours covers only the sets listed, so no mean delta.")
    return lines


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"

"""report.png of `evaluate.py report`: per-dataset scores with their 95% intervals, the published A,V,T row beside.

matplotlib with the Agg backend (no display needed); one figure, written once, so it costs well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affectgpt.data.unibench import UNIBENCH_ORDER
from affectgpt.report_published import PUBLISHED


def write_png(report: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    intervals = report["intervals"]
    names = [d for d in UNIBENCH_ORDER if d in intervals] + ["Mean"]
    cells = [intervals[d] for d in names[:-1]] + [report["mean"]]
    points = [iv.point * 100 for iv in cells]
    errors = [[(iv.point - iv.low) * 100 for iv in cells], [(iv.high - iv.point) * 100 for iv in cells]]
    xs = list(range(len(names)))
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=100)
    width = 0.4 if report.get("published") else 0.7
    ours_x = [x - (width / 2 if report.get("published") else 0) for x in xs]
    ax.bar(ours_x, points, width, label="ours", color="#3b75af")
    ax.errorbar(
        ours_x,
        points,
        yerr=errors,
        fmt="none",
        ecolor="black",
        capsize=3,
        label="95% CI",
    )
    if report.get("published"):
        row = PUBLISHED[report["published"]]
        ax.bar(
            [x + width / 2 for x in xs],
            [row[n] for n in names],
            width,
            label=f"AffectGPT ({report['published']})",
            color="#bbbbbb",
        )
    ax.set_xticks(xs)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("score x100")
    ax.set_ylim(0, 105)
    ax.set_title(f"MER-UniBench, protocol {report['protocol']}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    plt.close(fig)
    return out

"""What a run reports: metrics.jsonl (one object per epoch), train_log.jsonl (every N steps),
the optional wandb / tensorboard trackers, and the end-of-run PNG of loss and validation scores.

Only the main process writes; every function here is a no-op-safe plain file operation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from affectgpt.files import read_jsonl, rewrite_jsonl

METRICS_FILE = "metrics.jsonl"
TRAIN_LOG_FILE = "train_log.jsonl"
PLOT_FILE = "training_curves.png"
PLOT_SCORES = ("val/avg-L1/f1", "val/avg-L2/f1", "val/M-avg")


def tracker_kwargs(cfg: Any, run_dir: Path) -> dict[str, Any]:
    """init_kwargs for accelerate's trackers: wandb writes (offline by default) into the run directory."""
    if cfg.train.report_to == "wandb":
        return {"wandb": {"name": cfg.train.run_name, "dir": str(run_dir)}}
    return {}


def flat_config(cfg: Any) -> dict[str, Any]:
    """The config as flat `section.key` scalars, the form trackers store hyper-parameters in."""
    out = {}
    for section, values in cfg.to_dict().items():
        for key, value in values.items():
            out[f"{section}.{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out


def truncate_jsonl(path: Path, key: str, last: float) -> None:
    """Keep only records with record[key] <= last: on resume, drop what the lost tail had logged (a torn last
    line, left by a kill during an append, is dropped with a warning by read_jsonl)."""
    if path.is_file():
        rewrite_jsonl(path, [r for r in read_jsonl(path) if r.get(key, 0) <= last])


class Throughput:
    """Samples/s and tokens/s between two log points (the counts are already summed over ranks)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def rates(self, samples: float, tokens: float) -> dict[str, float]:
        now = time.perf_counter()
        elapsed = max(now - self.start, 1e-9)
        self.start = now
        return {"train/samples_per_s": samples / elapsed, "train/tokens_per_s": tokens / elapsed}


def epoch_summary(record: dict[str, Any]) -> str:
    """The one-line per-epoch summary printed by the main process."""
    return (
        f"epoch {record['epoch']} step {record['step']}: train/loss {record['train/loss']:.4f} | "
        f"val avg-L1 F1 {record['val/avg-L1/f1']:.4f} (P {record['val/avg-L1/precision']:.4f} "
        f"R {record['val/avg-L1/recall']:.4f}) | M-avg {record['val/M-avg']:.4f} | "
        f"n={record['val/n_samples']} empty={record['val/n_empty']}"
        + (f" | skipped {record['train/n_skipped']} training samples" if record.get("train/n_skipped") else "")
    )


def plot_curves(run_dir: Path) -> Path | None:
    """training_curves.png: train loss (per logged step and per epoch) and validation scores per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = read_jsonl(run_dir / METRICS_FILE)
    steps = read_jsonl(run_dir / TRAIN_LOG_FILE)
    if not epochs and not steps:
        return None
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    if steps:
        ax_loss.plot(
            [r["epoch_float"] for r in steps], [r["train/loss"] for r in steps], alpha=0.4, label="logged steps"
        )
    if epochs:
        ax_loss.plot([r["epoch"] for r in epochs], [r["train/loss"] for r in epochs], "o-", label="epoch mean")
        for key in PLOT_SCORES:
            if all(key in r for r in epochs):
                ax_val.plot([r["epoch"] for r in epochs], [r[key] for r in epochs], "o-", label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_val.set(xlabel="epoch", ylabel="score", title="validation (EW metric)", ylim=(0, 1))
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    path = run_dir / PLOT_FILE
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

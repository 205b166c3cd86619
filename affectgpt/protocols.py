"""`evaluate.py unibench --protocol paper`: score every listed epoch's label files, then both protocols with
bootstrap intervals (metrics/protocol.py for the selection rules, metrics/bootstrap.py for the intervals).

Folder layouts read (per dataset, per epoch):
- official: `<DIR>/**/results-<dataset>/**/checkpoint_0000NN_*-openset.npz` (and `-openset-sentiment.npz` for
  the dimension sets), as the official evaluation leaves them (reference §1, §7.2);
- ours: `<DIR>/<epoch folder>/` (a name ending in the epoch number: `epoch_030`, `30`) holding the
  `<Dataset>-openset.csv|npz` / `-sentiment` files of `evaluate.py run` (also inside its `eval-*` subfolder).

Every epoch of a set is resampled with the same indices (key = the dataset), so the maxima, the common-epoch
mean and their difference (the optimism gap) come from paired replicates. The per-dataset best epoch is chosen
once on the full test set and held fixed across replicates: the interval covers sampling noise of the chosen
epochs' scores, not the selection itself (which only adds to the optimism).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from affectgpt.data.unibench import UNIBENCH_ORDER, get_spec, ground_truth, read_unibench
from affectgpt.labels.io import find_result_files, load_name_values
from affectgpt.metrics.bootstrap import Interval, bootstrap, format_interval, per_sample, percentile_interval
from affectgpt.metrics.io import align
from affectgpt.metrics.protocol import compare_protocols
from affectgpt.metrics.wheel import EmotionWheel

_OFFICIAL = re.compile(r"^checkpoint_0*(\d+)_.*?-openset(-sentiment)?\.npz$", re.IGNORECASE)
_EPOCH_DIR = re.compile(r"(\d+)$")

EpochFiles = dict[int, tuple[Path | None, Path | None]]  # epoch -> (openset file, sentiment file)


def _official_files(results_dir: Path, dataset: str) -> EpochFiles:
    found: EpochFiles = {}
    folder = f"results-{dataset}".lower()
    for path in sorted(results_dir.rglob("checkpoint_*-openset*.npz")):
        if folder not in (p.name.lower() for p in path.parents):
            continue
        match = _OFFICIAL.match(path.name)
        if not match:
            continue
        epoch = int(match[1])
        openset, sentiment = found.get(epoch, (None, None))
        if match[2]:
            sentiment = path
        else:
            openset = path
        found[epoch] = (openset, sentiment)
    return found


def _our_files(results_dir: Path, dataset: str, extractor: str | None = None) -> EpochFiles:
    found: EpochFiles = {}
    prefix = f"eval-{extractor}" if extractor else "eval-"
    for sub in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        match = _EPOCH_DIR.search(sub.name)
        if not match:
            continue
        evals = sorted(p for p in sub.iterdir() if p.is_dir() and (p.name == prefix or p.name.startswith(prefix)))
        for where in [sub, *(evals if extractor is None else [p for p in evals if p.name == prefix])]:
            files = find_result_files(where, dataset)
            if files != (None, None):
                found[int(match[1])] = files
                break
    return found


def epoch_files(results_dir: str | Path, dataset: str, extractor: str | None = None) -> EpochFiles:
    """Per epoch the label files of one dataset (official layout first, else per-epoch folders; with `extractor`
    only their `eval-<extractor>/` subfolder, else the folder itself or its first `eval-*`)."""
    directory = Path(results_dir)
    if not directory.is_dir():
        raise ValueError(f"{directory}: results directory not found")
    return _official_files(directory, dataset) or _our_files(directory, dataset, extractor)


def epoch_answer_folders(results_dir: str | Path, epochs: list[int]) -> dict[int, Path]:
    """`evaluate.py run --protocol paper`: epoch -> the infer.py answer folder of that epoch's checkpoint (a
    subfolder whose name ends in the epoch number, e.g. infer.py's default `results/<run>/epoch_0030/`)."""
    directory = Path(results_dir)
    if not directory.is_dir():
        raise ValueError(f"{directory}: results directory not found")
    found: dict[int, Path] = {}
    for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
        match = _EPOCH_DIR.search(sub.name)
        answers = [p for p in sub.iterdir() if p.suffix.lower() in (".jsonl", ".csv", ".npz")] if match else []
        if match and answers and int(match[1]) in epochs:
            if int(match[1]) in found:
                raise ValueError(
                    f"{directory}: two folders for epoch {match[1]}: {found[int(match[1])].name}, {sub.name}"
                )
            found[int(match[1])] = sub
    missing = [e for e in epochs if e not in found]
    if missing:
        raise ValueError(f"{directory}: no answer folder (a subfolder named ...<epoch>) for epoch(s) {missing}")
    return found


# The validation score a training run selects its best checkpoint on (train/run.py SCORE_KEY; a test keeps
# the two equal), read from the run's metrics.jsonl.
VAL_SCORE_KEY = "val/avg-L1/f1"


def _metrics_jsonl(path: Path) -> dict[int, float]:
    """epoch -> VAL_SCORE_KEY of a training run's metrics.jsonl (the last record of an epoch wins)."""
    scores: dict[int, float] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path} line {number}: not JSON ({err})") from err
        if isinstance(record, dict) and VAL_SCORE_KEY in record and "epoch" in record:
            scores[int(record["epoch"])] = float(record[VAL_SCORE_KEY])
    if not scores:
        raise ValueError(f"{path}: no record with 'epoch' and '{VAL_SCORE_KEY}' (validation was off?)")
    return scores


def read_val_scores(path: str | Path | None) -> dict[int, float] | None:
    """--val-scores: a JSON {"30": 0.61, "35": 0.63, ...} (validation score per epoch), or a training run's
    metrics.jsonl (its per-epoch `val/avg-L1/f1`); None when not given."""
    if not path:
        return None
    if Path(path).suffix.lower() == ".jsonl":
        if not Path(path).is_file():
            raise ValueError(f"{path}: validation metrics file not found")
        return _metrics_jsonl(Path(path))
    try:
        return {int(k): float(v) for k, v in json.loads(Path(path).read_text(encoding="utf-8")).items()}
    except (OSError, ValueError, AttributeError) as err:
        raise ValueError(f"{path}: expected a JSON object epoch -> validation score ({err})") from err


@dataclass
class PaperReport:
    epochs: list[int]
    best_epoch: dict[str, int]
    best: dict[str, Interval]
    common_epoch: int
    common_selected_by: str
    common: dict[str, Interval]
    mean_of_maxima: Interval
    common_mean: Interval
    gap: Interval
    skipped: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": "paper",
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best": {d: iv.to_dict() for d, iv in self.best.items()},
            "common_epoch": self.common_epoch,
            "common_selected_by": self.common_selected_by,
            "common": {d: iv.to_dict() for d, iv in self.common.items()},
            "mean_of_maxima": self.mean_of_maxima.to_dict(),
            "common_epoch_mean": self.common_mean.to_dict(),
            "optimism_gap": self.gap.to_dict(),
            "skipped": self.skipped,
        }


def set_samples(
    dataset: str,
    gt: dict,
    openset: Path | None,
    sentiment: Path | None,
    wheel: EmotionWheel | None,
    allow_missing: bool,
):
    """Per-sample arrays (metrics/bootstrap.py) of one set's label file against its GT."""
    spec = get_spec(dataset)
    path = sentiment if spec.task == "dimension" else openset
    if path is None:
        raise ValueError(f"{spec.name}: no {'sentiment' if spec.task == 'dimension' else 'openset'} file")
    values = load_name_values(path, column="sentiment" if spec.task == "dimension" else "openset")
    aligned = align(gt, values, allow_missing, fill="" if spec.task == "dimension" else "[]", source=str(path))
    return per_sample(spec.task, gt, aligned.values, wheel, spec.name)


def set_ground_truth(dataset: str, root: str) -> dict:
    spec = get_spec(dataset)
    return ground_truth(read_unibench(spec.name, root, on_error="raise", check_media=False), spec.task)


def _score_epochs(
    dataset: str, root: str, files: EpochFiles, epochs: list[int], wheel: EmotionWheel | None, opts: dict
) -> dict[int, Interval]:
    gt = set_ground_truth(dataset, root)
    out: dict[int, Interval] = {}
    for epoch in epochs:
        try:
            ps = set_samples(dataset, gt, *files[epoch], wheel, opts["allow_missing"])
        except ValueError as err:
            raise ValueError(f"epoch {epoch}: {err}") from err
        out[epoch] = bootstrap(ps, opts["n_resamples"], opts["seed"], opts["alpha"], key=get_spec(dataset).name)
    return out


def paper_report(
    results_dir: str | Path,
    roots: dict[str, str],
    wheel: EmotionWheel | None,
    epochs: list[int],
    val_scores: dict[int, float] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    allow_missing: bool = False,
    partial: bool = False,
    extractor: str | None = None,
) -> PaperReport:
    """Both protocols over `epochs` for every MER-UniBench set found in `results_dir` (roots: data.unibench_roots)."""
    opts = {"n_resamples": n_resamples, "seed": seed, "alpha": alpha, "allow_missing": allow_missing}
    per: dict[str, dict[int, Interval]] = {}
    skipped: list[str] = []
    for name in UNIBENCH_ORDER:
        files = epoch_files(results_dir, name, extractor)
        missing = [e for e in epochs if e not in files]
        if not files or missing or name not in roots:
            why = "no data root" if name not in roots else f"no files for epoch(s) {missing or epochs}"
            skipped.append(f"{name}: {why}")
            continue
        per[name] = _score_epochs(name, roots[name], files, epochs, wheel, opts)
    if not per:
        raise ValueError(f"no dataset has result files for every epoch {epochs} in {results_dir}: {skipped}")
    if skipped and not partial:
        raise ValueError("cannot build the full table:\n  " + "\n  ".join(skipped) + "\n(--partial scores the rest)")
    points = {d: {e: iv.point for e, iv in by_epoch.items()} for d, by_epoch in per.items()}
    cmp = compare_protocols(points, epochs, val_scores)
    best = {d: per[d][cmp.paper.best_epoch[d]] for d in per}
    common = {d: per[d][cmp.common.epoch] for d in per}
    best_rep = np.mean([iv.samples for iv in best.values()], axis=0)
    common_rep = np.mean([iv.samples for iv in common.values()], axis=0)
    return PaperReport(
        epochs=list(epochs),
        best_epoch=dict(cmp.paper.best_epoch),
        best=best,
        common_epoch=cmp.common.epoch,
        common_selected_by=cmp.common.selected_by,
        common=common,
        mean_of_maxima=percentile_interval(cmp.paper.mean, best_rep, alpha),
        common_mean=percentile_interval(cmp.common.mean, common_rep, alpha),
        gap=percentile_interval(cmp.optimism_gap, best_rep - common_rep, alpha),
        skipped=skipped,
    )


def paper_markdown(report: PaperReport) -> str:
    """The per-dataset table (best epoch and its score, the common epoch's score) and the two means."""
    pct = int(round((1 - report.mean_of_maxima.alpha) * 100))
    lines = [
        f"Protocol: paper (per dataset the best of epochs {report.epochs} on its own test set), beside one common "
        f"epoch {report.common_epoch} ({report.common_selected_by}). Scores x100 with {pct}% bootstrap intervals "
        f"({len(report.mean_of_maxima.samples)} resamples).",
        "",
        f"| dataset | best epoch | best-epoch score | epoch {report.common_epoch} score |",
        "|---|---|---|---|",
    ]
    for d, iv in report.best.items():
        lines.append(f"| {d} | {report.best_epoch[d]} | {format_interval(iv)} | {format_interval(report.common[d])} |")
    lines.append(f"| **Mean** | - | {format_interval(report.mean_of_maxima)} | {format_interval(report.common_mean)} |")
    lines += ["", f"Optimism gap (mean of maxima - common-epoch mean): {format_interval(report.gap, signed=True)}"]
    lines += [f"Not scored: {s}" for s in report.skipped]
    return "\n".join(lines)

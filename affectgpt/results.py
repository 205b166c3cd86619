"""From infer.py result files to scores: find them in a folder, extract OV labels, score each dataset.

A results folder holds one answers file per dataset (`<Dataset>.jsonl|.csv` written by infer.py with
its `.meta.json`, or an official `name2reason` npz named after the dataset). MER-UniBench sets are
scored with `affectgpt.metrics.unibench.score_dataset` (`score_unibench_set`); OV-labelled sets that are not
part of MER-UniBench (the training run's `val` split, MER2025 label sets) with the EW scores validation logs
(`score_ov_set` -> metrics/ew.py `score_predictions`), against the ground truth selected by data/sources.py, so
`val` results give exactly the score the run logged. Derived files (`<Dataset>-openset.csv`, `<Dataset>-sentiment.csv`)
are written in the layout `evaluate.py unibench --all` reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from affectgpt.config import Config
from affectgpt.data.mer2025 import MER2025_FILES
from affectgpt.data.records import DataError, SkipLog, list_to_string
from affectgpt.data.sources import VAL, ov_ground_truth_records
from affectgpt.data.unibench import UNIBENCH, ground_truth
from affectgpt.infer.outputs import META_SUFFIX, read_meta, read_responses
from affectgpt.infer.runner import config_from_meta
from affectgpt.labels.extract import LabelExtractor
from affectgpt.labels.io import write_openset_csv
from affectgpt.labels.sentiment import write_sentiment_csv
from affectgpt.metrics.ew import score_predictions
from affectgpt.metrics.unibench import DatasetScore, score_dataset
from affectgpt.metrics.wheel import EmotionWheel

logger = logging.getLogger(__name__)

DERIVED = ("-openset", "-sentiment", "-openset-sentiment")
_UNIBENCH_BY_LOWER = {name.lower(): name for name in UNIBENCH}


@dataclass
class ResultSet:
    """The answers for one dataset and what is known about how they were made."""

    path: Path
    dataset: str  # a MER-UniBench name, "val", or a MER2025 label set
    meta: dict[str, Any] | None
    responses: dict[str, str] = field(default_factory=dict)

    @property
    def is_unibench(self) -> bool:
        return self.dataset in UNIBENCH

    @cached_property
    def config(self) -> Config | None:
        """The stored config, rebuilt once (the wheel choice and scoring both ask for it)."""
        return config_from_meta(self.meta) if self.meta and self.meta.get("config") else None


def _dataset_of(path: Path, meta: dict[str, Any] | None) -> str | None:
    name = str(meta["dataset"]) if meta and meta.get("dataset") else path.stem
    if name.lower() in _UNIBENCH_BY_LOWER:
        return _UNIBENCH_BY_LOWER[name.lower()]
    if name == VAL or name.lower() in MER2025_FILES:
        return name.lower()
    return None


def discover(results_dir: str | Path) -> tuple[list[ResultSet], list[str]]:
    """(answer sets, notes on files that were passed over) of a folder, one set per dataset."""
    directory = Path(results_dir)
    if not directory.is_dir():
        raise DataError("results directory not found", path=directory)
    sets: dict[str, ResultSet] = {}
    notes: list[str] = []
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in (".jsonl", ".csv", ".npz"))
    stems_with_text = {p.stem for p in files if p.suffix.lower() != ".npz"}
    for path in files:
        if path.name.endswith(META_SUFFIX) or any(path.stem.lower().endswith(d) for d in DERIVED):
            continue
        if path.suffix.lower() == ".npz" and path.stem in stems_with_text:
            continue  # infer.py --official-npz copy of a results file already read
        meta = read_meta(path)
        dataset = _dataset_of(path, meta)
        if dataset is None:
            notes.append(f"{path.name}: not named after a dataset and no {path.stem}{META_SUFFIX}; ignored")
            continue
        if dataset in sets:
            raise DataError(
                f"two answer files for {dataset}: {sets[dataset].path.name} and {path.name}; keep one", path=directory
            )
        sets[dataset] = ResultSet(path, dataset, meta, read_responses(path))
    return list(sets.values()), notes


def extraction_counts(extracted: dict[str, Any]) -> dict[str, int]:
    return {
        "n_answers": len(extracted),
        "n_empty": sum(1 for e in extracted.values() if not e.labels),
        "n_unparsed": sum(1 for e in extracted.values() if not e.ok),
    }


def _ground_truth_records(rs: ResultSet) -> list:
    """GT records of a non-UniBench OV set, selected exactly as training / inference selected them."""
    cfg = rs.config
    if cfg is None:
        raise ValueError(
            f"{rs.path.name}: scoring {rs.dataset!r} needs the config stored by infer.py ({rs.path.stem}{META_SUFFIX})"
        )
    return ov_ground_truth_records(cfg.data, rs.dataset, (rs.meta or {}).get("data_root"), SkipLog())


def _extract(rs: ResultSet, extractor: LabelExtractor, out_dir: Path) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Labels per answer (written as `<Dataset>-openset.csv`) and the extraction counts."""
    extracted = extractor.extract(rs.responses)
    labels = {name: e.labels for name, e in extracted.items()}
    write_openset_csv(out_dir / f"{rs.dataset}-openset.csv", labels)
    return labels, extraction_counts(extracted)


def score_ov_set(
    rs: ResultSet, extractor: LabelExtractor, wheel: EmotionWheel, out_dir: Path
) -> tuple[dict[str, Any], dict[str, int]]:
    """A non-UniBench OV set (`val`, MER2025 label sets): EW scores against the GT read as training reads it."""
    labels, counts = _extract(rs, extractor, out_dir)
    return score_predictions(ground_truth(_ground_truth_records(rs), "ovlabel"), labels, wheel), counts


def score_unibench_set(
    rs: ResultSet,
    extractor: LabelExtractor,
    wheel: EmotionWheel,
    out_dir: Path,
    roots: dict[str, str],
    allow_missing: bool = False,
) -> tuple[DatasetScore, dict[str, int]]:
    """A MER-UniBench set: OV labels (+ sentiment for the dimension sets, `<Dataset>-sentiment.csv`), then the
    set's official score (metrics/unibench.score_dataset)."""
    labels, counts = _extract(rs, extractor, out_dir)
    spec = UNIBENCH[rs.dataset]
    root = (rs.meta or {}).get("data_root") or roots.get(rs.dataset)
    if not root:
        raise ValueError(f"{rs.dataset}: no data root (no {rs.path.stem}{META_SUFFIX}; pass --data-roots-from CONFIG)")
    sentiment = None
    if spec.task == "dimension":
        sentiment = extractor.sentiment(labels)
        write_sentiment_csv(out_dir / f"{rs.dataset}-sentiment.csv", sentiment)
    openset = {name: list_to_string(value) for name, value in labels.items()}
    score = score_dataset(rs.dataset, root, wheel, openset, sentiment, allow_missing)
    score.extra["extraction"] = counts
    if counts["n_unparsed"]:
        score.notes.append(f"{counts['n_unparsed']} answer(s) gave no readable label list and count as empty")
    return score, counts


def ew_markdown(ew: dict[str, dict[str, Any]]) -> str:
    """A small table of EW scores (x100) for the non-UniBench OV sets."""
    lines = ["| dataset | avg-L1 F1 | P | R | avg-L2 F1 | M-avg | samples | empty | missing |", "|" + "---|" * 9]
    for name, s in ew.items():
        lines.append(
            f"| {name} | {s['avg-L1/f1'] * 100:.2f} | {s['avg-L1/precision'] * 100:.2f} "
            f"| {s['avg-L1/recall'] * 100:.2f} | {s['avg-L2/f1'] * 100:.2f} | {s['M-avg'] * 100:.2f} "
            f"| {s['n_samples']} | {s['n_empty']} | {s['n_missing']} |"
        )
    return "\n".join(lines)

"""Which samples a command reads: the one place that turns a config (plus a split or dataset name) into records.

Training (`training_records`), the feature-cache command (`split_records`), `infer.py` (`select_record_sets`) and
`evaluate.py run` (ground truth of a `val` result set) all select through here, so `infer.py --split val` and
`python -m affectgpt.cache --split val` read exactly the validation samples the training run scored.

- `train`: `data.train_dataset` of the MER2025 folder `data.root` (minus the held-out slice when
  `data.val_dataset: split`).
- `val`: the held-out slice (a record is held out when the hash of its name falls below `data.val_fraction`:
  stable across orderings and processes), `ovmerd`, or a MER-UniBench set; only samples with OV labels;
  capped at `data.val_max_samples` by name hash.
- `test`: every MER-UniBench set that has a root in `data.unibench_roots`, in the official order.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectgpt.data.mer2025 import MER2025_FILES, ReadReport, read_mer2025
from affectgpt.data.records import Record, SkipLog
from affectgpt.data.unibench import UNIBENCH_ORDER, get_spec, read_unibench

logger = logging.getLogger(__name__)

VAL = "val"
SPLITS = ("train", "val", "test", "all")
EMPTY_SUBTITLES = {"keep": True, "skip": False}  # data.empty_subtitles -> the readers' allow_empty_subtitle


def read_dataset(
    name: str, root: str | Path, subtitle_language: str = "english", allow_empty_subtitle: bool = False, **kwargs: Any
) -> list[Record]:
    """One dataset by name: a MER2025 set by its lower-case key (mercaptionplus, ovmerd, mer2025ov), else a
    MER-UniBench name. `subtitle_language` picks the MER2025 subtitle column; each UniBench set has its own
    fixed column. `allow_empty_subtitle` is the MER2025 (training) policy; UniBench test sets always keep such
    samples."""
    if name.lower() in MER2025_FILES:
        return read_mer2025(
            root,
            dataset=name.lower(),
            subtitle_language=subtitle_language,
            allow_empty_subtitle=allow_empty_subtitle,
            **kwargs,
        )
    return read_unibench(name, root, **kwargs)


def name_fraction(name: str) -> float:
    """A stable pseudo-random number in [0, 1) per sample name (independent of order and process)."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big") / 2**64


def split_by_name(records: list[Record], val_fraction: float) -> tuple[list[Record], list[Record]]:
    """(train, val): a record is held out when its name hash falls below val_fraction (order kept)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1) for val_dataset=split, got {val_fraction}")
    held_out = [name_fraction(r.name) < val_fraction for r in records]
    val = [r for r, out in zip(records, held_out) if out]
    train = [r for r, out in zip(records, held_out) if not out]
    if not val or not train:
        raise ValueError(
            f"data.val_fraction={val_fraction} leaves {len(train)} training and {len(val)} validation samples "
            f"out of {len(records)}; use more data or another fraction"
        )
    return train, val


def unibench_root(data_cfg: Any, name: str) -> str | None:
    """The configured root of a MER-UniBench set (names match case-insensitively), or None."""
    by_lower = {k.lower(): v for k, v in data_cfg.unibench_roots.items()}
    return by_lower.get(name.lower())


def training_records(
    data_cfg: Any, skips: SkipLog, reports: list[ReadReport] | None = None
) -> tuple[list[Record], list[Record]]:
    """(train, val) records per data.train_dataset / data.val_dataset (split | ovmerd | a MER-UniBench name).

    `reports`, if given, receives one ReadReport per file set read (NA cells, empty subtitles, warnings)."""
    kwargs = {
        "subtitle_language": data_cfg.subtitle_language,
        "on_error": data_cfg.on_error,
        "skips": skips,
        "allow_empty_subtitle": EMPTY_SUBTITLES[data_cfg.empty_subtitles],
    }

    def read(name: str, root: str) -> list[Record]:
        report = ReadReport()
        if reports is not None:
            reports.append(report)
        return read_dataset(name, root, report=report, **kwargs)

    records = read(data_cfg.train_dataset, data_cfg.root)
    source = data_cfg.val_dataset
    if source == "split":
        train, val = split_by_name(records, data_cfg.val_fraction)
    else:
        train = records
        root = data_cfg.root if source.lower() in MER2025_FILES else unibench_root(data_cfg, source)
        if root is None:
            have = sorted(data_cfg.unibench_roots)
            raise ValueError(f"data.val_dataset={source!r}: no root in data.unibench_roots (have {have})")
        val = read(source, root)
    val = [r for r in val if r.ovlabels is not None]
    if not val:
        raise ValueError(f"data.val_dataset={source!r}: no validation samples with OV labels")
    if data_cfg.val_max_samples > 0:
        val = sorted(val, key=lambda r: name_fraction(r.name))[: data_cfg.val_max_samples]
    return train, val


def split_records(data_cfg: Any, split: str, skips: SkipLog | None = None) -> list[Record]:
    """The records of `split` (train | val | test | all), read once from the dataset files (feature cache)."""
    if split not in SPLITS:
        raise ValueError(f"--split {split!r}: choose one of {', '.join(SPLITS)}")
    skips = skips if skips is not None else SkipLog()
    out: list[Record] = []
    if split in ("train", "val", "all"):
        train, val = training_records(data_cfg, skips)
        out += train if split == "train" else val if split == "val" else train + val
    if split in ("test", "all"):
        if split == "test" and not data_cfg.unibench_roots:
            raise ValueError("--split test: data.unibench_roots is empty (map MER-UniBench names to their folders)")
        for name, root in data_cfg.unibench_roots.items():
            kwargs = {"subtitle_language": data_cfg.subtitle_language, "on_error": data_cfg.on_error, "skips": skips}
            out += read_dataset(name, root, **kwargs)
    return out


@dataclass
class RecordSet:
    """One dataset to answer: its label (results file stem), task, data root and records."""

    label: str
    task: str  # "ovlabel" | "discrete" | "dimension"
    root: str
    records: list[Record]


def read_record_set(data_cfg: Any, name: str, data_root: str | None, skips: SkipLog) -> RecordSet:
    """One dataset by name for inference: a MER2025 label set or a MER-UniBench test set. Bad samples are
    skipped, counted in `skips` and reported by the caller, never fatal."""
    on_error = {"on_error": "skip", "skips": skips}
    if name.lower() in MER2025_FILES:
        root = data_root or data_cfg.root
        records = read_dataset(name, root, subtitle_language=data_cfg.subtitle_language, **on_error)
        return RecordSet(name.lower(), "ovlabel", str(root), records)
    spec = get_spec(name)
    root = data_root or unibench_root(data_cfg, spec.name)
    if not root:
        raise ValueError(f"no data root for {spec.name}: pass --data-root DIR or set data.unibench_roots.{spec.name}")
    return RecordSet(spec.name, spec.task, str(root), read_dataset(spec.name, root, **on_error))


def select_record_sets(
    data_cfg: Any, split: str | None, datasets: list[str], data_root: str | None, skips: SkipLog
) -> list[RecordSet]:
    """--split val (the run's validation records), --split test (every configured MER-UniBench set) or --dataset."""
    if split == VAL:
        _, val = training_records(data_cfg, skips)
        return [RecordSet(VAL, "ovlabel", str(data_cfg.root), val)]
    if split == "test":
        names = [n for n in UNIBENCH_ORDER if unibench_root(data_cfg, n)]
        missing = [n for n in UNIBENCH_ORDER if n not in names]
        if not names:
            raise ValueError("--split test needs data.unibench_roots in the config (or --dataset NAME --data-root DIR)")
        if missing:
            logger.warning(
                "--split test: no data.unibench_roots entry for %s; they are not inferred", ", ".join(missing)
            )
        return [read_record_set(data_cfg, n, None, skips) for n in names]
    if not datasets:
        raise ValueError("say what to answer: --split val|test, --dataset NAME [--data-root DIR], or --video FILE")
    if data_root and len(datasets) > 1:
        raise ValueError("--data-root works with a single --dataset; use data.unibench_roots for several")
    return [read_record_set(data_cfg, name, data_root, skips) for name in datasets]


def ov_ground_truth_records(data_cfg: Any, dataset: str, root: str | None, skips: SkipLog) -> list[Record]:
    """The OV-labelled records of a non-UniBench result set (`val` or a MER2025 label set), read exactly as
    training and inference read them (so a `val` results file is scored on the samples the run validated on)."""
    if dataset == VAL:
        return training_records(data_cfg, skips)[1]
    records = read_dataset(dataset, root or data_cfg.root, on_error="skip", skips=skips)
    return [r for r in records if r.ovlabels is not None]

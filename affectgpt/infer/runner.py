"""What infer.py runs on: checkpoint -> model, which records, where results go, and how they are described.

A checkpoint is any folder `affectgpt.model.checkpoint` reads (a training epoch, `best`, or the
output of `python -m affectgpt.import_official`); a run directory resolves to its `best` checkpoint.
The model is rebuilt from the checkpoint's config (base models from its local paths, overridable).
Records come from the same readers as training: `--split val` calls the training loop's
`load_records`, so it selects exactly the validation samples of that run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from affectgpt.config import Config, apply_dict
from affectgpt.data.mer2025 import MER2025_FILES
from affectgpt.data.modes import without_faces
from affectgpt.data.records import Record, SkipLog
from affectgpt.data.unibench import get_spec, read_dataset
from affectgpt.metrics.unibench import UNIBENCH_ORDER
from affectgpt.model.checkpoint import MANIFEST, CheckpointError, load_checkpoint, load_checkpoint_config

logger = logging.getLogger(__name__)

VAL = "val"


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder; a training run folder resolves to its best (else last) checkpoint."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return path.resolve()
    for pointer in ("best", "last"):
        info = path / f"{pointer}.json"
        if info.is_file():
            target = path / json.loads(info.read_text(encoding="utf-8"))["checkpoint"]
            if (target / MANIFEST).is_file():
                logger.info("%s is a run directory: using its %s checkpoint %s", path, pointer, target.name)
                return target.resolve()
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint folder not found")
    raise CheckpointError(f"{path}: not a checkpoint (no {MANIFEST}) nor a run directory with best.json / last.json")


def checkpoint_config(ckpt: Path, overrides: list[str] | None = None, llm: str | None = None,
                      clip: str | None = None, hubert: str | None = None) -> Config:  # fmt: skip
    """The checkpoint's config, with `section.key=value` overrides and base-model folder overrides."""
    cfg = load_checkpoint_config(ckpt, overrides)
    for key, value in (("llm", llm), ("clip", clip), ("hubert", hubert)):
        if value:
            setattr(cfg.model, key, value)
    return cfg


def frame_fallback(cfg: Config) -> bool:
    """No face crops available: switch a face mode to its frame twin (affectgpt.data.modes; the same video
    weights read frames, official §1.4 shares them); True if it changed. ValueError when the mode has none."""
    mode = without_faces(cfg.model.face_or_frame)
    changed = mode != cfg.model.face_or_frame
    cfg.model.face_or_frame = mode
    return changed


def pick_device(name: str | None = None) -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def load_model(cfg: Config, ckpt: Path, device: torch.device) -> tuple[Any, Any]:
    """(AffectGPT with the checkpoint's trainable weights, tokenizer), in eval mode on `device`."""
    from affectgpt.model.build import build_model

    # With a feature cache every sample's encoder outputs are read from disk: no encoders needed.
    model, tokenizer = build_model(cfg, with_encoders=not cfg.data.feature_cache)
    load_checkpoint(model, ckpt)
    model.to(device).eval()
    return model, tokenizer


def prepare_feature_cache(cfg: Config, records: list[Record]) -> None:
    """data.feature_cache set: encode whatever of `records` is not cached yet (fingerprint-checked)."""
    if cfg.data.feature_cache:
        from affectgpt.cache import build_cache

        build_cache(cfg, records)


def autocast_for(cfg: Config, device: torch.device) -> Callable | None:
    """The training run's mixed precision as an autocast factory (None = full precision)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.train.mixed_precision)
    if dtype is None or (dtype is torch.float16 and device.type != "cuda"):
        return None
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class RecordSet:
    """One dataset to answer: its label (file stem), task, data root and records."""

    label: str
    task: str  # "ovlabel" | "discrete" | "dimension"
    root: str
    records: list[Record]


def _unibench_root(cfg: Config, name: str) -> str | None:
    by_lower = {k.lower(): v for k, v in cfg.data.unibench_roots.items()}
    return by_lower.get(name.lower())


def read_records(cfg: Config, name: str, data_root: str | None, skips: SkipLog) -> RecordSet:
    """One dataset by name: a MER2025 label set (ovmerd, mercaptionplus, ...) or a MER-UniBench test set."""
    on_error = {"on_error": "skip", "skips": skips}  # bad samples are counted and reported, never fatal
    if name.lower() in MER2025_FILES:
        root = data_root or cfg.data.root
        records = read_dataset(name, root, subtitle_language=cfg.data.subtitle_language, **on_error)
        return RecordSet(name.lower(), "ovlabel", str(root), records)
    spec = get_spec(name)
    root = data_root or _unibench_root(cfg, spec.name)
    if not root:
        raise ValueError(f"no data root for {spec.name}: pass --data-root DIR or set data.unibench_roots.{spec.name}")
    return RecordSet(spec.name, spec.task, str(root), read_dataset(spec.name, root, **on_error))


def select_record_sets(cfg: Config, split: str | None, datasets: list[str], data_root: str | None,
                       skips: SkipLog) -> list[RecordSet]:  # fmt: skip
    """--split val (the run's validation records), --split test (every configured MER-UniBench set) or --dataset."""
    if split == VAL:
        from affectgpt.train.data import load_records

        _, val = load_records(cfg.data, skips)
        return [RecordSet(VAL, "ovlabel", str(cfg.data.root), val)]
    if split == "test":
        names = [n for n in UNIBENCH_ORDER if _unibench_root(cfg, n)]
        missing = [n for n in UNIBENCH_ORDER if n not in names]
        if not names:
            raise ValueError("--split test needs data.unibench_roots in the config (or --dataset NAME --data-root DIR)")
        if missing:
            logger.warning("--split test: no data.unibench_roots entry for %s; they are not inferred", ", ".join(missing))
        return [read_records(cfg, n, None, skips) for n in names]
    if not datasets:
        raise ValueError("say what to answer: --split val|test, --dataset NAME [--data-root DIR], or --video FILE")
    if data_root and len(datasets) > 1:
        raise ValueError("--data-root works with a single --dataset; use data.unibench_roots for several")
    return [read_records(cfg, name, data_root, skips) for name in datasets]


def absolute_config(cfg: Config) -> dict[str, Any]:
    """The config as a dict with data paths made absolute (evaluate.py may run from elsewhere)."""
    data = cfg.to_dict()

    def absolute(value: str) -> str:
        return str(Path(value).resolve()) if value else value

    data["data"]["root"] = absolute(cfg.data.root)
    data["data"]["unibench_roots"] = {k: absolute(v) for k, v in cfg.data.unibench_roots.items()}
    data["eval"]["wheel_dir"] = absolute(cfg.eval.wheel_dir)
    return data


def config_from_meta(meta: dict[str, Any]) -> Config:
    """The Config an infer.py results file was produced with (stored in its metadata)."""
    return apply_dict(Config(), meta.get("config") or {}, source="results metadata")


def default_out_dir(cfg: Config, ckpt: Path) -> Path:
    """results/<run name>/<checkpoint name>/ (git-ignored)."""
    run = cfg.train.run_name or ckpt.parent.name
    return Path("results") / run / ckpt.name

"""What infer.py runs on: checkpoint -> config and model, where results go, and how they are described.

A checkpoint is any folder `affectgpt.model.checkpoint` reads (a training epoch, `best`, or the
output of `python -m affectgpt.import_official`); a run directory resolves to its `best` checkpoint.
The model is rebuilt from the checkpoint's config (base models from its local paths, overridable).
Which records are answered is decided in `affectgpt.data.sources` (the same selection training uses).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from affectgpt.config import Config, apply_dict
from affectgpt.data.modes import without_faces
from affectgpt.model.build import build_model
from affectgpt.model.checkpoint import (
    MANIFEST,
    CheckpointError,
    load_checkpoint,
    load_checkpoint_config,
)

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


def checkpoint_config(
    ckpt: Path,
    overrides: list[str] | None = None,
    llm: str | None = None,
    clip: str | None = None,
    hubert: str | None = None,
) -> Config:
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


def load_model(cfg: Config, ckpt: Path, device: torch.device) -> tuple[Any, Any]:
    """(AffectGPT with the checkpoint's trainable weights, tokenizer), in eval mode on `device`."""
    # With a feature cache every sample's encoder outputs are read from disk: no encoders needed.
    model, tokenizer = build_model(cfg, with_encoders=not cfg.data.feature_cache)
    load_checkpoint(model, ckpt)
    model.to(device).eval()
    return model, tokenizer


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

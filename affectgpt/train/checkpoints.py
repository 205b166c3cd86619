"""Run-directory checkpoints: atomic writes, integrity manifest, resume discovery, rotation, best/last pointers.

Layout of a run (`train.output_dir / train.run_name`):
    config.yaml, metrics.jsonl, train_log.jsonl, training_curves.png
    epoch_0003/            one complete checkpoint: trainable weights (infer.py --ckpt accepts it),
                           state/ (accelerate save_state: optimizer, scheduler, RNG, DeepSpeed shards),
                           trainer.json (epoch, step, data position, best so far), val_predictions.jsonl,
                           COMPLETE (written last: the one manifest of every file with size and sha256)
    interrupt_00000123/    the same, saved at a step boundary after SIGTERM / Ctrl-C
    best, last             symlinks to checkpoint dirs, plus best.json / last.json (the same, as data)

A checkpoint is built in `.tmp-<name>/` and renamed into place only after its manifest is written,
so a crash mid-save never leaves a directory that looks complete (one temporary folder, one manifest:
the weights inside are written by model/checkpoint.write_weights without a layer of their own). Resume verifies the
manifest and falls back, with a warning, to the newest checkpoint that verifies.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import resource
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectgpt.files import (
    ManifestError,
    verify_manifest,
    write_json_atomic,
    write_manifest,
)
from affectgpt.model.checkpoint import MANIFEST, CheckpointError
from affectgpt.user_errors import describe, mount_of

TRAINING_FORMAT = "affectgpt-training-checkpoint-v1"

logger = logging.getLogger(__name__)

LEGACY_MANIFEST = "CHECKPOINT.json"  # training checkpoints written before the one-manifest layout (still resumable)
TRAINER_STATE = "trainer.json"
STATE_DIR = "state"
TMP_PREFIX = ".tmp-"
NEVER_RESUME = ("never", "", "no", "false")  # train.resume values that mean "start fresh"
_NAME = re.compile(r"^(epoch|interrupt)_(\d+)$")


def epoch_name(epoch: int) -> str:
    return f"epoch_{epoch:04d}"


def interrupt_name(step: int) -> str:
    return f"interrupt_{step:08d}"


def verify(directory: Path) -> dict[str, Any]:
    """The trainer state of a complete, intact checkpoint; CheckpointError naming the problem otherwise."""
    manifest = LEGACY_MANIFEST if (directory / LEGACY_MANIFEST).is_file() else MANIFEST
    try:
        files = verify_manifest(directory, manifest, "checkpoint")["files"]
    except ManifestError as err:
        raise CheckpointError(str(err)) from None
    if TRAINER_STATE not in files or not any(f.startswith(STATE_DIR + "/") for f in files):
        raise CheckpointError(f"{directory}: not a training checkpoint (no {TRAINER_STATE} or {STATE_DIR}/)")
    return json.loads((directory / TRAINER_STATE).read_text(encoding="utf-8"))


@dataclass
class Found:
    path: Path
    state: dict[str, Any]


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Checkpoint-named directories of a run (complete or not)."""
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and _NAME.match(p.name))


def find_resumable(run_dir: Path) -> Found | None:
    """The newest checkpoint (by global step) that verifies; every broken one is reported and skipped."""
    good: list[Found] = []
    for path in checkpoint_dirs(run_dir):
        try:
            good.append(Found(path, verify(path)))
        except CheckpointError as err:
            logger.warning("ignoring incomplete or corrupt checkpoint: %s", err)
    for tmp in run_dir.glob(f"{TMP_PREFIX}*") if run_dir.is_dir() else []:
        logger.warning("found an unfinished save %s (a run stopped while saving); it is ignored", tmp)
    if not good:
        return None
    return max(good, key=lambda f: (int(f.state["global_step"]), f.path.name.startswith("epoch")))


def resolve_resume(run_dir: Path, resume: str) -> Found | None:
    """train.resume: "auto" (newest good checkpoint of this run, if any), "never", or a checkpoint path."""
    if resume in NEVER_RESUME:
        return None
    if resume == "auto":
        return find_resumable(run_dir)
    path = Path(resume)
    if path.is_dir() and not (path / MANIFEST).is_file() and (found := find_resumable(path)) is not None:
        return found  # a run directory was given
    return Found(path, verify(path))


def tmp_dir(run_dir: Path, name: str) -> Path:
    """Where checkpoint `name` is built before `commit` renames it into place."""
    return run_dir / f"{TMP_PREFIX}{name}"


def begin(run_dir: Path, name: str) -> Path:
    """A fresh temp directory for checkpoint `name` (call on the main process only)."""
    tmp = tmp_dir(run_dir, name)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def commit(tmp: Path, trainer_state: dict[str, Any]) -> Path:
    """Write trainer.json and the manifest (last), then rename the temp dir to its final name."""
    write_json_atomic(tmp / TRAINER_STATE, trainer_state)
    write_manifest(tmp, MANIFEST, format=TRAINING_FORMAT)
    final = tmp.with_name(tmp.name[len(TMP_PREFIX) :])
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def point(run_dir: Path, pointer: str, target: Path, info: dict[str, Any]) -> None:
    """Update the `best`/`last` pointer: a relative symlink (where supported) and `<pointer>.json`."""
    write_json_atomic(run_dir / f"{pointer}.json", {"checkpoint": target.name, "path": str(target), **info})
    link = run_dir / pointer
    tmp = run_dir / f"{TMP_PREFIX}{pointer}"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(target.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError as err:  # e.g. filesystems without symlinks: the json pointer is enough
        logger.debug("no %s symlink: %s", pointer, err)


def _remove(path: Path) -> None:
    """A checkpoint folder, or only the link when it is a symlink (its target may be a copy kept on another disk)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


def rotate(run_dir: Path, keep_last: int, protect: set[str]) -> list[Path]:
    """Delete all but the newest `keep_last` epoch checkpoints (0 = keep all), never a protected one
    (best/last), and every interrupt checkpoint older than the newest epoch checkpoint. A folder that cannot be
    deleted is warned about and kept (training goes on); the list returned holds only what was deleted."""
    epochs = [p for p in checkpoint_dirs(run_dir) if p.name.startswith("epoch_")]
    removed = []
    if keep_last > 0:
        for path in epochs[:-keep_last]:
            if path.name not in protect:
                removed.append(path)
    if epochs:
        newest = epochs[-1]
        newest_step = _step_of(newest)
        for path in checkpoint_dirs(run_dir):
            if path.name.startswith("interrupt_") and path.name not in protect and _step_of(path) <= newest_step:
                removed.append(path)
    deleted = []
    for path in removed:
        try:
            _remove(path)
            deleted.append(path)
        except OSError as err:
            logger.warning("could not delete the old checkpoint %s (%s); it is kept", path, describe(err))
    return deleted


def _step_of(path: Path) -> int:
    try:
        return int(json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError):
        return -1


def clear_run(run_dir: Path) -> None:
    """Remove a previous run's checkpoints and logs from `run_dir` (train.resume=never on an existing run). An
    OSError propagates: a checkpoint left behind would be resumed from by a later train.resume=auto."""
    for path in checkpoint_dirs(run_dir) + list(run_dir.glob(f"{TMP_PREFIX}*")):
        _remove(path)
    for name in ("metrics.jsonl", "train_log.jsonl", "best", "last", "best.json", "last.json"):
        path = run_dir / name
        if path.is_symlink() or path.is_file():
            path.unlink()


class CheckpointWriteError(CheckpointError):
    """A checkpoint could not be written (full disk, file-size limit, I/O error); the previous one is intact."""


_OS_ERROR = re.compile(r"os error (\d+)")  # how Rust writers (safetensors) report an errno in their message
LOW_SPACE = 1 << 20  # under 1 MiB free after a failed write: the disk is (as good as) full


def newest_file(folder: Path) -> Path | None:
    """The file written last under `folder`: the one a writer without a file name in its error was writing."""
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return max(files, key=lambda p: p.stat().st_mtime_ns) if files else None


def write_failure(err: BaseException, tmp: Path, previous: str | None) -> CheckpointWriteError:
    """One line for a save that failed in `tmp`: the cause (errno from the error, else the disk's free space or the
    file-size limit: torch's writer reports neither), the file being written, and which checkpoint is still good.
    Call it before the partial `tmp` is removed."""
    target = getattr(err, "filename", None) or newest_file(tmp) or tmp
    code = err.errno if isinstance(err, OSError) else None
    if code is None and (match := _OS_ERROR.search(str(err))):
        code = int(match.group(1))
    if code is not None:
        cause = describe(OSError(code, os.strerror(code)), writing=target)
    else:
        free = shutil.disk_usage(mount_of(tmp)).free
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if free < LOW_SPACE:
            cause = describe(OSError(errno.ENOSPC, "full"), writing=target) + f" ({free} bytes free)"
        elif limit != resource.RLIM_INFINITY:
            cause = f"file-size limit (ulimit -f: {limit} bytes) reached while writing {target}"
        else:
            cause = f"{type(err).__name__} ({' '.join(str(err).split())}) while writing {target}"
    name = tmp.name[len(TMP_PREFIX) :]
    if previous:
        kept = f"{previous} is the last complete checkpoint (resume=auto continues from it)"
    else:
        kept = "and there is no earlier checkpoint"
    return CheckpointWriteError(f"{cause}; checkpoint {name} was not saved, {kept}")

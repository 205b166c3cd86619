"""Every write that must not be lost or seen half-done: atomic replace, fsynced JSONL appends, integrity manifests.

One module for the whole project (checkpoints, the feature cache, result and label files, run logs), so the
rules are written once:
- a file is replaced atomically: written to a temporary sibling, flushed and fsynced, then renamed, so a reader
  (or the next run after a kill) sees the old file or the complete new one, never a mix;
- an append-only JSONL log is appended line by line; a kill can tear at most its last line, which `read_jsonl`
  drops with a warning and `repair_tail` cuts before the next append (a torn line in the middle is an error);
- a manifest lists every file of a folder with its size and sha256 and is written last, so its presence means
  the save finished and its contents catch truncation or bit rot later.
A full disk surfaces as `OSError(ENOSPC)` from the write; callers turn it into a one-line message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class ManifestError(RuntimeError):
    """A folder whose manifest is missing, unreadable, or does not match the files (names the file)."""


class JsonlError(ValueError):
    """A JSONL file with an unreadable line that is not a torn last line (names the file and line)."""


# --- atomic replace ---------------------------------------------------------------------------------
@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary sibling of `path` to write into (for writers that want a path: pandas, numpy); on success it is
    fsynced and renamed onto `path`, on failure removed. `suffix` keeps extension-sensitive writers happy."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:  # a full disk names the file being written, not its temporary sibling
        _name_target(err, path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any, indent: int | None = 1) -> None:
    write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


# --- append-only JSONL -------------------------------------------------------------------------------
def repair_tail(path: str | Path) -> bool:
    """Cut a partial last line (a write interrupted by a kill) so appends start on a fresh line; True if cut."""
    path = Path(path)
    if not path.is_file():
        return False
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    logger.warning("%s: cutting a partial last line left by an interrupted write", path)
    write_bytes_atomic(path, data[: data.rfind(b"\n") + 1])
    return True


def append_jsonl(
    path: str | Path, records: Mapping[str, Any] | Iterable[Mapping[str, Any]], fsync: bool = True
) -> None:
    """Append one record (a mapping) or several as JSON lines; `fsync` makes them durable before returning
    (per-step training logs pass False and call `fsync_path` at checkpoint boundaries instead)."""
    rows = [records] if isinstance(records, Mapping) else list(records)
    if not rows:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
    except OSError as err:
        _name_target(err, path)
        raise


def _name_target(err: OSError, path: str | Path) -> None:
    """Record on `err` the file whose write failed (`err.writing`), so a CLI can say "no space left on <mount>
    while writing <file>" (affectgpt.user_errors); the innermost writer wins."""
    if getattr(err, "writing", None) is None:
        err.writing = str(path)


def fsync_path(path: str | Path) -> None:
    """Make everything appended to `path` so far durable (no-op when the file does not exist)."""
    path = Path(path)
    if path.is_file():
        with open(path, "rb+") as handle:
            os.fsync(handle.fileno())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL file ([] when absent). A torn last line (no newline, unreadable) is dropped with a
    warning: it is what a kill during an append leaves. Any other unreadable line raises JsonlError."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.decode("utf-8", errors="replace").split("\n")
    torn_tail = not data.endswith(b"\n")
    out: list[dict[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as err:
            if torn_tail and number == len(lines):
                logger.warning("%s: ignoring a torn last line (an interrupted write): %r", path, line[:80])
                continue
            raise JsonlError(f"{path}: line {number} is not valid JSON ({err})") from err
    return out


def rewrite_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Replace a JSONL file atomically with `records` (e.g. drop what a lost tail logged, on resume)."""
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


# --- integrity manifests -----------------------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(
    directory: str | Path, name: str, files: Iterable[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """Record `files` (relative paths; default: every file below `directory`) in `directory/name`, atomically."""
    directory = Path(directory)
    if files is None:
        files = sorted(
            p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() and p.name != name
        )
    entries = {}
    for rel in files:
        path = directory / rel
        entries[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    manifest = {**extra, "files": entries}
    write_json_atomic(directory / name, manifest)
    return manifest


def verify_manifest(directory: str | Path, name: str, what: str = "folder") -> dict[str, Any]:
    """The manifest of `directory`, after checking every listed file's presence, size and sha256
    (`what` names the folder in messages: "checkpoint", "cache", ...)."""
    directory = Path(directory)
    manifest_path = directory / name
    if not directory.is_dir():
        raise ManifestError(f"{directory}: {what} folder not found")
    if not manifest_path.is_file():
        raise ManifestError(f"{manifest_path}: missing; the {what} was not completely written (interrupted save?)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
        sizes = {rel: int(info["bytes"]) for rel, info in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ManifestError(f"{manifest_path}: unreadable manifest ({err})") from err
    for rel, info in files.items():
        path = directory / rel
        if not path.is_file():
            raise ManifestError(f"{path}: listed in {name} but missing")
        size = path.stat().st_size
        if size != sizes[rel]:
            raise ManifestError(f"{path}: truncated or altered ({size} bytes, expected {sizes[rel]})")
        if sha256_file(path) != info["sha256"]:
            raise ManifestError(f"{path}: corrupted (sha256 checksum differs from {name})")
    return manifest

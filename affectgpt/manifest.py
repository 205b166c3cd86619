"""Integrity manifests and atomic JSON: what makes a saved folder "complete" and detects damage later.

A manifest lists every file of a folder with its size and sha256 and is written last (atomically),
so its presence means the save finished and its contents catch truncation or bit rot. Model
checkpoints, training checkpoints and the feature cache all use these helpers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class ManifestError(RuntimeError):
    """A folder whose manifest is missing, unreadable, or does not match the files (names the file)."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to a sibling temp file, fsync, then rename: readers see the old or the new file."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_manifest(directory: str | Path, name: str, files: Iterable[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Record `files` (relative paths; default: every file below `directory`) in `directory/name`."""
    directory = Path(directory)
    if files is None:
        files = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file() and p.name != name)
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
    except (ValueError, KeyError, TypeError) as err:
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

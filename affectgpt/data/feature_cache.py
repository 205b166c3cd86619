"""On-disk cache of frozen-encoder outputs: fingerprint, sharded safetensors, index, verification.

The encoders are frozen and media decoding is deterministic, so a sample's CLIP and HuBERT vectors
never change: they are stored once and read back instead of decoding and encoding every epoch.
Safety rules, because a stale feature silently trains the wrong model:
- `meta.json` holds a fingerprint of everything that produced the features (encoder folders and
  configs or tiny sizes, preprocessing, sampling rules, code version); opening a cache with other
  settings raises `CacheMismatchError` naming each differing setting.
- Each sample entry records the media files it came from (path, size, mtime), so edited or
  regenerated media are recomputed by the next build instead of reused.
- Shards are written atomically (temporary file + rename) and announced afterwards in a per-rank
  journal (append-only JSON lines), so an interrupted build leaves only complete, listed shards; the
  journals are merged into `index.json` by one process. Every shard's size and sha256 are recorded;
  a shard that fails verification is dropped and its samples recomputed.
- Each shard also carries the fingerprint in its own safetensors metadata, so the settings check does
  not depend on meta.json surviving: a shard whose fingerprint is missing or differs (e.g. meta.json was
  lost and recreated under new settings) is treated as bad, never read, and its samples are recomputed.

Layout: meta.json, index.json, shards/*.safetensors, journal/rank-NNNNN.jsonl.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save

from affectgpt.data.cache_settings import (  # cache_spec, fingerprint: also imported from here
    cache_spec,
    describe_mismatch,
    fingerprint,
    shard_fingerprint_problem,
)
from affectgpt.data.records import MEDIA_ATTR, DataError, Record
from affectgpt.files import append_jsonl, sha256_file, write_bytes_atomic

logger = logging.getLogger(__name__)

REBUILD_HINT = "run `python -m affectgpt.cache --config <your config>` to (re)build it"


class CacheMismatchError(ValueError):
    """The cache on disk was made with other settings than the ones asked for."""


# --- samples ---------------------------------------------------------------------------------------
def cache_key(record: Record) -> str:
    """Index key: dataset + sample name (MER-UniBench sets reuse names for different clips)."""
    return f"{record.dataset}/{record.name}"


def media_signature(record: Record, streams: list[str]) -> list[list[Any]]:
    """[stream, path, size, mtime_ns] of each media file the features are computed from."""
    out = []
    for stream in streams:
        path = getattr(record, MEDIA_ATTR[stream])
        if path is None:
            out.append([stream, None, -1, -1])
            continue
        try:
            st = os.stat(path)
            out.append([stream, str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([stream, str(path), -1, -1])
    return out


@dataclass
class Entry:
    shard: str
    row: int
    media: list


@dataclass
class FeatureCache:
    """A cache folder opened for one fingerprint. Picklable (DataLoader workers): shard handles are
    opened lazily per process; the index is loaded once, so reads do no filesystem scans."""

    folder: Path
    spec: dict[str, Any]
    samples: dict[str, Entry] = field(default_factory=dict)
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    bad_shards: dict[str, str] = field(default_factory=dict)
    _handles: dict[str, Any] = field(default_factory=dict, repr=False)
    _fingerprint_ok: set[str] = field(default_factory=set, repr=False)  # shards whose header was checked
    _pid: int = field(default=-1, repr=False)

    # -- opening --------------------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | Path, model_cfg: Any, data_cfg: Any, create: bool = False) -> FeatureCache:
        """Open (or with `create`, start) the cache at `folder`; refuse one made with other settings."""
        folder = Path(folder).expanduser()
        spec = cache_spec(model_cfg, data_cfg)
        meta_path = folder / "meta.json"
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise CacheMismatchError(
                    f"feature cache {folder}: meta.json is unreadable ({err}); delete the folder to rebuild"
                ) from err
            if meta.get("fingerprint") != fingerprint(spec):
                raise CacheMismatchError(
                    f"feature cache {folder} was built with different settings and cannot be reused: "
                    f"{describe_mismatch(meta.get('spec', {}), spec)}. Delete that folder or set data.feature_cache "
                    f"to a new folder, then {REBUILD_HINT}."
                )
        elif create:
            (folder / "shards").mkdir(parents=True, exist_ok=True)
            (folder / "journal").mkdir(exist_ok=True)
            body = {"fingerprint": fingerprint(spec), "spec": spec}
            write_bytes_atomic(meta_path, json.dumps(body, indent=1, sort_keys=True).encode())
        else:
            raise FileNotFoundError(f"data.feature_cache={str(folder)!r}: no feature cache there; {REBUILD_HINT}")
        cache = cls(folder, spec)
        cache.reload()
        return cache

    @property
    def streams(self) -> dict[str, str]:
        """media key -> feature key, e.g. {"faces": "face_feats", "audio": "audio_feats"} ({} for textonly)."""
        return dict(self.spec["streams"])

    def reload(self) -> None:
        """Read index.json plus every rank's journal (entries written since the last merge)."""
        self.samples, self.shards, self.failed = {}, {}, {}
        index_path = self.folder / "index.json"
        index = self._read_index(index_path)
        if index:
            for name, info in index.get("shards", {}).items():
                self._add_shard(name, info)
            self.failed.update(index.get("failed", {}))
        for journal in sorted((self.folder / "journal").glob("rank-*.jsonl")):
            for number, line in enumerate(journal.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:  # a line torn by a kill: its shard is simply redone
                    logger.warning("feature cache %s: ignoring torn line %d of %s", self.folder, number, journal.name)
                    continue
                if "shard" in item:
                    self._add_shard(item["shard"], item)
                elif "failed" in item:
                    self.failed[item["failed"]] = item["reason"]
        self._check_shard_sizes()

    def _read_index(self, index_path: Path) -> dict[str, Any]:
        """index.json, or {} when it is absent; a torn or unreadable one (a full disk, a copy cut short) is moved
        ignored with one warning, so its samples are recomputed by the next build and its merge rewrites it."""
        if not index_path.is_file():
            return {}
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            if not isinstance(index, dict) or not isinstance(index.get("shards", {}), dict):
                raise ValueError("not an index object")
            return index
        except (ValueError, UnicodeDecodeError) as err:
            logger.warning(
                "feature cache %s: index.json is unreadable (%s); its samples will be recomputed by the next build",
                self.folder,
                err,
            )
            return {}  # (the next merge rewrites it)

    def _add_shard(self, name: str, info: dict[str, Any]) -> None:
        self.shards[name] = {
            "sha256": info["sha256"],
            "bytes": info["bytes"],
            "keys": info["keys"],
            "media": info["media"],
        }
        for row, key in enumerate(info["keys"]):
            self.samples[key] = Entry(name, row, info["media"][row])
            self.failed.pop(key, None)

    def _check_shard_sizes(self) -> None:
        """Cheap check on open: a missing or truncated shard, or one written under another fingerprint, is marked
        bad (full hashes: `verify`). The fingerprint is read from the shard's header (a few KB, once per shard)."""
        self.bad_shards = {}
        for name, info in self.shards.items():
            path = self.folder / "shards" / name
            size = path.stat().st_size if path.is_file() else None
            if size is None:
                self.bad_shards[name] = "file is missing"
            elif size != info["bytes"]:
                self.bad_shards[name] = f"file has {size} bytes, expected {info['bytes']} (truncated or overwritten)"
            elif name not in self._fingerprint_ok:
                reason = shard_fingerprint_problem(path, self.spec)
                if reason:
                    self.bad_shards[name] = reason
                else:
                    self._fingerprint_ok.add(name)

    def verify(self) -> dict[str, str]:
        """Hash every shard; drop bad ones from the index (their samples become missing). Returns
        {shard: reason} of the dropped shards."""
        self._check_shard_sizes()
        for name, info in self.shards.items():
            if name not in self.bad_shards and sha256_file(self.folder / "shards" / name) != info["sha256"]:
                self.bad_shards[name] = "sha256 differs from the index (corrupt)"
        bad = dict(self.bad_shards)
        for name, reason in bad.items():
            logger.warning(
                "feature cache %s: shard %s is bad (%s); its %d samples will be recomputed",
                self.folder,
                name,
                reason,
                len(self.shards[name]["keys"]),
            )
            for key in self.shards.pop(name)["keys"]:
                if self.samples.get(key) and self.samples[key].shard == name:
                    del self.samples[key]
            path = self.folder / "shards" / name
            if path.is_file():
                os.replace(path, path.with_name(name + ".corrupt"))
        self.bad_shards = {}
        return bad

    # -- writing --------------------------------------------------------------------------------
    def write_shard(self, rank: int, keys: list[str], media: list[list], feats: dict[str, torch.Tensor]) -> str:
        """Write one shard atomically, then announce it in this rank's journal; returns its name."""
        if not keys:
            raise ValueError("empty shard")
        expected = set(self.streams.values())
        if set(feats) != expected:
            raise ValueError(f"shard features {sorted(feats)} do not match the cache streams {sorted(expected)}")
        tensors = {
            k: v.detach().to("cpu", torch.float32).clone(memory_format=torch.contiguous_format)
            for k, v in feats.items()
        }
        for name, tensor in tensors.items():
            if tensor.shape[0] != len(keys):
                raise ValueError(f"{name} has {tensor.shape[0]} rows for {len(keys)} samples")
        data = save(tensors, metadata={"fingerprint": fingerprint(self.spec), "spec": json.dumps(self.spec)})
        name = f"r{rank:05d}-{uuid.uuid4().hex[:16]}.safetensors"
        # a full disk raises here (naming the shard): its temporary file is removed and nothing is journaled
        write_bytes_atomic(self.folder / "shards" / name, data)
        entry = {
            "shard": name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
            "keys": keys,
            "media": media,
        }
        self._journal(rank, entry)
        self._add_shard(name, entry)
        self._fingerprint_ok.add(name)
        return name

    def write_failure(self, rank: int, key: str, reason: str) -> None:
        self._journal(rank, {"failed": key, "reason": reason})
        self.failed[key] = reason

    def _journal(self, rank: int, item: dict[str, Any]) -> None:
        append_jsonl(self.folder / "journal" / f"rank-{rank:05d}.jsonl", item)

    def merge(self) -> dict[str, str]:
        """Fold all journals into index.json (one process, after every rank finished), drop bad
        shards (returned as {shard: reason}), delete unreferenced shard files, empty the journals."""
        self.reload()
        bad = self.verify()
        live = set()
        shards = {}
        for name, info in self.shards.items():  # drop shards whose every sample was superseded
            rows = [k for k in info["keys"] if getattr(self.samples.get(k), "shard", None) == name]
            if rows:
                shards[name] = info
                live.add(name)
        index = {"fingerprint": fingerprint(self.spec), "shards": shards, "failed": self.failed}
        write_bytes_atomic(self.folder / "index.json", json.dumps(index).encode())
        for journal in (self.folder / "journal").glob("rank-*.jsonl"):
            journal.unlink()
        (self.folder / "shards").mkdir(exist_ok=True)  # a deleted shards/ folder: its samples were just dropped
        for path in (self.folder / "shards").iterdir():
            if path.name not in live:  # orphans of killed runs, temporary and .corrupt files
                path.unlink()
        self.shards = shards
        return bad

    def lock(self) -> Any:
        """An exclusive lock on the folder for one build (a second concurrent build fails clearly)."""
        import fcntl

        handle = open(self.folder / ".lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RuntimeError(
                f"feature cache {self.folder} is being built by another process; wait for it to finish"
            ) from None
        return handle

    # -- reading --------------------------------------------------------------------------------
    def __contains__(self, key: str) -> bool:
        return key in self.samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"], state["_pid"] = {}, -1
        return state

    def _handle(self, shard: str) -> Any:
        if self._pid != os.getpid():  # forked DataLoader worker: never share mmap handles
            self._handles, self._pid = {}, os.getpid()
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.folder / "shards" / shard), framework="pt")
        return self._handles[shard]

    def get(self, key: str) -> dict[str, torch.Tensor]:
        """{feature key: float32 [T, D]} of one sample, or a DataError saying why it is unavailable."""
        entry = self.samples.get(key)
        if entry is None:
            why = (
                f"its media failed during the cache build ({self.failed[key]})" if key in self.failed else REBUILD_HINT
            )
            raise DataError(f"not in feature cache {self.folder}: {why}", sample=key)
        if entry.shard in self.bad_shards:
            raise DataError(
                f"feature cache shard {entry.shard} is bad ({self.bad_shards[entry.shard]}); {REBUILD_HINT}", sample=key
            )
        try:
            handle = self._handle(entry.shard)
            return {name: handle.get_slice(name)[entry.row].clone() for name in self.streams.values()}
        except Exception as err:
            raise DataError(
                f"cannot read feature cache shard {entry.shard} ({type(err).__name__}: {err}); {REBUILD_HINT}",
                sample=key,
            ) from err

    def features(self, record: Record) -> dict[str, torch.Tensor]:
        return self.get(cache_key(record))

"""infer.py result files: `name,response` rows (CSV or JSONL), appended batch by batch so a run can resume.

A results file `X.jsonl` / `X.csv` comes with `X.meta.json` (dataset, data root, checkpoint, question,
generation settings) so `evaluate.py run` knows what it holds and a resumed run can refuse to mix
answers produced with other settings. Each batch is appended, flushed and fsynced; a run killed in
the middle of a write leaves at most one partial last line, which the next run cuts off and redoes.
The official `name2reason` npz (reference §7.1) can be written from the finished file.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from affectgpt.data.records import DataError
from affectgpt.data.safe_npz import load_npz_object, save_npz_object
from affectgpt.data.tables import load_name_values
from affectgpt.files import repair_tail, write_json_atomic

FORMATS = (".jsonl", ".csv")
META_SUFFIX = ".meta.json"
# Settings that must match for a resumed run to append to an existing file.
RESUME_KEYS = ("dataset", "checkpoint", "question", "generation", "ablation")


def meta_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + META_SUFFIX)


def read_meta(path: str | Path) -> dict[str, Any] | None:
    """The sidecar metadata of a results file (None when there is none)."""
    meta = meta_path(path)
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except ValueError as err:
        raise DataError(f"unreadable results metadata ({err})", path=meta) from err


def _check_format(path: Path) -> None:
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path}: results files must end in {' or '.join(FORMATS)}")


def _read_jsonl(path: Path) -> dict[str, str]:
    rows: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            name, response = str(row["name"]), row["response"]
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"line {number} is not a {{name, response}} JSON object ({err})", path=path) from err
        if name in rows:
            raise DataError(f"duplicate name {name!r} (line {number})", path=path)
        rows[name] = "" if response is None else str(response)
    return rows


def read_responses(path: str | Path) -> dict[str, str]:
    """name -> response from an infer.py file (JSONL or CSV `name,response`) or an official name2reason npz."""
    path = Path(path)
    if not path.is_file():
        raise DataError("results file not found", path=path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".csv":
        return {name: str(value) for name, value in load_name_values(path, "response").items()}
    if suffix == ".npz":
        held = load_npz_object(path, "name2reason")
        if not isinstance(held, dict):
            raise DataError(f"name2reason holds {type(held).__name__}, expected a dict", path=path)
        return {str(k): str(v) for k, v in held.items()}
    raise DataError(f"unknown results format {suffix!r} (expected .jsonl, .csv or a name2reason .npz)", path=path)


class ResultWriter:
    """Appends `name,response` rows to one file; `done` holds what earlier (interrupted) runs wrote."""

    def __init__(self, path: str | Path, meta: dict[str, Any]):
        self.path = Path(path)
        _check_format(self.path)
        self.meta = meta
        self.done: dict[str, str] = {}
        if self.path.exists():
            self._check_resumable()
            repair_tail(self.path)
            self.done = read_responses(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_meta()

    def _check_resumable(self) -> None:
        old = read_meta(self.path)
        if old is None:
            if self.path.stat().st_size == 0:  # an empty file holds no answers to credit to anyone
                return
            # Written by something else (another tool, a copied file, a lost sidecar): nothing says which checkpoint
            # and settings produced its answers, so adopting them would credit foreign answers to this run.
            raise ValueError(
                f"{self.path} has no {meta_path(self.path).name}, so the checkpoint and settings behind its answers "
                "are unknown and they cannot be resumed; use another --out, or move the file away to start over."
            )
        changed = [k for k in RESUME_KEYS if old.get(k) != self.meta.get(k)]
        if changed:
            details = "; ".join(f"{k}: {old.get(k)!r} -> {self.meta.get(k)!r}" for k in changed)
            raise ValueError(
                f"{self.path} was written with other settings ({details}); answers cannot be mixed. "
                "Use another --out, or delete the file to start over."
            )

    def _write_meta(self) -> None:
        write_json_atomic(meta_path(self.path), self.meta, indent=2)

    def append(self, rows: list[tuple[str, str]]) -> None:
        """Write rows (skipping names already present), flushed and fsynced before returning."""
        rows = [(name, response) for name, response in rows if name not in self.done]
        if not rows:
            return
        new_file = not self.path.exists() or self.path.stat().st_size == 0
        try:
            with self.path.open("a", encoding="utf-8", newline="") as handle:
                if self.path.suffix.lower() == ".csv":
                    writer = csv.writer(handle, lineterminator="\n")
                    if new_file:
                        writer.writerow(["name", "response"])
                    writer.writerows(rows)
                else:
                    for name, response in rows:
                        handle.write(json.dumps({"name": name, "response": response}, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as err:  # e.g. a full disk: the CLI says "no space left on ... while writing <results>"
            err.writing = str(self.path)  # (a partial last row is cut by the next run, see the module docstring)
            raise
        self.done.update(rows)


def write_official_npz(results: str | Path, out: str | Path | None = None) -> Path:
    """The official inference output: `name2reason`, a 0-d object array holding {name: response}."""
    results = Path(results)
    out = Path(out) if out is not None else results.with_suffix(".npz")
    save_npz_object(out, name2reason=read_responses(results))
    return out

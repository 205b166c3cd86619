"""Aligning predictions with the ground truth before scoring, and writing score files.

Names missing from the predictions are errors unless explicitly allowed (then scored as empty predictions), names
not in the ground truth are ignored, and every such case is reported. Reading the files is labels/io.py's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from affectgpt.data.records import DataError
from affectgpt.data.tables import preview
from affectgpt.files import write_json_atomic


@dataclass
class Alignment:
    """Predictions restricted to the GT names, plus what did not line up (always reported)."""

    values: dict[str, Any]
    missing: list[str] = field(default_factory=list)  # GT names without prediction (filled as empty)
    extra: list[str] = field(default_factory=list)  # prediction names not in the GT (ignored)

    def notes(self) -> list[str]:
        out = []
        if self.missing:
            out.append(f"{len(self.missing)} GT name(s) had no prediction and count as empty: {preview(self.missing)}")
        if self.extra:
            out.append(
                f"{len(self.extra)} prediction name(s) are not in the GT and were ignored: {preview(self.extra)}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"missing_predictions": self.missing, "extra_predictions": self.extra}


def align(
    gt_names: Iterable[str], pred: Mapping[str, Any], allow_missing: bool = False, fill: Any = "", source: str = ""
) -> Alignment:
    """Match predictions to GT names. A missing name is an error (listing them) unless allow_missing."""
    gt_names = list(gt_names)
    known = set(gt_names)
    missing = [n for n in gt_names if n not in pred]
    if missing and not allow_missing:
        where = f" in {source}" if source else ""
        raise DataError(
            f"{len(missing)} GT name(s) have no prediction{where}: {preview(missing)} "
            "(pass --allow-missing to count them as empty predictions)"
        )
    values = {n: pred.get(n, fill) for n in gt_names}
    return Alignment(values=values, missing=missing, extra=[n for n in pred if n not in known])


def write_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    path = Path(path)
    write_json_atomic(path, data, indent=2)
    return path

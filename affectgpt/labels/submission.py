"""MER2025 OV-track submission files: the official `-openset.npz` over every name of the candidate list.

The challenge server takes an npz with `filenames` (sample names) and `fileitems` (label list strings such
as "[happy, sad]"), both plain unicode arrays (reference §4 MER2025OV, §7.2). A submission must cover exactly
the names of `track_all_candidates.csv` (column `name`): a missing or an extra name is an error that names
them, checked before anything is written, so a file that exists is a valid one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from affectgpt.data.records import DataError
from affectgpt.data.tables import load_name_values, preview
from affectgpt.labels.io import write_openset_npz


def read_candidates(path: str | Path) -> list[str]:
    """The candidate names (column `name`) in file order; empty or duplicate names are errors."""
    path = Path(path)
    if not path.is_file():
        raise DataError("candidate list not found", path=path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:
        raise DataError(f"cannot read CSV: {err}", path=path) from err
    if "name" not in table.columns:
        raise DataError(f"no 'name' column (found {list(table.columns)})", path=path)
    names = [str(n).strip() for n in table["name"]]
    if any(not n for n in names):
        raise DataError("empty sample name", path=path)
    seen: set[str] = set()
    duplicates = sorted({n for n in names if n in seen or seen.add(n)})
    if duplicates:
        raise DataError(f"duplicate candidate names: {preview(duplicates)}", path=path)
    return names


def check_against_candidates(labels: Mapping[str, object], candidates: list[str], source: str = "") -> None:
    """ValueError naming the missing and the extra names when `labels` does not cover exactly `candidates`."""
    known = set(candidates)
    missing = [n for n in candidates if n not in labels]
    extra = [n for n in labels if n not in known]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} candidate name(s) have no prediction: {preview(missing)}")
        if extra:
            parts.append(f"{len(extra)} name(s) are not in the candidate list: {preview(extra)}")
        raise ValueError(f"{source or 'submission'}: " + "; ".join(parts))


def write_submission(out: str | Path, labels: Mapping[str, object], candidates_csv: str | Path) -> Path:
    """Validate `labels` (name -> label list or "[a, b]" string) against the candidates, then write the npz
    in candidate order; the written file is read back (no pickle) and compared, so it is what was meant."""
    out = Path(out)
    if not out.name.endswith("-openset.npz"):
        raise ValueError(f"{out}: a submission file is named <anything>-openset.npz")
    candidates = read_candidates(candidates_csv)
    check_against_candidates(labels, candidates, source=str(out.name))
    write_openset_npz(out, [(name, labels[name]) for name in candidates])
    back = load_name_values(out)
    if list(back) != candidates:
        raise DataError("read-back names differ from the candidate list", path=out)
    return out

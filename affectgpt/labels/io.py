"""Label files in the official shapes (reference §7.2), so official tools and ours read each other's output.

- `name,openset` CSV and `name,sentiment` CSV (one row per sample);
- `<epoch>-openset.npz` / `<epoch>-openset-sentiment.npz`: keys `filenames` and `fileitems`, both plain
  unicode arrays (no pickled objects, so `np.load` works without allow_pickle).
Writes go to a temporary sibling and are renamed into place, so a crash never leaves half a file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from affectgpt.data.records import DataError, list_to_string
from affectgpt.data.tables import load_name_values
from affectgpt.files import atomic_path

Rows = Mapping[str, object] | Iterable[tuple[str, object]]


def _pairs(rows: Rows) -> list[tuple[str, str]]:
    """(name, item) pairs; a list item becomes its "[a, b]" string, anything else str()."""
    items = rows.items() if isinstance(rows, Mapping) else rows
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, item in items:
        name = str(name)
        if name in seen:
            raise ValueError(f"duplicate sample name {name!r}: each sample must appear once")
        seen.add(name)
        pairs.append((name, list_to_string([str(x) for x in item]) if isinstance(item, (list, tuple)) else str(item)))
    return pairs


def write_name_value_csv(path: str | Path, rows: Rows, column: str) -> Path:
    """A two-column CSV `name,<column>`, in the order given."""
    path = Path(path)
    frame = pd.DataFrame(_pairs(rows), columns=["name", column])
    with atomic_path(path, ".csv") as tmp:
        frame.to_csv(tmp, index=False)
    return path


def read_name_value_csv(path: str | Path, column: str) -> dict[str, str]:
    """{name: value} from a `name,<column>` CSV; empty cells read as "" (not NaN). One reader for all
    result files: `affectgpt.data.tables.load_name_values` (duplicate or empty names are errors)."""
    return {name: str(value) for name, value in load_name_values(path, column).items()}


def write_openset_csv(path: str | Path, rows: Rows) -> Path:
    """`name,openset` CSV; label lists are stored as "[a, b]" strings."""
    return write_name_value_csv(path, rows, "openset")


def write_openset_npz(path: str | Path, rows: Rows) -> Path:
    """The official `-openset.npz` (also used for `-openset-sentiment.npz`): `filenames`, `fileitems`."""
    path = Path(path)
    pairs = _pairs(rows)
    names = np.array([n for n, _ in pairs], dtype=str)
    items = np.array([i for _, i in pairs], dtype=str)
    if not pairs:  # np.array([], dtype=str) is '<U1' already; keep shapes explicit
        names, items = np.zeros(0, dtype="<U1"), np.zeros(0, dtype="<U1")
    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, filenames=names, fileitems=items)
    return path


def read_openset_npz(path: str | Path) -> dict[str, str]:
    """{name: item string} from an official-shape `-openset.npz` (or `-openset-sentiment.npz`), without pickle."""
    return load_name_values(Path(path))


# Results-directory layout for `evaluate.py unibench --all` (also documented in evaluate.py --help):
#   <DIR>/<Dataset>-openset.csv (name,openset)  or  <DIR>/<Dataset>-openset.npz (filenames, fileitems)
#   <DIR>/<Dataset>-sentiment.csv (name,sentiment)  or  <Dataset>-sentiment.npz / <Dataset>-openset-sentiment.npz
# Dataset names match case-insensitively (MER2023-openset.csv and mer2023-openset.npz both work).
OPENSET_SUFFIXES = ("-openset.csv", "-openset.npz")
SENTIMENT_SUFFIXES = ("-sentiment.csv", "-sentiment.npz", "-openset-sentiment.npz")


def _find(by_lower: dict[str, Path], directory: Path, dataset: str, suffixes: tuple[str, ...]) -> Path | None:
    found = [by_lower[(dataset + s).lower()] for s in suffixes if (dataset + s).lower() in by_lower]
    if len(found) > 1:
        raise DataError(f"several result files for {dataset}: {[p.name for p in found]}; keep one", path=directory)
    return found[0] if found else None


def find_result_files(results_dir: str | Path, dataset: str) -> tuple[Path | None, Path | None]:
    """(openset file, sentiment file) of one dataset in a results directory; None where absent."""
    directory = Path(results_dir)
    if not directory.is_dir():
        raise DataError("results directory not found", path=directory)
    by_lower = {p.name.lower(): p for p in directory.iterdir() if p.is_file()}  # one listing for both lookups
    return (
        _find(by_lower, directory, dataset, OPENSET_SUFFIXES),
        _find(by_lower, directory, dataset, SENTIMENT_SUFFIXES),
    )

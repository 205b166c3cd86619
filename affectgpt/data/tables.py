"""Two-column `name -> value` tables, the shape of every per-sample file: label lists, sentiments, answers.

A CSV with columns `name,<value column>` (read as text: names such as 00012 stay strings, empty cells stay ""),
or an official npz holding plain unicode arrays `filenames` and `fileitems` (`-openset.npz`,
`-openset-sentiment.npz`), read without pickle. Empty and duplicate names are errors naming the file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from affectgpt.data.records import DataError
from affectgpt.data.safe_npz import load_npz_strings


def preview(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... ({len(names)} in all)" if len(names) > limit else "")


def load_name_values(path: str | Path, column: str = "openset") -> dict[str, str]:
    """name -> raw value (a list-like string or a word) from a CSV (`name,<column>`) or an official npz."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    if path.suffix.lower() == ".npz":
        arrays = load_npz_strings(path, ["filenames", "fileitems"])
        names, values = arrays["filenames"], arrays["fileitems"]
        if len(names) != len(values):
            raise DataError(f"filenames ({len(names)}) and fileitems ({len(values)}) differ in length", path=path)
    else:
        try:
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as err:
            raise DataError(f"cannot read CSV: {err}", path=path) from err
        missing = [c for c in ("name", column) if c not in table.columns]
        if missing:
            found = list(table.columns)
            raise DataError(f"missing column(s) {missing}; expected name,{column} (found {found})", path=path)
        names, values = table["name"].tolist(), table[column].tolist()
    names = [str(n).strip() for n in names]
    if any(not n for n in names):
        raise DataError("empty sample name", path=path)
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise DataError(f"duplicate names: {preview(duplicates)}", path=path)
    return dict(zip(names, values))

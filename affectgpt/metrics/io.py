"""Loading label/sentiment result files and aligning them with the ground truth.

Formats: a CSV with columns `name,<value column>` (`openset` for label lists such as `[happy, sad]`,
`sentiment` for one word), or an official npz with plain unicode arrays `filenames` and `fileitems`
(`-openset.npz`, `-openset-sentiment.npz`), read without pickle. Duplicate names are errors; names
missing from predictions are errors unless explicitly allowed, and every such case is reported.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from affectgpt.data.records import DataError
from affectgpt.data.safe_npz import load_npz_strings
from affectgpt.files import write_json_atomic


def _preview(names: list[str], limit: int = 20) -> str:
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
        raise DataError(f"duplicate names: {_preview(duplicates)}", path=path)
    return dict(zip(names, values))


@dataclass
class Alignment:
    """Predictions restricted to the GT names, plus what did not line up (always reported)."""

    values: dict[str, Any]
    missing: list[str] = field(default_factory=list)  # GT names without prediction (filled as empty)
    extra: list[str] = field(default_factory=list)  # prediction names not in the GT (ignored)

    def notes(self) -> list[str]:
        out = []
        if self.missing:
            out.append(f"{len(self.missing)} GT name(s) had no prediction and count as empty: {_preview(self.missing)}")
        if self.extra:
            out.append(
                f"{len(self.extra)} prediction name(s) are not in the GT and were ignored: {_preview(self.extra)}"
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
            f"{len(missing)} GT name(s) have no prediction{where}: {_preview(missing)} "
            "(pass --allow-missing to count them as empty predictions)"
        )
    values = {n: pred.get(n, fill) for n in gt_names}
    return Alignment(values=values, missing=missing, extra=[n for n in pred if n not in known])


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
    return (_find(by_lower, directory, dataset, OPENSET_SUFFIXES),
            _find(by_lower, directory, dataset, SENTIMENT_SUFFIXES))  # fmt: skip


def write_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    path = Path(path)
    write_json_atomic(path, data, indent=2)
    return path

"""Emotion-wheel resources and the label-mapping tables of the EW-based metric (reference §5.1-§5.4).

A wheel directory holds `wheel1.xlsx` ... `wheel5.xlsx` (Sheet1: level1, level2, level3),
`synonym.xlsx` (Sheet1: word_runK, synonym_runK pairs) and `format.csv` (name, format). The official
files come from the `emotion_wheel/` folder of the OV-MER / AffectGPT repository; we never ship them.

Everything a metric needs is precomputed once per directory into plain dicts (label -> mapped
label, one dict per metric), so scoring is pure dict lookups. The official quirks are kept on
purpose: alphabetical tie-breaks, later-row-wins overwrites, the `fearless` format row that sends
"fear" to brave/courageous, and "neutral" being unmappable.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

WHEELS = (1, 2, 3, 4, 5)
LEVELS = ("L1", "L2")
# OV-MER order of the 12 EW metrics: M1, M2, then M3 for every wheel at L1 and L2.
METRICS: tuple[str, ...] = ("M1", "M2") + tuple(f"W{w}-{lvl}" for w in WHEELS for lvl in LEVELS)
WHEEL_FILES = tuple(f"wheel{w}.xlsx" for w in WHEELS) + ("synonym.xlsx", "format.csv")
ENV_VAR = "AFFECTGPT_WHEEL_DIR"
DEMO_WHEEL_DIR = Path(__file__).resolve().parents[1] / "resources" / "demo_wheel"
DEMO_LABEL = "demo (not comparable with published scores)"
OFFICIAL_SOURCE = "the emotion_wheel/ folder of the official OV-MER / AffectGPT repository (github.com/zeroQiaoba)"


class WheelError(ValueError):
    """A wheel directory that cannot be found or read; the message names the place and the reason."""


def _clean(value: object) -> str:
    """Official normalisation of every word read from the wheel files: lower-case and strip."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).lower().strip()


def _read_sheet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise WheelError(f"{path}: file not found")
    try:
        return pd.read_excel(path, sheet_name="Sheet1", dtype=object)
    except Exception as err:  # missing sheet, not an xlsx, ...
        raise WheelError(f"{path}: cannot read sheet 'Sheet1': {err}") from err


def read_wheel(path: Path) -> dict[str, dict[str, list[str]]]:
    """{level1: {level2: [level3, ...]}} in xlsx row order; blank L1/L2 cells repeat the cell above."""
    sheet = _read_sheet(path)
    missing = {"level1", "level2", "level3"} - set(sheet.columns)
    if missing:
        raise WheelError(f"{path}: missing columns {sorted(missing)}")
    wheel: dict[str, dict[str, list[str]]] = {}
    level1 = level2 = ""
    for row, (l1, l2, l3) in enumerate(zip(sheet["level1"], sheet["level2"], sheet["level3"]), start=2):
        level1 = _clean(l1) or level1
        level2 = _clean(l2) or level2
        level3 = _clean(l3)
        if not (level1 and level2 and level3):
            raise WheelError(f"{path}: row {row} has no level1/level2/level3 word")
        wheel.setdefault(level1, {}).setdefault(level2, []).append(level3)
    return wheel


def wheel_map(wheel: dict[str, dict[str, list[str]]], level: str) -> dict[str, str]:
    """Word -> group at L1 or L2. Later assignments overwrite earlier ones (official dict semantics).

    At L2 an L1 word maps to its alphabetically first L2 child.
    """
    mapping: dict[str, str] = {}
    for level1, children in wheel.items():
        mapping[level1] = level1 if level == "L1" else sorted(children)[0]
        for level2, leaves in children.items():
            target = level1 if level == "L1" else level2
            mapping[level2] = target
            for level3 in leaves:
                mapping[level3] = target
    return mapping


def wheel_words(wheel: dict[str, dict[str, list[str]]]) -> set[str]:
    words = set(wheel)
    for children in wheel.values():
        words.update(children)
        for leaves in children.values():
            words.update(leaves)
    return words


def read_synonyms(path: Path, vocabulary: set[str]) -> dict[str, list[str]]:
    """y_f -> [wheel words]: union over all runs; each synonym maps to its row word, a row word to itself."""
    sheet = _read_sheet(path)
    runs = sorted(int(c[len("word_run") :]) for c in sheet.columns if str(c).startswith("word_run"))
    if not runs or any(f"synonym_run{k}" not in sheet.columns for k in runs):
        raise WheelError(f"{path}: expected column pairs word_runK, synonym_runK (found {list(sheet.columns)})")
    mapping: dict[str, list[str]] = {}
    for k in runs:
        for row, (word, synonyms) in enumerate(zip(sheet[f"word_run{k}"], sheet[f"synonym_run{k}"]), start=2):
            word = _clean(word)
            if not word:
                continue
            if word not in vocabulary:
                raise WheelError(f"{path}: word_run{k} row {row}: '{word}' is not a word of any wheel")
            mapping.setdefault(word, []).append(word)
            for synonym in str(synonyms).split(",") if _clean(synonyms) else []:
                synonym = _clean(synonym)
                if synonym:
                    mapping.setdefault(synonym, []).append(word)
    return mapping


def read_formats(path: Path) -> dict[str, list[str]]:
    """Word form -> [y_f]: each form listed in a row maps to the row's name, and the name to itself."""
    if not path.is_file():
        raise WheelError(f"{path}: file not found")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if {"name", "format"} - set(table.columns):
        raise WheelError(f"{path}: expected columns name, format (found {list(table.columns)})")
    mapping: dict[str, list[str]] = {}
    for name, forms in zip(table["name"], table["format"]):
        name = _clean(name)
        if not name:
            continue
        for form in forms.split(","):
            form = _clean(form)
            if form:
                mapping.setdefault(form, []).append(name)
        mapping.setdefault(name, []).append(name)
    return mapping


@dataclass
class EmotionWheel:
    """All mapping tables of one wheel directory; `tables[metric]` maps a normalised label to its group.

    Labels absent from a table map to nothing (the official "" that gets dropped).
    """

    directory: Path
    is_demo: bool
    wheels: dict[int, dict[str, dict[str, list[str]]]]
    vocabulary: frozenset[str]  # the distinct wheel words (253 official)
    format_mapping: dict[str, list[str]]  # form -> y_f (7386 keys official)
    raw_mapping: dict[str, list[str]]  # y_f -> wheel words (1255 keys official)
    wheel_maps: dict[str, dict[str, str]]  # "W1-L1" -> word -> group
    tables: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """How result files name the wheel: its directory, or "demo"."""
        return "demo" if self.is_demo else str(self.directory)

    @property
    def label(self) -> str:
        """How outputs name the wheel: the directory, or the demo warning."""
        return DEMO_LABEL if self.is_demo else str(self.directory)

    def map_label(self, label: str, metric: str) -> str:
        """The mapped group of one normalised label under `metric` ("" = unmappable, dropped)."""
        return self.tables[metric].get(label, "")


def _m3(y_ws: list[str], mapping: dict[str, str]) -> str:
    """M3: the first (alphabetically) reachable wheel word present in this wheel's map."""
    for word in y_ws:
        if word in mapping:
            return mapping[word]
    return ""


def _build_tables(
    format_mapping: dict[str, list[str]], raw_mapping: dict[str, list[str]], wheel_maps: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {metric: {} for metric in METRICS}
    for label, y_fs in format_mapping.items():
        first_yf = min(y_fs)
        tables["M1"][label] = first_yf
        tables["M2"][label] = min(raw_mapping[first_yf])
        reachable = sorted({y_w for y_f in y_fs for y_w in raw_mapping[y_f]})
        for metric, mapping in wheel_maps.items():
            group = _m3(reachable, mapping)
            if group:
                tables[metric][label] = group
    return tables


def load_wheel_dir(directory: str | Path, is_demo: bool = False) -> EmotionWheel:
    """Read and validate one wheel directory and build every mapping table (uncached; see get_wheel)."""
    directory = Path(directory)
    missing = [name for name in WHEEL_FILES if not (directory / name).is_file()]
    if missing:
        raise WheelError(f"{directory}: missing emotion-wheel files {missing} (they come from {OFFICIAL_SOURCE})")
    wheels = {w: read_wheel(directory / f"wheel{w}.xlsx") for w in WHEELS}
    vocabulary: set[str] = set()
    for wheel in wheels.values():
        vocabulary |= wheel_words(wheel)
    raw_mapping = read_synonyms(directory / "synonym.xlsx", vocabulary)
    format_mapping = read_formats(directory / "format.csv")
    unknown = sorted({y_f for y_fs in format_mapping.values() for y_f in y_fs} - set(raw_mapping))
    if unknown:
        raise WheelError(
            f"{directory / 'format.csv'}: names not found in synonym.xlsx (neither a wheel word nor a synonym): "
            f"{unknown[:20]}{' ...' if len(unknown) > 20 else ''}"
        )
    wheel_maps = {f"W{w}-{lvl}": wheel_map(wheels[w], lvl) for w in WHEELS for lvl in LEVELS}
    return EmotionWheel(
        directory=directory,
        is_demo=is_demo,
        wheels=wheels,
        vocabulary=frozenset(vocabulary),
        format_mapping=format_mapping,
        raw_mapping=raw_mapping,
        wheel_maps=wheel_maps,
        tables=_build_tables(format_mapping, raw_mapping, wheel_maps),
    )


@functools.lru_cache(maxsize=8)
def _cached(directory: str, is_demo: bool) -> EmotionWheel:
    return load_wheel_dir(directory, is_demo=is_demo)


def get_wheel(directory: str | Path, is_demo: bool | None = None) -> EmotionWheel:
    """The tables of `directory`, built once per process (cached by resolved path)."""
    resolved = Path(directory).resolve()
    demo = resolved == DEMO_WHEEL_DIR if is_demo is None else is_demo
    return _cached(str(resolved), demo)


def _has_wheel_files(directory: Path) -> bool:
    return all((directory / name).is_file() for name in WHEEL_FILES)


def resolve_wheel_dir(
    wheel_dir: str | Path | None = None, data_root: str | Path | None = None, allow_demo: bool = False
) -> tuple[Path, bool]:
    """Find the wheel directory: explicit (--wheel-dir / eval.wheel_dir) -> $AFFECTGPT_WHEEL_DIR ->
    <data_root>/emotion_wheel -> the demo wheel (only with allow_demo). Returns (directory, is_demo).

    An explicitly given directory must be complete: a typo there is an error, never a silent fallback.
    """
    if wheel_dir:
        path = Path(wheel_dir)
        if not _has_wheel_files(path):
            missing = [n for n in WHEEL_FILES if not (path / n).is_file()]
            raise WheelError(f"wheel directory {path} lacks {missing} (the files come from {OFFICIAL_SOURCE})")
        return path, path.resolve() == DEMO_WHEEL_DIR
    searched = ["--wheel-dir / eval.wheel_dir (not set)"]
    env = os.environ.get(ENV_VAR, "")
    if env:
        if _has_wheel_files(Path(env)):
            return Path(env), Path(env).resolve() == DEMO_WHEEL_DIR
        searched.append(f"${ENV_VAR}={env} (incomplete or missing)")
    else:
        searched.append(f"${ENV_VAR} (not set)")
    if data_root:
        candidate = Path(data_root) / "emotion_wheel"
        if _has_wheel_files(candidate):
            return candidate, False
        searched.append(f"{candidate} (not found or incomplete)")
    else:
        searched.append("<data root>/emotion_wheel (no data root given)")
    if allow_demo:
        return DEMO_WHEEL_DIR, True
    raise WheelError(
        "No emotion-wheel directory found. Searched: " + "; ".join(searched) + ". "
        f"Get wheel1.xlsx ... wheel5.xlsx, synonym.xlsx and format.csv from {OFFICIAL_SOURCE} and pass "
        f"--wheel-dir DIR, set eval.wheel_dir or ${ENV_VAR}, or put them in <data root>/emotion_wheel. "
        "For the embedded demo only, opt in to the demo wheel (scores are then not comparable with published ones)."
    )


def load_wheel(
    wheel_dir: str | Path | None = None, data_root: str | Path | None = None, allow_demo: bool = False
) -> EmotionWheel:
    """resolve_wheel_dir + get_wheel: the one call scoring code needs."""
    directory, is_demo = resolve_wheel_dir(wheel_dir, data_root, allow_demo)
    return get_wheel(directory, is_demo)


def resolve_wheel(cfg: Any) -> EmotionWheel:
    """The wheel a run scores with: eval.wheel_dir -> $AFFECTGPT_WHEEL_DIR -> <data root>/emotion_wheel -> the
    bundled demo wheel (flagged in every output: not comparable with published scores)."""
    wheel = load_wheel(cfg.eval.wheel_dir or None, data_root=cfg.data.root, allow_demo=True)
    if wheel.is_demo:
        logger.warning("scoring with the demo emotion wheel: scores are not comparable with published ones")
    return wheel

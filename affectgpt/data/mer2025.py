"""Reader for the MER2025 folder (MER-Caption+, OV-MERD, MER2025-OV candidates), reference §3.1.

Layout: `video/<name>.mp4`, `audio/<name>.wav`, `openface_face/<name>/<name>.npy` (per-sample
subfolder), `subtitle_chieng.csv` and the track CSVs. Records hold paths and text only; media is
decoded later (affectgpt/data/media.py), so reading 31k rows is cheap.

Text cells are used verbatim, as the official datasets use `row['english']` / `row['reason']` (a strip
would change prompt ids and targets); only the subtitle and description cells follow pandas' default NA
reading (the official code reads with pandas defaults and turns NaN into ""), so a cell such as `NA` or
`None` reads as "" and is counted in the report.

Policy (deviations from the official loader, which silently replaces bad samples):
- file-level problems (missing CSV, missing column, duplicate or empty names) always raise;
- per-sample problems (an unsafe name, empty subtitle, empty description, missing media, a name absent
  from another CSV) raise with on_error="raise", or are counted in a `SkipLog` and dropped with
  on_error="skip";
- a sample count different from the official size, or a malformed label cell (kept: the official parser
  reads it its own way), is a logged warning, never an error, and is recorded in the optional `ReadReport`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES

from affectgpt.data.records import (
    ON_ERROR,
    DataError,
    Record,
    SkipLog,
    check_sample_name,
    malformed_reason,
    string_to_list,
)

logger = logging.getLogger(__name__)

# dataset -> (label csv, description csv or None)
MER2025_FILES: dict[str, tuple[str, str | None]] = {
    "mercaptionplus": ("track2_train_mercaptionplus.csv", "track3_train_mercaptionplus.csv"),
    "ovmerd": ("track2_train_ovmerd.csv", "track3_train_ovmerd.csv"),
    "mer2025ov": ("track_all_candidates.csv", None),
}
MER2025_SIZES = {"mercaptionplus": 31327, "ovmerd": 332, "mer2025ov": 20000}
SUBTITLE_CSV = "subtitle_chieng.csv"
SUBTITLE_LANGUAGES = ("english", "chinese")
# Official: an empty openset list becomes ["neutral"] (which the EW metric then cannot map).
EMPTY_OPENSET = ["neutral"]
# pandas' default na_values ("NA", "N/A", "None", "null", "nan", "", ...), read from pandas itself: the
# official code reads its CSVs with pandas defaults, so these subtitle/description cells become NaN -> "".
PANDAS_NA_TOKENS = frozenset(STR_NA_VALUES)


@dataclass
class ReadReport:
    """What one reader call saw, for logs and result tables: nothing dropped or patched goes unsaid."""

    dataset: str = ""
    root: str = ""
    listed: int = 0  # names in the annotation file (or test split)
    returned: int = 0  # records returned after skips
    expected: int | None = None  # official size
    skipped: int = 0
    empty_subtitles: list[str] = field(default_factory=list)  # accepted with "" (evaluation; training "keep")
    # "<file>:<column>" -> names whose non-empty cell is a pandas NA token (`NA`, `None`, ...), read as ""
    na_text: dict[str, list[str]] = field(default_factory=dict)
    malformed_labels: dict[str, str] = field(default_factory=dict)  # name -> why its GT label cell is malformed
    warnings: list[str] = field(default_factory=list)

    @property
    def size_matches(self) -> bool:
        return self.expected is None or self.listed == self.expected

    @property
    def na_text_count(self) -> int:
        return sum(len(names) for names in self.na_text.values())

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        logger.warning(message)


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """Read a CSV as verbatim strings (names like 00012 stay strings; 'NA' stays text: readers apply
    `pandas_text` to the subtitle/description cells only) and check columns and names."""
    if not path.is_file():
        raise DataError("CSV file not found", path=path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"cannot parse CSV: {err}", path=path) from err
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; columns found: {list(frame.columns)}", path=path)
    frame = frame[columns].copy()
    frame["name"] = frame["name"].str.strip()
    empty_rows = [i + 2 for i in frame.index[frame["name"] == ""].tolist()]  # +2: header, 1-based
    if empty_rows:
        raise DataError(f"empty name on line(s) {name_preview([str(r) for r in empty_rows])}", path=path)
    dups = sorted(set(frame["name"][frame["name"].duplicated()]))
    if dups:
        raise DataError(f"duplicate name(s) {name_preview(dups)}", path=path)
    return frame


def name_preview(names: list[str], limit: int = 10) -> str:
    """First `limit` names and the total, so messages stay readable for 30k-name problems."""
    shown = ", ".join(names[:limit])
    more = f", ... ({len(names)} in total)" if len(names) > limit else f" ({len(names)} in total)"
    return f"[{shown}{more}]"


def list_files(directory: Path) -> set[str]:
    """File names of one directory, listed once (a missing directory lists as empty)."""
    try:
        with os.scandir(directory) as entries:
            return {e.name for e in entries if e.is_file()}
    except FileNotFoundError:
        return set()


def report_size(report: ReadReport) -> None:
    if not report.size_matches:
        report.warn(
            f"{report.dataset} at {report.root}: {report.listed} samples listed, "
            f"official size is {report.expected} (a subset or a different release?)"
        )


def pandas_text(cell: str) -> str:
    """A text cell as the official pandas-default read leaves it after NaN -> "": NA tokens become ""
    (exact match, as pandas does: " NA" stays text); everything else verbatim."""
    return "" if cell in PANDAS_NA_TOKENS else cell


def report_na_text(report: ReadReport, source: Path, column: str, names: list[str]) -> None:
    """Record and log the samples whose `column` cell of `source` was an NA token read as ""."""
    if not names:
        return
    report.na_text[f"{source.name}:{column}"] = names
    report.warn(
        f"{report.dataset}: {len(names)} '{column}' cell(s) of {source.name} are pandas NA tokens "
        f"(NA, N/A, None, null, nan, ...) and read as '' as the official pandas-default reading does: "
        f"{name_preview(names)}"
    )


def note_malformed_label(report: ReadReport, name: str, cell: object) -> None:
    reason = malformed_reason(cell)
    if reason is not None:
        report.malformed_labels[name] = reason


def report_malformed_labels(report: ReadReport, source: Path) -> None:
    if report.malformed_labels:
        shown = [f"{n} ({why})" for n, why in report.malformed_labels.items()]
        report.warn(
            f"{report.dataset}: {len(shown)} malformed label cell(s) in {source.name}, kept as the official "
            f"parser reads them: {name_preview(shown, limit=5)}"
        )


def unsafe_names(names: list[str], source: Path, on_error: str, skips: SkipLog) -> set[str]:
    """Names that are not plain file names: raised, or counted as skips and returned (to be dropped).

    Evaluation readers default to on_error="raise" because a skipped test sample changes the score."""
    bad: set[str] = set()
    for name in names:
        try:
            check_sample_name(name, source)
        except DataError as err:
            skips.absorb(err, on_error)
            bad.add(name)
    return bad


def _mismatch(names: list[str], present: set[str], source: Path, on_error: str, skips: SkipLog) -> set[str]:
    """Names absent from `source`: one error listing them, or one counted skip per name."""
    absent = [n for n in names if n not in present]
    if absent and on_error == "raise":
        raise DataError(f"{len(absent)} name(s) missing from this file: {name_preview(absent)}", path=source)
    for name in absent:
        skips.add(DataError(f"missing from {source.name}", sample=name, path=source))
    return set(absent)


def read_mer2025(
    root: str | Path,
    dataset: str = "mercaptionplus",
    subtitle_language: str = "english",
    on_error: str = "skip",
    skips: SkipLog | None = None,
    check_media: bool = True,
    allow_empty_subtitle: bool = False,
    report: ReadReport | None = None,
) -> list[Record]:
    """Records of one MER2025 annotation set, in CSV order.

    `dataset`: "mercaptionplus" | "ovmerd" (labels + descriptions) or "mer2025ov" (names only).
    `subtitle_language` picks the `english` (official default) or `chinese` column.
    `allow_empty_subtitle` keeps samples whose subtitle is empty (the official loader trains on them);
    otherwise each is a per-sample "empty subtitle" DataError.
    `report`, if given, is filled with counts (size check, skips, NA cells, malformed labels).
    """
    root = Path(root)
    dataset = dataset.lower()
    if dataset not in MER2025_FILES:
        raise ValueError(f"unknown MER2025 dataset {dataset!r}; choose one of {sorted(MER2025_FILES)}")
    if subtitle_language not in SUBTITLE_LANGUAGES:
        raise ValueError(f"subtitle_language must be one of {SUBTITLE_LANGUAGES}, got {subtitle_language!r}")
    check_on_error(on_error)
    skips = skips if skips is not None else SkipLog()
    report = report if report is not None else ReadReport()
    report.dataset, report.root, report.expected = dataset, str(root), MER2025_SIZES[dataset]
    skipped_before = skips.total

    label_name, reason_name = MER2025_FILES[dataset]
    label_path = root / label_name
    has_labels = reason_name is not None
    labels = read_csv(label_path, ["name", "openset"] if has_labels else ["name"])
    names = labels["name"].tolist()
    report.listed = len(names)
    report_size(report)

    dropped = unsafe_names(names, label_path, on_error, skips)
    reasons: dict[str, str] = {}
    if has_labels:
        reason_path = root / reason_name
        reason_frame = read_csv(reason_path, ["name", "reason"])
        reasons = dict(zip(reason_frame["name"], reason_frame["reason"]))
        dropped |= _mismatch([n for n in names if n not in dropped], set(reasons), reason_path, on_error, skips)
        extra = len(set(reasons) - set(names))
        if extra:
            report.warn(f"{reason_path}: {extra} name(s) not in {label_name} are ignored")
    subtitle_path = root / SUBTITLE_CSV
    subtitle_frame = read_csv(subtitle_path, ["name", subtitle_language])
    subtitles = dict(zip(subtitle_frame["name"], subtitle_frame[subtitle_language]))
    dropped |= _mismatch([n for n in names if n not in dropped], set(subtitles), subtitle_path, on_error, skips)

    videos = list_files(root / "video") if check_media else set()
    audios = list_files(root / "audio") if check_media else set()
    openset = dict(zip(labels["name"], labels["openset"])) if has_labels else {}
    na_subtitles: list[str] = []
    na_reasons: list[str] = []
    records: list[Record] = []
    for name in names:
        if name in dropped:
            continue
        subtitle = pandas_text(subtitles[name])
        if subtitle != subtitles[name]:
            na_subtitles.append(name)
        record = Record(
            name=name,
            dataset=dataset,
            video=root / "video" / f"{name}.mp4",
            audio=root / "audio" / f"{name}.wav",
            face=root / "openface_face" / name / f"{name}.npy",
            subtitle=subtitle if subtitle.strip() else "",  # verbatim; whitespace-only is an empty subtitle
        )
        if has_labels:
            record.description = pandas_text(reasons[name])  # verbatim: the official target
            if record.description != reasons[name]:
                na_reasons.append(name)
            record.ovlabels = string_to_list(openset[name]) or list(EMPTY_OPENSET)
            note_malformed_label(report, name, openset[name])
        try:
            _check_sample(record, subtitle_path, reason_path if has_labels else None, allow_empty_subtitle)
            if check_media:
                _check_media(record, videos, audios)
        except DataError as err:
            skips.absorb(err, on_error)
            continue
        if not record.subtitle:
            report.empty_subtitles.append(name)
        records.append(record)

    report_na_text(report, subtitle_path, subtitle_language, na_subtitles)
    if has_labels:
        report_na_text(report, reason_path, "reason", na_reasons)
        report_malformed_labels(report, label_path)
    if report.empty_subtitles:
        report.warn(
            f"{dataset}: {len(report.empty_subtitles)} sample(s) with an empty subtitle are kept and read with '' "
            f"(official: trained on as <Subtitle></Subtitle>): {name_preview(report.empty_subtitles)}"
        )
    report.returned = len(records)
    report.skipped = skips.total - skipped_before
    if report.skipped:
        logger.warning("%s at %s: %s", dataset, root, skips.summary())
    return records


def _check_sample(record: Record, subtitle_path: Path, reason_path: Path | None, allow_empty: bool) -> None:
    if not record.subtitle and not allow_empty:
        raise DataError("empty subtitle", sample=record.name, path=subtitle_path)
    if reason_path is not None and not (record.description or "").strip():
        raise DataError("empty description (reason)", sample=record.name, path=reason_path)


def _check_media(record: Record, videos: set[str], audios: set[str]) -> None:
    for kind, path, listing in (("video", record.video, videos), ("audio", record.audio, audios)):
        if path.name not in listing:
            raise DataError(f"missing {kind} file", sample=record.name, path=path)
    if not record.face.is_file():  # one stat: faces live in per-sample subfolders
        raise DataError("missing face file", sample=record.name, path=record.face)

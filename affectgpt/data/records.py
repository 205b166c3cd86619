"""The one record type every dataset reader returns, its label-list format, and the error/skip bookkeeping.

A `Record` holds paths and text only (no decoded media), so reading a 30k-sample CSV is cheap and
records can be shipped to DataLoader workers.

Label lists (`Record.ovlabels`) are stored in the official list format and parsed exactly as the official
metric code does (reference §5.3): `string_to_list` is the single parser for ground truth (`openset` columns,
`-openset.npz` items) and predictions, so both sides are normalised identically. It accepts any shape
(`[happy` parses to `happy`, `happy]]` to `happy]`), which scoring parity requires; `malformed_reason` says
when a label cell is not a well-formed list, so readers can report such cells instead of passing them silently.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")  # the bad-sample policies `SkipLog.absorb` implements


@dataclass(frozen=True)
class Stream:
    """One media stream, under every name it goes by (the one table; every other view is derived from it)."""

    name: str  # decoded media key: load_sample_media's output, the batch key of raw media ("faces")
    record_attr: str  # the Record attribute holding its file ("face")
    feature_key: str  # the cached frozen-encoder output, feature cache and batch key ("face_feats")
    placeholder: str  # the prompt placeholder its token replaces (data.modes.PLACEHOLDERS key: "face")


STREAMS = {
    stream.name: stream
    for stream in (
        Stream("faces", "face", "face_feats", "face"),
        Stream("frames", "video", "frame_feats", "frame"),
        Stream("audio", "audio", "audio_feats", "audio"),
        Stream("image", "image", "image_feats", "image"),
    )
}
MEDIA_ATTR = {name: s.record_attr for name, s in STREAMS.items()}  # media key -> Record attribute


@dataclass
class Record:
    name: str
    dataset: str
    video: Path | None = None
    audio: Path | None = None
    face: Path | None = None
    subtitle: str = ""
    description: str | None = None  # track3 `reason`
    ovlabels: list[str] | None = None  # track2 / ovlabel.csv `openset`, parsed
    onehot: str | None = None  # discrete label (MER2023, MELD, ...) as a word
    valence: float | None = None  # sentiment datasets
    image: Path | None = None  # a still image (face_or_frame="image"; no dataset reader fills it)


class DataError(ValueError):
    """A bad sample or file. The message always names the sample and/or file and the reason."""

    def __init__(self, reason: str, *, sample: str | None = None, path: str | Path | None = None):
        self.reason = reason
        self.sample = sample
        self.path = str(path) if path is not None else None
        where = []
        if sample is not None:
            where.append(f"sample '{sample}'")
        if path is not None:
            where.append(f"file {path}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


def check_sample_name(name: str, source: str | Path) -> str:
    """`name` if it is a plain file name, else a DataError naming the sample, the `source` file and the reason.

    Sample names from CSVs and npz keys become media paths (`<root>/video/<name>.mp4`), so a name such as
    `../../outside/evil` or `/etc/x` would open files outside the data root. Only a non-empty single path
    component is accepted: no `/` or `\\`, not `.` / `..`, no drive prefix (`C:`), no NUL byte.
    """
    reason = _unsafe_name_reason(name)
    if reason is None:
        return name
    shown = name if isinstance(name, str) and name.isprintable() else ascii(name)
    raise DataError(f"unsafe sample name: {reason}", sample=shown, path=source)


def _unsafe_name_reason(name: str) -> str | None:
    if not isinstance(name, str):
        return f"a name must be text, got {type(name).__name__}"
    if name == "":
        return "empty name"
    if "\0" in name:
        return "contains a NUL byte"
    if name.startswith(("/", "\\")):
        return "an absolute path, not a file name"
    drive = PureWindowsPath(name).drive
    if drive:  # `C:evil` opens C:'s current folder on Windows
        return f"starts with the drive prefix {drive!r}"
    for separator in ("/", "\\"):
        if separator in name:
            return f"contains the path separator {separator!r}"
    if name in (".", ".."):
        return f"{name!r} is a directory reference, not a file name"
    return None


def with_streams(record: Record, streams: Iterable[str], needed_by: str = "") -> Record:
    """`record` keeping only the files of `streams`, so a media loader decodes nothing else; a
    DataError naming the absent ones (`needed_by` says who needs them) when some have no file."""
    streams = list(streams)
    missing = [s for s in streams if getattr(record, MEDIA_ATTR[s]) is None]
    if missing:
        raise DataError(f"has no {' / '.join(missing)} file{needed_by}", sample=record.name)
    keep = {MEDIA_ATTR[s] for s in streams}
    return replace(record, **{attr: None for attr in MEDIA_ATTR.values() if attr not in keep})


@dataclass
class SkipLog:
    """Counts skipped samples by reason, so every epoch and run can say exactly what was dropped."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, error: DataError) -> None:
        self.counts[error.reason] += 1
        self.examples.setdefault(error.reason, [])
        if len(self.examples[error.reason]) < 5:
            self.examples[error.reason].append(str(error))
        logger.warning("skipped %s", error)

    def absorb(self, error: DataError, on_error: str) -> None:
        """The one skip policy: re-raise under on_error="raise", otherwise count and log the skip."""
        if on_error == "raise":
            raise error
        self.add(error)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: SkipLog) -> None:
        for reason, n in other.counts.items():
            self.counts[reason] += n
            self.examples.setdefault(reason, []).extend(other.examples.get(reason, [])[:5])

    def summary(self) -> str:
        if not self.total:
            return "skipped 0 samples"
        parts = [f"{n} x {reason}" for reason, n in self.counts.most_common()]
        return f"skipped {self.total} samples: " + "; ".join(parts)


# --- the official label-list format ------------------------------------------------------------------
_SPLIT = re.compile(r"['\",]")
# separators a label list should not use: the official parser splits on ',' only, so `happy; sad` is one label
_FOREIGN_SEPARATORS = (";", "；", "，", "、", "|")


def string_to_list(value: Any) -> list[str]:
    """Official rule: drop one leading '[' and one trailing ']', split on ' " or ',', strip, drop empties.

    So `[a, b]`, `a, b` and `['a', 'b']` parse alike, and "don't care" is split at the apostrophe
    (an official quirk we keep for metric parity). Lists/arrays pass through (stringified, stripped).
    """
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, float) and math.isnan(value):
        return []
    text = str(value).strip()
    if not text:
        return []
    if text.startswith("["):
        text = text[1:]
    if text.endswith("]"):
        text = text[:-1]
    return [piece.strip() for piece in _SPLIT.split(text) if piece.strip()]


def list_to_string(labels: list[str]) -> str:
    """The official storage form of a label list: `[a, b]`."""
    return "[" + ", ".join(labels) + "]"


def malformed_reason(value: Any) -> str | None:
    """Why a label cell is not a well-formed list (`[a, b]`, `a, b`, `['a', 'b']`, `[]`), or None if it is.

    Checked: unbalanced, nested or stray brackets (a bracket left inside a label after parsing), separators
    other than ',' (`happy; sad`), and empty items (`[happy, , sad]`). Lists, arrays and missing cells are
    not text and are never malformed.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    opened, closed = text.count("["), text.count("]")
    if opened != closed:
        return f"unbalanced brackets ({opened} '[' and {closed} ']')"
    if opened > 1:
        return "nested or repeated brackets"
    stray = [label for label in string_to_list(text) if "[" in label or "]" in label]
    if stray:
        return f"bracket left inside label {stray[0]!r}"
    for separator in _FOREIGN_SEPARATORS:
        if separator in text:
            return f"separator {separator!r} instead of ','"
    inner = text[1:-1] if opened else text
    if inner.strip() and any(not piece.strip().strip("'\"").strip() for piece in inner.split(",")):
        return "empty item"
    return None

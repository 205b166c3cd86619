"""The one record type every dataset reader returns, and the error/skip bookkeeping.

A `Record` holds paths and text only (no decoded media), so reading a 30k-sample CSV is cheap and
records can be shipped to DataLoader workers.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PureWindowsPath

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")  # the bad-sample policies `SkipLog.absorb` implements
# media key (as `load_sample_media` returns it) -> the Record attribute holding its file
MEDIA_ATTR = {"faces": "face", "frames": "video", "audio": "audio", "image": "image"}


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

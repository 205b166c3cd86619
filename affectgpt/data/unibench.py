"""Readers for the nine MER-UniBench test sets (reference §3.2-§3.3, §4), their order and label sets.

Each dataset is one frozen `UnibenchSpec` row of facts (label file and keys, test split, subtitle
column, media folders and which alternative wins); `read_unibench` interprets a spec. Evaluation must
never lose a sample silently, so the default is on_error="raise" (a skipped test sample changes the
score); an empty or missing subtitle is accepted as "" (as official) but counted and logged, subtitle
cells are verbatim with pandas' default NA tokens read as "" (as the official pandas reading does), and a
test-split size different from the official one is logged.
"""

from __future__ import annotations

import difflib
import logging
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from affectgpt.data.mer2025 import (
    EMPTY_OPENSET,
    ReadReport,
    check_on_error,
    list_files,
    name_preview,
    note_malformed_label,
    pandas_text,
    read_csv,
    report_malformed_labels,
    report_na_text,
    report_size,
    unsafe_names,
)
from affectgpt.data.records import DataError, Record, SkipLog, string_to_list
from affectgpt.data.safe_npz import load_npz_object

logger = logging.getLogger(__name__)

TASKS = ("discrete", "dimension", "ovlabel")
POLISH_CSV = "transcription-engchi-polish.csv"


@dataclass(frozen=True)
class UnibenchSpec:
    name: str
    task: str  # "discrete" | "dimension" | "ovlabel"
    label_file: str
    test_key: str  # npz key holding the test names (or the whole corpus for IEMOCAP); csv column for ovlabel
    test_size: int  # official, asserted by the official dataset classes
    subtitle_csv: str
    subtitle_column: str
    video_dirs: tuple[str, ...]
    # Probe order when a folder holds both alternatives: the official MELD class reads `subaudio/` and the
    # IEMOCAP class `.avi`; the other sets' classes name only `audio/` and `.mp4` (MER2023 ships .mp4 or
    # .avi), so for them the official file comes first and the alternative is only a fallback.
    video_exts: tuple[str, ...] = (".mp4", ".avi")
    audio_dirs: tuple[str, ...] = ("audio", "subaudio")
    face_dir: str = "openface_face"  # flat: openface_face/<name>.npy
    label_names: tuple[str, ...] | None = None  # integer `emo` -> word
    test_session: str | None = None  # IEMOCAP: test = names with name[4] == this (Session 5)
    train_keys: tuple[str, ...] = ()  # other splits in the label file (unused: zero-shot evaluation)


_MELD = ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise")
_IEMOCAP = ("happy", "sad", "neutral", "anger")
_MER_6WAY = ("neutral", "angry", "happy", "sad", "worried", "surprise")
# The official MER-UniBench order of the nine main scores (tables, `--split test`).
UNIBENCH_ORDER = ("MER2023", "MER2024", "MELD", "IEMOCAPFour", "CMUMOSI", "CMUMOSEI", "SIMS", "SIMSv2", "OVMERDPlus")
# Label sets of the discrete datasets in the official order: the onehot question with candidates lists them
# (joined by ","), and the hit rate's secondary mscore uses them.
DISCRETE_CANDIDATES: dict[str, tuple[str, ...]] = {
    "MER2023": _MER_6WAY,
    "MER2024": _MER_6WAY,
    "MELD": _MELD,
    "IEMOCAPFour": _IEMOCAP,
}
# (min, max) valence of the dimension datasets, as the official valence question states it.
VALENCE_RANGES: dict[str, tuple[int, int]] = {
    "CMUMOSI": (-3, 3),
    "CMUMOSEI": (-3, 3),
    "SIMS": (-1, 1),
    "SIMSv2": (-1, 1),
}


def _sentiment(name: str, size: int, video_dir: str) -> UnibenchSpec:
    return UnibenchSpec(
        name,
        "dimension",
        "label.npz",
        "test_corpus",
        size,
        POLISH_CSV,
        "english",
        (video_dir,),
        train_keys=("train_corpus", "val_corpus"),
    )


UNIBENCH: dict[str, UnibenchSpec] = {
    spec.name: spec
    for spec in (
        UnibenchSpec(  # test names from subtitle_eng.csv (as the official inference), GT from ovlabel.csv
            "OVMERDPlus", "ovlabel", "ovlabel.csv", "openset", 532, "subtitle_eng.csv", "sentence", ("video",)
        ),
        UnibenchSpec(
            "MER2023",
            "discrete",
            "label-6way.npz",
            "test1_corpus",
            411,
            POLISH_CSV,
            "english",
            ("video",),
            train_keys=("train_corpus",),
        ),
        UnibenchSpec(
            "MER2024",
            "discrete",
            "label-6way.npz",
            "test1_corpus",
            1169,
            "transcription_merge.csv",
            "chinese",
            ("video",),
            train_keys=("train_corpus",),
        ),
        UnibenchSpec(
            "MELD",
            "discrete",
            "label.npz",
            "test_corpus",
            2610,
            POLISH_CSV,
            "english",
            ("subvideo",),
            audio_dirs=("subaudio", "audio"),
            label_names=_MELD,
            train_keys=("train_corpus", "val_corpus"),
        ),
        UnibenchSpec(
            "IEMOCAPFour",
            "discrete",
            "label_4way.npz",
            "whole_corpus",
            1241,
            POLISH_CSV,
            "english",
            ("subvideo-tgt",),
            video_exts=(".avi", ".mp4"),
            label_names=_IEMOCAP,
            test_session="5",
        ),
        _sentiment("CMUMOSI", 686, "subvideo"),
        _sentiment("CMUMOSEI", 4659, "subvideo_new"),
        _sentiment("SIMS", 457, "video"),
        _sentiment("SIMSv2", 1034, "video_new"),
    )
}


def get_spec(name: str) -> UnibenchSpec:
    """Case-insensitive lookup; an unknown name lists the valid ones and the closest match."""
    by_lower = {key.lower(): spec for key, spec in UNIBENCH.items()}
    spec = by_lower.get(name.lower())
    if spec is None:
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
        hint = f" Did you mean {by_lower[close[0]].name!r}?" if close else ""
        raise ValueError(f"unknown MER-UniBench dataset {name!r}; valid names: {list(UNIBENCH)}.{hint}")
    return spec


def _test_labels(spec: UnibenchSpec, root: Path) -> dict[str, Any]:
    """name -> raw label (dict from the npz, or the openset string) for the test split, in file order."""
    path = root / spec.label_file
    if spec.task == "ovlabel":
        frame = read_csv(path, ["name", spec.test_key])
        return dict(zip(frame["name"], frame[spec.test_key]))
    corpus = load_npz_object(path, spec.test_key)
    if not isinstance(corpus, dict):
        raise DataError(f"key '{spec.test_key}' holds {type(corpus).__name__}, expected a dict", path=path)
    labels = {str(name): value for name, value in corpus.items()}
    if spec.test_session is not None:
        labels = {name: v for name, v in labels.items() if len(name) > 4 and name[4] == spec.test_session}
    return labels


def _apply_label(record: Record, spec: UnibenchSpec, raw: Any, path: Path) -> None:
    """Fill onehot / valence / ovlabels from one raw label; an unusable label is a DataError."""
    if spec.task == "ovlabel":
        if raw is None:
            raise DataError(f"no row in {spec.label_file} (no ground truth)", sample=record.name, path=path)
        record.ovlabels = string_to_list(raw) or list(EMPTY_OPENSET)
        return
    if not isinstance(raw, dict):
        raise DataError(f"label is {type(raw).__name__}, expected a dict", sample=record.name, path=path)
    if spec.task == "dimension":
        value = raw.get("val")
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or math.isnan(float(value)):
            raise DataError(f"label 'val' is {value!r}, expected a number", sample=record.name, path=path)
        record.valence = float(value)
        return
    emo = raw.get("emo")
    if spec.label_names is not None and isinstance(emo, numbers.Integral) and not isinstance(emo, bool):
        if not 0 <= int(emo) < len(spec.label_names):
            raise DataError(
                f"label index {emo} out of range for {list(spec.label_names)}", sample=record.name, path=path
            )
        record.onehot = spec.label_names[int(emo)]
    elif isinstance(emo, str) and emo.strip():
        record.onehot = emo.strip().lower()
    else:
        raise DataError(f"label 'emo' is {emo!r}, expected a word or class index", sample=record.name, path=path)


def _find_media(
    name: str, root: Path, dirs: tuple[str, ...], exts: tuple[str, ...], listings: dict[str, set[str]]
) -> Path | None:
    """First `<dir>/<name><ext>` that exists; each directory is listed once per reader call (in `listings`)."""
    for directory in dirs:
        files = listings.get(directory)
        if files is None:  # not setdefault: its default would re-list the directory for every sample
            files = listings[directory] = list_files(root / directory)
        for ext in exts:
            if name + ext in files:
                return root / directory / (name + ext)
    return None


def read_unibench(
    name: str,
    root: str | Path,
    on_error: str = "raise",
    skips: SkipLog | None = None,
    check_media: bool = True,
    report: ReadReport | None = None,
) -> list[Record]:
    """The test split of one MER-UniBench dataset as records (label-file order; OV-MERD+: subtitle-file order).

    With check_media=False, paths are the preferred candidates (`<video_dirs[0]>/<name><video_exts[0]>`,
    `<audio_dirs[0]>/<name>.wav`) whether or not they exist.
    """
    spec = get_spec(name)
    root = Path(root)
    check_on_error(on_error)
    skips = skips if skips is not None else SkipLog()
    report = report if report is not None else ReadReport()
    report.dataset, report.root, report.expected = spec.name, str(root), spec.test_size
    skipped_before = skips.total

    label_path = root / spec.label_file
    labels = _test_labels(spec, root)
    subtitle_path = root / spec.subtitle_csv
    subtitle_frame = read_csv(subtitle_path, ["name", spec.subtitle_column])
    subtitles = dict(zip(subtitle_frame["name"], subtitle_frame[spec.subtitle_column]))
    names, names_from = list(labels), label_path
    if spec.task == "ovlabel":  # official OV-MERD+ inference takes its test names from the subtitle file
        names, names_from = list(subtitles), subtitle_path
        gt_only = [n for n in labels if n not in subtitles]
        if gt_only:
            report.warn(
                f"{spec.name}: {len(gt_only)} name(s) of {spec.label_file} are not in {spec.subtitle_csv} and so are "
                f"not test samples (official test names come from {spec.subtitle_csv}): {name_preview(gt_only)}"
            )
    report.listed = len(names)
    report_size(report)
    dropped = unsafe_names(names, names_from, on_error, skips)

    listings: dict[str, set[str]] = {}
    no_row: list[str] = []
    na_subtitles: list[str] = []
    records: list[Record] = []
    for sample in names:
        if sample in dropped:
            continue
        cell = subtitles.get(sample, "")
        subtitle = pandas_text(cell)
        if subtitle != cell:
            na_subtitles.append(sample)
        record = Record(name=sample, dataset=spec.name, subtitle=subtitle if subtitle.strip() else "")
        if sample not in subtitles:
            no_row.append(sample)
        raw = labels.get(sample)
        if spec.task == "ovlabel" and raw is not None:
            note_malformed_label(report, sample, raw)
        try:
            _apply_label(record, spec, raw, label_path)
            if check_media:
                for kind, dirs, exts in (
                    ("video", spec.video_dirs, spec.video_exts),
                    ("audio", spec.audio_dirs, (".wav",)),
                    ("face", (spec.face_dir,), (".npy",)),
                ):
                    path = _find_media(sample, root, dirs, exts, listings)
                    if path is None:
                        wanted = [f"{d}/{sample}{e}" for d in dirs for e in exts]
                        raise DataError(f"missing {kind} file (looked for {wanted})", sample=sample, path=root)
                    setattr(record, kind, path)
            else:
                record.video = root / spec.video_dirs[0] / f"{sample}{spec.video_exts[0]}"
                record.audio = root / spec.audio_dirs[0] / f"{sample}.wav"
                record.face = root / spec.face_dir / f"{sample}.npy"
        except DataError as err:
            skips.absorb(err, on_error)
            continue
        if not record.subtitle:
            report.empty_subtitles.append(sample)
        records.append(record)

    report_na_text(report, subtitle_path, spec.subtitle_column, na_subtitles)
    report_malformed_labels(report, label_path)
    if report.empty_subtitles:
        report.warn(
            f"{spec.name}: {len(report.empty_subtitles)} sample(s) have an empty subtitle and are evaluated "
            f"with '' ({len(no_row)} without a row in {spec.subtitle_csv}): {name_preview(report.empty_subtitles)}"
        )
    report.returned = len(records)
    report.skipped = skips.total - skipped_before
    if report.skipped:
        logger.warning("%s at %s: %s", spec.name, root, skips.summary())
    return records


def ground_truth(records: list[Record], task: str) -> dict[str, Any]:
    """name -> GT for scoring: ovlabel -> list[str], discrete -> str, dimension -> float."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    attribute = {"ovlabel": "ovlabels", "discrete": "onehot", "dimension": "valence"}[task]
    out: dict[str, Any] = {}
    for record in records:
        value = getattr(record, attribute)
        if value is None:
            raise DataError(f"no {task} ground truth ({attribute} is None)", sample=record.name)
        out[record.name] = value
    return out

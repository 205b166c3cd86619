"""Cheap checks of the media files a mode does not decode, so a corrupt one is reported instead of ignored.

The readers require every sample's video, audio and face files (a missing one is a counted skip, whatever the
mode), but a mode decodes only its own streams: in the default face modes an mp4 that is empty, truncated or
has no video stream was never opened and passed silently. Such a file is treated like a missing one: the
sample is skipped and counted under the probe's reason (the same rule for every mode). Probes open headers
only (decord's container index, a wav's RIFF header and libsndfile's info, an npy header): a few ms per
file, once per file and process (a file that passed is remembered by path, size and mtime).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from affectgpt.data.media import _check_wav_complete, probe_video
from affectgpt.data.records import MEDIA_ATTR, DataError, Record

_passed: set[tuple[str, int, int]] = set()  # (path, size, mtime_ns) of files that passed their probe


def probe_audio(path: str | Path, sample: str | None = None) -> None:
    """A wav whose header promises more samples than it holds, or any audio file libsndfile/PyAV cannot open
    or that holds no samples, is a DataError (nothing is decoded beyond the container headers)."""
    path = Path(path)
    _check_wav_complete(path, sample)
    try:
        if path.suffix.lower() == ".wav":
            import soundfile

            frames = soundfile.info(str(path)).frames
        else:
            import av

            with av.open(str(path)) as container:
                if not container.streams.audio:
                    raise DataError("has no audio stream", sample=sample, path=path)
                frames = 1
    except DataError:
        raise
    except Exception as err:  # libsndfile / FFmpeg errors for random bytes, empty or cut-off headers
        raise DataError(
            f"cannot open audio ({type(err).__name__}: {str(err)[:200]})", sample=sample, path=path
        ) from err
    if frames <= 0:
        raise DataError("audio holds no samples", sample=sample, path=path)


def probe_faces(path: str | Path, sample: str | None = None) -> None:
    """An npy face file that is not a readable, non-empty [n, H, W, 3] array (memory-mapped: no pixel read)."""
    path = Path(path)
    try:
        faces = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # bad magic, a header cut short, a pickled object
        raise DataError(
            f"cannot read face array ({type(err).__name__}: {str(err)[:200]})", sample=sample, path=path
        ) from err
    shape = getattr(faces, "shape", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3 or 0 in shape:
        raise DataError(f"face array has shape {shape}, expected [n_faces, H, W, 3]", sample=sample, path=path)


PROBES: dict[str, Callable[[Path, str | None], None]] = {
    "frames": probe_video,
    "audio": probe_audio,
    "faces": probe_faces,
}


def probe_unused(record: Record, decoded: Iterable[str], mode_name: str) -> None:
    """Probe each file of `record` that the mode (decoding the streams `decoded`) does not decode; a DataError
    naming the sample, the file and why, for the first that fails."""
    decoded = set(decoded)
    for stream, probe in PROBES.items():
        path = getattr(record, MEDIA_ATTR[stream])
        if stream in decoded or path is None:
            continue
        try:
            st = os.stat(path)
        except OSError:
            raise DataError(f"missing {stream} file", sample=record.name, path=path) from None
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key in _passed:
            continue
        try:
            probe(Path(path), record.name)
        except DataError as err:
            reason = f"{err.reason} (a file face_or_frame={mode_name!r} does not decode, but the dataset lists)"
            raise DataError(reason, sample=record.name, path=path) from err
        _passed.add(key)

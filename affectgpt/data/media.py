"""Decoding one sample's media into fixed-size arrays: 8 frames, 8 face crops, 8 audio clips.

Everything here is deterministic (no augmentation: the official model feeds CLIP the raw frames
and faces, see reference §3.1), so features of a sample can be cached and runs reproduced.
Every failure is a `DataError` naming the sample (when given), the file and the reason, so the
training loop can skip-and-count or stop, as configured.

Shapes and dtypes:
- `load_frames`      -> uint8   [n, size, size, 3] RGB (decord, resized without keeping aspect ratio)
- `load_faces`       -> uint8   [n, size, size, 3] in the stored or swapped channel order
- `load_audio_clips` -> float32 [n_clips, clip_seconds * sample_rate] mono
"""

from __future__ import annotations

import functools
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectgpt.data.records import DataError, Record

logger = logging.getLogger(__name__)

FACE_CHANNEL_ORDERS = ("as_stored", "bgr_to_rgb")


def sample_indices(n_total: int, n: int = 8) -> list[int]:
    """Indices of the `n` frames (or faces) taken from `n_total`, by the official rule.

    Official: `floor(arange(0, vlen, vlen / n))`; when vlen < n, all frames followed by the last
    index repeated. We compute `(i * vlen) // n` in integers: identical to the float rule whenever
    vlen / n is exact (always for n = 8, a power of two) and free of float round-off otherwise.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if n_total <= 0:
        raise DataError(f"no frames to sample from (length {n_total})")
    if n_total < n:
        return list(range(n_total)) + [n_total - 1] * (n - n_total)
    return [(i * n_total) // n for i in range(n)]


def _require_file(path: Path, sample: str | None) -> None:
    if not path.is_file():
        raise DataError("file not found", sample=sample, path=path)


def load_frames(path: str | Path, n: int = 8, size: int = 224, *, sample: str | None = None) -> np.ndarray:
    """Decode `n` uniformly sampled frames as uint8 [n, size, size, 3] RGB.

    Like the official loader, decord resizes straight to size x size, so the aspect ratio is not kept.
    """
    import decord  # imported lazily: importing decord is slow and not every caller needs video

    path = Path(path)
    _require_file(path, sample)
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), width=size, height=size, num_threads=1)
        n_total = len(reader)
    except Exception as err:  # decord raises its own DECORDError / RuntimeError for bad streams
        raise DataError(f"cannot open video ({type(err).__name__}: {_first_line(err)})", sample=sample, path=path) from err
    if n_total <= 0:
        raise DataError("video has zero frames", sample=sample, path=path)
    indices = sample_indices(n_total, n)
    try:
        frames = reader.get_batch(indices).asnumpy()
    except Exception as err:
        raise DataError(f"cannot decode frames {indices} ({type(err).__name__}: {_first_line(err)})", sample=sample, path=path) from err
    if frames.shape != (n, size, size, 3) or frames.dtype != np.uint8:
        raise DataError(f"decoded frames have shape {frames.shape} {frames.dtype}, expected ({n}, {size}, {size}, 3) uint8", sample=sample, path=path)
    return np.ascontiguousarray(frames)


def load_faces(
    path: str | Path,
    n: int = 8,
    size: int = 224,
    channel_order: str = "as_stored",
    *,
    sample: str | None = None,
) -> np.ndarray:
    """Load an OpenFace crop file (.npy, uint8 [n_faces, H, W, 3]) as uint8 [n, size, size, 3].

    Crops are sampled with the frame rule and bilinearly resized (half-pixel centres, like cv2's
    default INTER_LINEAR that the official code uses). `channel_order`: "as_stored" keeps the
    stored order, as the official model does; the official npys were written from `cv2.imread`,
    so they are probably BGR. "bgr_to_rgb" reverses the channel axis (colour-correct for CLIP).
    """
    if channel_order not in FACE_CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {FACE_CHANNEL_ORDERS}, got {channel_order!r}")
    path = Path(path)
    _require_file(path, sample)
    try:
        faces = np.load(path, allow_pickle=False)
    except Exception as err:  # bad magic, truncated data, pickled objects
        raise DataError(f"cannot read face array ({type(err).__name__}: {_first_line(err)})", sample=sample, path=path) from err
    if not isinstance(faces, np.ndarray) or faces.ndim != 4 or faces.shape[-1] != 3:
        shape = getattr(faces, "shape", None)
        raise DataError(f"face array has shape {shape}, expected [n_faces, H, W, 3]", sample=sample, path=path)
    if faces.shape[0] == 0 or faces.shape[1] == 0 or faces.shape[2] == 0:
        raise DataError(f"face array is empty (shape {faces.shape})", sample=sample, path=path)
    if faces.dtype != np.uint8:
        if faces.dtype.kind not in "uif" or not np.isfinite(faces).all() or faces.min() < 0 or faces.max() > 255:
            raise DataError(f"face array has dtype {faces.dtype} with values outside 0..255", sample=sample, path=path)
        faces = np.rint(faces).astype(np.uint8)
    picked = faces[sample_indices(faces.shape[0], n)]
    if picked.shape[1:3] != (size, size):
        # torch's native uint8 bilinear kernel: 20x faster than a float round trip, within 1 of it
        tensor = torch.from_numpy(np.ascontiguousarray(picked)).permute(0, 3, 1, 2)
        tensor = torch.nn.functional.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
        picked = tensor.permute(0, 2, 3, 1).numpy()
    if channel_order == "bgr_to_rgb":
        picked = picked[..., ::-1]
    return np.ascontiguousarray(picked)


@functools.cache
def _torchaudio_works() -> bool:
    """Whether torchaudio.load can decode here (it needs torchcodec and a system FFmpeg).

    Probed once on a tiny in-memory wav, so an environment problem is told apart from a bad file.
    """
    try:
        import soundfile
        import torchaudio

        buffer = io.BytesIO()
        soundfile.write(buffer, np.zeros(160, dtype=np.float32), 16000, format="WAV", subtype="PCM_16")
        buffer.seek(0)
        torchaudio.load(buffer)
        return True
    except Exception as err:
        logger.warning(
            "torchaudio.load is unavailable (%s: %s); decoding audio with soundfile (wav) / decord (other) instead",
            type(err).__name__, _first_line(err),
        )  # fmt: skip
        return False


# "torchaudio" = the FFmpeg path (torchaudio.load, or decord where torchaudio cannot decode).
AUDIO_BACKENDS = ("auto", "soundfile", "torchaudio")


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), int(rate)


def _read_other(path: Path) -> tuple[np.ndarray, int]:
    """Any container FFmpeg reads: torchaudio when it works here, else decord's audio reader."""
    if _torchaudio_works():
        import torchaudio

        waveform, rate = torchaudio.load(str(path))
        return waveform.numpy().astype(np.float32, copy=False), int(rate)
    import decord

    reader = decord.AudioReader(str(path), ctx=decord.cpu(0), mono=False)
    return reader[:].asnumpy().astype(np.float32), int(reader.sample_rate)


def _decode_audio(path: Path, backend: str = "auto") -> tuple[np.ndarray, int]:
    """Return (float32 [channels, samples], sample_rate) for a wav or any container with audio.

    "auto": .wav through libsndfile (soundfile) first: it gives the same samples as FFmpeg for PCM
    and float wavs (x / 2^(bits-1)) at ~0.5 ms instead of ~20 ms per file for torchaudio.load,
    which spins up an FFmpeg decoder per call. Wavs libsndfile cannot read (odd codecs in a RIFF
    container) and every other container go through torchaudio / decord (FFmpeg).
    """
    if backend not in AUDIO_BACKENDS:
        raise ValueError(f"backend must be one of {AUDIO_BACKENDS}, got {backend!r}")
    if backend == "soundfile":
        return _read_soundfile(path)
    if backend == "auto" and path.suffix.lower() == ".wav":
        try:
            return _read_soundfile(path)
        except Exception as err:  # libsndfile refuses the codec: let FFmpeg try
            logger.debug("soundfile cannot read %s (%s); trying FFmpeg", path, _first_line(err))
    return _read_other(path)


def _resample(mono: np.ndarray, orig: int, new: int) -> np.ndarray:
    if orig == new:
        return mono
    try:
        import torchaudio.functional as F
    except Exception:  # lean profile without torchaudio
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(orig, new)
        return resample_poly(mono, new // g, orig // g).astype(np.float32)
    return F.resample(torch.from_numpy(np.ascontiguousarray(mono)), orig, new).numpy()


def clip_starts(n_samples: int, n_clips: int, clip_samples: int) -> list[int]:
    """Start sample of each clip: evenly spaced from 0 to max(n_samples - clip_samples, 0).

    Computed in samples and rounded to the nearest integer (numpy's half-to-even); the official
    sampler truncates start_seconds * rate, so a start may differ from it by one sample (62.5 us).
    """
    last = max(n_samples - clip_samples, 0)
    return [int(s) for s in np.rint(np.linspace(0, last, n_clips))]


def load_audio_clips(
    path: str | Path,
    n_clips: int = 8,
    clip_seconds: float = 2.0,
    sample_rate: int = 16000,
    *,
    sample: str | None = None,
) -> np.ndarray:
    """Decode audio (wav, or the audio track of an mp4) into float32 [n_clips, clip_samples] mono clips.

    Official recipe (ImageBind `load_audio`): average channels, resample to `sample_rate`, zero-pad
    to at least one clip, take `n_clips` clips of `clip_seconds` with evenly spaced starts; they
    overlap when the audio is shorter than n_clips * clip_seconds.
    """
    path = Path(path)
    _require_file(path, sample)
    try:
        waveform, rate = _decode_audio(path)
    except Exception as err:
        raise DataError(f"cannot decode audio ({type(err).__name__}: {_first_line(err)})", sample=sample, path=path) from err
    if waveform.ndim != 2 or waveform.shape[1] == 0:
        raise DataError(f"audio is empty (shape {tuple(waveform.shape)})", sample=sample, path=path)
    if not np.isfinite(waveform).all():
        raise DataError("audio contains NaN or infinite samples", sample=sample, path=path)
    mono = waveform.mean(axis=0).astype(np.float32)
    mono = _resample(mono, rate, sample_rate)
    clip_samples = int(round(clip_seconds * sample_rate))
    if mono.shape[0] < clip_samples:
        mono = np.pad(mono, (0, clip_samples - mono.shape[0]))
    starts = clip_starts(mono.shape[0], n_clips, clip_samples)
    clips = np.stack([mono[s : s + clip_samples] for s in starts])
    return clips.astype(np.float32, copy=False)


def load_image(path: str | Path, size: int = 224, *, sample: str | None = None) -> np.ndarray:
    """Read a still image as uint8 [1, size, size, 3] RGB (face_or_frame="image").

    As the official image loader: PIL open, convert("RGB"), `resize((size, size))` with PIL's default
    filter, which for RGB images is BICUBIC (aspect ratio not kept).
    """
    from PIL import Image

    path = Path(path)
    _require_file(path, sample)
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size, size))
    except Exception as err:  # PIL.UnidentifiedImageError, truncated files, decoder errors
        raise DataError(f"cannot read image ({type(err).__name__}: {_first_line(err)})", sample=sample, path=path) from err
    return np.array(rgb, dtype=np.uint8)[None]  # a writable copy (np.asarray of a PIL image is read-only)


def load_sample_media(record: Record, data_cfg: Any) -> dict[str, np.ndarray]:
    """Decode the streams a record has: {"frames", "faces", "audio", "image"} (absent streams are left out).

    `data_cfg` is a `DataConfig` (n_frames, n_audio_clips, clip_seconds, sample_rate, image_size,
    face_channel_order).
    """
    out: dict[str, np.ndarray] = {}
    if record.video is not None:
        out["frames"] = load_frames(record.video, data_cfg.n_frames, data_cfg.image_size, sample=record.name)
    if record.face is not None:
        out["faces"] = load_faces(
            record.face, data_cfg.n_frames, data_cfg.image_size, data_cfg.face_channel_order, sample=record.name
        )
    if record.audio is not None:
        out["audio"] = load_audio_clips(
            record.audio, data_cfg.n_audio_clips, data_cfg.clip_seconds, data_cfg.sample_rate, sample=record.name
        )
    if record.image is not None:
        out["image"] = load_image(record.image, data_cfg.image_size, sample=record.name)
    return out


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""

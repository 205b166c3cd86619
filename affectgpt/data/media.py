"""Decoding one sample's media into fixed-size arrays: 8 frames, 8 face crops, 8 audio clips.

Everything here is deterministic (no augmentation: the official model feeds CLIP the raw frames
and faces, see reference §3.1), so features of a sample can be cached and runs reproduced.
Every failure is a `DataError` naming the sample (when given), the file and the reason, so the
training loop can skip-and-count or stop, as configured.

Shapes and dtypes:
- `load_frames`      -> uint8   [n, size, size, 3] RGB (decord, resized without keeping aspect ratio)
- `load_faces`       -> uint8   [n, size, size, 3] in the stored or swapped channel order
- `load_audio_clips` -> float32 [n_clips, clip_seconds * sample_rate] mono, each clip zero-mean
- `probe_video`      -> None; a cheap "does this mp4 open and have frames" check
"""

from __future__ import annotations

import functools
import io
import logging
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affectgpt.data.records import DataError, Record

logger = logging.getLogger(__name__)

FACE_CHANNEL_ORDERS = ("as_stored", "bgr_to_rgb")
_warned: set[tuple[str, str]] = set()  # (file, what): each odd-but-usable file is logged once per process


def _warn_once(path: Path, what: str, message: str) -> None:
    if (str(path), what) not in _warned:
        _warned.add((str(path), what))
        logger.warning("%s: %s", path, message)


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


def _open_video(path: Path, sample: str | None, **resize: int) -> Any:
    """A decord VideoReader with at least one frame, or a DataError saying why not."""
    import decord  # imported lazily: importing decord is slow and not every caller needs video

    _require_file(path, sample)
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1, **resize)
        n_total = len(reader)
    except Exception as err:  # decord raises its own DECORDError / RuntimeError for bad streams
        raise DataError(f"cannot open video {_why(err)}", sample=sample, path=path) from err
    if n_total <= 0:
        raise DataError("video has zero frames", sample=sample, path=path)
    return reader


def probe_video(path: str | Path, sample: str | None = None) -> None:
    """Check that a video opens and has >= 1 frame, without decoding frames (a few ms per file).

    For modes that never decode frames (faces + audio) but must still report unreadable videos.
    decord indexes the whole container on open, so empty, truncated and random-byte files fail here.
    """
    _open_video(Path(path), sample)


def load_frames(path: str | Path, n: int = 8, size: int = 224, *, sample: str | None = None) -> np.ndarray:
    """Decode `n` uniformly sampled frames as uint8 [n, size, size, 3] RGB.

    Like the official loader, decord resizes straight to size x size, so the aspect ratio is not kept.
    """
    path = Path(path)
    reader = _open_video(path, sample, width=size, height=size)
    indices = sample_indices(len(reader), n)
    try:
        frames = reader.get_batch(indices).asnumpy()
    except Exception as err:
        raise DataError(f"cannot decode frames {indices} {_why(err)}", sample=sample, path=path) from err
    if frames.shape != (n, size, size, 3) or frames.dtype != np.uint8:
        want = f"({n}, {size}, {size}, 3) uint8"
        got = f"{frames.shape} {frames.dtype}"
        raise DataError(f"decoded frames have shape {got}, expected {want}", sample=sample, path=path)
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

    Crops are sampled with the frame rule and each is resized by `cv2.resize(crop, (size, size))`
    (INTER_LINEAR), as the official loader does: only OpenCV itself is bit-exact (torch's uint8
    bilinear is off by one grey level on 20-31 % of values). `channel_order`: "as_stored" keeps the
    stored order, as the official model does; the official npys were written from `cv2.imread`,
    so they are probably BGR. "bgr_to_rgb" reverses the channel axis (colour-correct for CLIP).
    """
    import cv2  # imported lazily, like decord: only face modes need it

    if channel_order not in FACE_CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {FACE_CHANNEL_ORDERS}, got {channel_order!r}")
    path = Path(path)
    _require_file(path, sample)
    try:
        faces = np.load(path, allow_pickle=False)
    except Exception as err:  # bad magic, truncated data, pickled objects
        raise DataError(f"cannot read face array {_why(err)}", sample=sample, path=path) from err
    if not isinstance(faces, np.ndarray) or faces.ndim != 4 or faces.shape[-1] != 3:
        shape = getattr(faces, "shape", None)
        raise DataError(f"face array has shape {shape}, expected [n_faces, H, W, 3]", sample=sample, path=path)
    if faces.shape[0] == 0 or faces.shape[1] == 0 or faces.shape[2] == 0:
        raise DataError(f"face array is empty (shape {faces.shape})", sample=sample, path=path)
    picked = _as_uint8_faces(faces[sample_indices(faces.shape[0], n)], faces, path, sample)
    picked = np.stack([cv2.resize(np.ascontiguousarray(crop), (size, size)) for crop in picked])
    if channel_order == "bgr_to_rgb":
        picked = picked[..., ::-1]
    return np.ascontiguousarray(picked)


def _as_uint8_faces(picked: np.ndarray, faces: np.ndarray, path: Path, sample: str | None) -> np.ndarray:
    """The picked crops as uint8, checking the whole file's values: a float file holding 0..1 images
    (normalised, not pixel values) or values outside 0..255 would otherwise become black or wrapped faces."""
    if faces.dtype == np.uint8:
        return picked
    if faces.dtype.kind not in "uif":
        raise DataError(f"face array has dtype {faces.dtype}; expected uint8 0..255", sample=sample, path=path)
    if faces.dtype.kind == "f" and not np.isfinite(faces).all():
        raise DataError(f"face array ({faces.dtype}) holds NaN or infinite values", sample=sample, path=path)
    low, high = faces.min(), faces.max()
    if low < 0 or high > 255:
        raise DataError(f"face array has dtype {faces.dtype} with values outside 0..255", sample=sample, path=path)
    if faces.dtype.kind == "f":
        if high <= 1.0:
            raise DataError("float face crops in [0, 1]; expected uint8 0..255", sample=sample, path=path)
        _warn_once(path, "float faces", f"face crops stored as {faces.dtype} in 0..255; rounded to uint8")
        picked = np.rint(picked)
    return picked.astype(np.uint8)


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
    except Exception as err:  # noqa: BLE001 - any failure means "use the fallback decoders", and is logged
        logger.warning(
            "torchaudio.load is unavailable (%s: %s); decoding audio with soundfile (wav) / PyAV (other) instead",
            type(err).__name__,
            _first_line(err),
        )
        return False


# "torchaudio" = the FFmpeg path (torchaudio.load, or PyAV where torchaudio cannot decode).
AUDIO_BACKENDS = ("auto", "soundfile", "torchaudio")


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), int(rate)


def _read_other(path: Path) -> tuple[np.ndarray, int]:
    """Any container FFmpeg reads: torchaudio when it works here, else PyAV (the same FFmpeg decoders).

    Not decord's AudioReader: with mono=False it returns NaN and shifted samples for stereo AAC, and its
    `sample_rate` echoes the requested rate (-1) instead of the file's.
    """
    if _torchaudio_works():
        import torchaudio

        waveform, rate = torchaudio.load(str(path))
        return waveform.numpy().astype(np.float32, copy=False), int(rate)
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        planar = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)  # float [channels, n]
        chunks = [out.to_ndarray() for frame in container.decode(stream) for out in planar.resample(frame)]
        chunks += [out.to_ndarray() for out in planar.resample(None)]
    return np.concatenate(chunks, axis=1).astype(np.float32, copy=False), int(stream.rate)


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
        except Exception as err:  # noqa: BLE001 - libsndfile refuses the codec: let FFmpeg try
            logger.debug("soundfile cannot read %s (%s); trying FFmpeg", path, _first_line(err))
    return _read_other(path)


def _resample(waveform: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Resample float32 [channels, samples], each channel on its own (as torchaudio does)."""
    if orig == new:
        return waveform
    import torchaudio.functional as F  # lazily: importing torchaudio costs ~1 s and most wavs are 16 kHz already

    return F.resample(torch.from_numpy(np.ascontiguousarray(waveform)), orig, new).numpy()


def clip_starts(n_samples: int, n_clips: int, clip_seconds: float, sample_rate: int) -> list[int]:
    """Start sample of each clip, by the official sampler (pytorchvideo ConstantClipsPerVideoSampler).

    Clip k starts at k * max(dur - clip_seconds, 0) / n_clips seconds, dur = n_samples / sample_rate:
    a step of max_start / n_clips, so the last clip starts at (n_clips - 1) / n_clips of the maximum
    start and the end of long audio is never used. Like pytorchvideo, the float difference is made an
    exact Fraction before the division and the product, and the start is truncated to a whole sample.
    """
    max_start = Fraction(max(n_samples / sample_rate - clip_seconds, 0))
    step = max_start / n_clips
    return [int(step * k * sample_rate) for k in range(n_clips)]


_PCM_FORMAT_TAGS = (1, 3, 0xFFFE)  # WAVE_FORMAT_PCM, _IEEE_FLOAT, _EXTENSIBLE: one block = one frame


def _check_wav_complete(path: Path, sample: str | None) -> None:
    """DataError when a RIFF wav's data chunk declares more frames than the file holds.

    libsndfile and FFmpeg silently shorten a truncated wav to what is there (soundfile.info reports
    the shortened count too), so only the header's data-chunk size tells a cut-off file apart.
    Other files (mp4, RF64, compressed wavs, streamed wavs with a placeholder size) are left alone.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
            return
        block, pos = 0, 12
        while pos + 8 <= size:
            handle.seek(pos)
            chunk, length = struct.unpack("<4sI", handle.read(8))
            fields = handle.read(14) if chunk == b"fmt " and length >= 14 else b""
            if len(fields) == 14:  # (a fmt chunk cut short is left to the decoder to refuse)
                tag, _, _, _, align = struct.unpack("<HHIIH", fields)
                block = align if tag in _PCM_FORMAT_TAGS else 0
            elif chunk == b"data":
                held = size - pos - 8
                if block and length != 0xFFFFFFFF and length > held:
                    raise DataError(
                        f"audio truncated: header says {length // block} samples, file holds {held // block}",
                        sample=sample,
                        path=path,
                    )
                return
            pos += 8 + length + (length & 1)  # RIFF chunks are padded to an even size


def _to_official_channels(waveform: np.ndarray, path: Path) -> np.ndarray:
    """[channels, samples] as the official loader keeps it: mono as is, stereo averaged to one
    channel, 3+ channels kept (its HuBERT wrapper later reads channel 0)."""
    if waveform.shape[0] == 2:
        return waveform.mean(axis=0, keepdims=True, dtype=np.float32)
    if waveform.shape[0] > 2:
        _warn_once(path, "channels", f"audio has {waveform.shape[0]} channels; HuBERT gets channel 0 (official rule)")
    return waveform


def load_audio_clips(
    path: str | Path,
    n_clips: int = 8,
    clip_seconds: float = 2.0,
    sample_rate: int = 16000,
    *,
    sample: str | None = None,
) -> np.ndarray:
    """Decode audio (wav, or the audio track of an mp4) into float32 [n_clips, clip_samples] mono clips.

    Official recipe (ImageBind `load_audio` + its audio transform): resample each channel to
    `sample_rate`, average if stereo, zero-pad to at least one clip, cut `n_clips` clips of
    `clip_seconds` at the `clip_starts` positions (they overlap when the audio is shorter than
    n_clips * clip_seconds), then subtract from each clip its own float32 mean (`clip -= clip.mean()`,
    over all its channels), and keep channel 0.
    """
    path = Path(path)
    _require_file(path, sample)
    _check_wav_complete(path, sample)
    try:
        waveform, rate = _decode_audio(path)
    except Exception as err:
        raise DataError(f"cannot decode audio {_why(err)}", sample=sample, path=path) from err
    if waveform.ndim != 2 or waveform.shape[1] == 0:
        raise DataError(f"audio is empty (shape {tuple(waveform.shape)})", sample=sample, path=path)
    if not np.isfinite(waveform).all():
        raise DataError("audio contains NaN or infinite samples", sample=sample, path=path)
    waveform = _to_official_channels(_resample(waveform, rate, sample_rate), path)
    clip_samples = round(clip_seconds * sample_rate)
    if waveform.shape[1] < clip_samples:
        waveform = np.pad(waveform, ((0, 0), (0, clip_samples - waveform.shape[1])))
    starts = clip_starts(waveform.shape[1], n_clips, clip_seconds, sample_rate)
    clips = torch.from_numpy(np.stack([waveform[:, s : s + clip_samples] for s in starts]))
    for clip in clips:  # torch float32 mean, clip by clip: the official transform's own arithmetic
        clip -= clip.mean()
    return np.ascontiguousarray(clips[:, 0].numpy())


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
        raise DataError(
            f"cannot read image ({type(err).__name__}: {_first_line(err)})", sample=sample, path=path
        ) from err
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


def _why(err: BaseException) -> str:
    return f"({type(err).__name__}: {_first_line(err)})"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""

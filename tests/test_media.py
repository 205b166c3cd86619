"""Media decoding: official sampling rules, output shapes/dtypes, and a named DataError for every bad input."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from affectgpt.config import DataConfig
from affectgpt.data.media import (
    clip_starts,
    load_audio_clips,
    load_faces,
    load_frames,
    load_sample_media,
    probe_video,
    sample_indices,
)
from affectgpt.data.records import DataError, Record


def brightness(i: int, n: int) -> float:
    return 20 + 200 * i / max(n - 1, 1)


def write_ramp_video(
    path: Path, n: int, width: int = 64, height: int = 48, tone_hz: float | None = None, stereo: bool = False
) -> Path:
    """Frame i is a flat grey of brightness(i); optionally an AAC track with a 1 s tone per 8 frames
    (stereo: the right channel at a quarter of the left's amplitude)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=8)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"crf": "0"}
        layout = "stereo" if stereo else "mono"
        sound = None if tone_hz is None else container.add_stream("aac", rate=16000, layout=layout)
        for i in range(n):
            image = np.full((height, width, 3), round(brightness(i, n)), dtype=np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode())
        if sound is not None:
            samples = n * 2000
            wave = (0.5 * np.sin(2 * np.pi * tone_hz * np.arange(samples) / 16000)).astype(np.float32)[None]
            wave = np.concatenate([wave, 0.25 * wave]) if stereo else wave
            for start in range(0, samples, 1024):
                frame = av.AudioFrame.from_ndarray(wave[:, start : start + 1024], format="fltp", layout=layout)
                frame.sample_rate, frame.pts = 16000, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


def official_indices(vlen: int, n: int = 8) -> list[int]:
    if vlen < n:
        return list(range(vlen)) + [vlen - 1] * (n - vlen)
    return np.arange(0, vlen, vlen / n).astype(int).tolist()


@pytest.mark.parametrize("vlen", [1, 5, 7, 8, 9, 13, 96, 100, 250, 1001])
def test_sample_indices_equal_official_rule(vlen):
    assert sample_indices(vlen, 8) == official_indices(vlen)


def test_sample_indices_examples_and_zero():
    assert sample_indices(5) == [0, 1, 2, 3, 4, 4, 4, 4]
    assert sample_indices(96) == [0, 12, 24, 36, 48, 60, 72, 84]
    with pytest.raises(DataError, match="no frames"):
        sample_indices(0)


@pytest.mark.parametrize("vlen", [1, 5, 8, 96])
def test_frames_are_the_sampled_frames(tmp_path, vlen):
    path = write_ramp_video(tmp_path / f"ramp{vlen}.mp4", vlen)
    frames = load_frames(path, n=8, size=224)
    assert frames.shape == (8, 224, 224, 3) and frames.dtype == np.uint8  # 64x48 resized, aspect not kept
    got = frames.reshape(8, -1).mean(axis=1)
    want = np.array([brightness(i, vlen) for i in official_indices(vlen)])
    np.testing.assert_allclose(got, want, atol=3)
    assert np.all(np.diff(got) >= -1)


def test_frames_small_size(tmp_path):
    frames = load_frames(write_ramp_video(tmp_path / "v.mp4", 12), n=4, size=32)
    assert frames.shape == (4, 32, 32, 3)


def write_faces(path: Path, n_faces: int, size: int = 112) -> Path:
    """Face i: channel 0 = 5 * i, channel 1 = 100, channel 2 = 200."""
    faces = np.zeros((n_faces, size, size, 3), dtype=np.uint8)
    faces[..., 0] = (5 * np.arange(n_faces))[:, None, None]
    faces[..., 1], faces[..., 2] = 100, 200
    np.save(path, faces)
    return path


@pytest.mark.parametrize("n_faces", [3, 12, 40])
def test_faces_sampled_resized_and_channel_order(tmp_path, n_faces):
    path = write_faces(tmp_path / "f.npy", n_faces)
    stored = load_faces(path, n=8, size=224)
    assert stored.shape == (8, 224, 224, 3) and stored.dtype == np.uint8
    want = [5 * i for i in official_indices(n_faces)]
    assert stored[:, :, :, 0].reshape(8, -1).min(axis=1).tolist() == want
    assert stored[:, :, :, 0].reshape(8, -1).max(axis=1).tolist() == want
    assert np.all(stored[..., 2] == 200)
    swapped = load_faces(path, n=8, size=224, channel_order="bgr_to_rgb")
    np.testing.assert_array_equal(swapped, stored[..., ::-1])
    assert np.all(swapped[..., 0] == 200)


def test_face_resize_is_bilinear(tmp_path):
    faces = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    faces[:, :, 2:] = 200  # left half 0, right half 200
    np.save(tmp_path / "edge.npy", faces)
    row = load_faces(tmp_path / "edge.npy", n=1, size=8)[0, 0, :, 0].astype(int).tolist()
    # half-pixel bilinear (cv2 INTER_LINEAR): a 2-pixel ramp across the edge, flat elsewhere
    assert row == [0, 0, 0, 50, 150, 200, 200, 200]


def test_bad_channel_order(tmp_path):
    with pytest.raises(ValueError, match="channel_order"):
        load_faces(write_faces(tmp_path / "f.npy", 2), channel_order="rgb")


def write_wav(path: Path, data: np.ndarray, rate: int = 16000, subtype: str = "FLOAT") -> Path:
    soundfile.write(path, data, rate, subtype=subtype)
    return path


def test_audio_stereo_resampled_to_mono_16k(tmp_path):
    t = np.arange(3 * 44100) / 44100
    stereo = np.stack([0.6 * np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1).astype(np.float32)
    clips = load_audio_clips(write_wav(tmp_path / "stereo.wav", stereo, rate=44100), n_clips=2)
    assert clips.shape == (2, 32000)
    spectrum = np.abs(np.fft.rfft(clips[0]))
    assert abs(np.argmax(spectrum) * 16000 / 32000 - 440) <= 1
    assert 0.28 < np.abs(clips[0]).max() < 0.32  # channels averaged: amplitude halved


def test_audio_from_mp4_track(tmp_path):
    path = write_ramp_video(tmp_path / "av.mp4", 24, tone_hz=1000)
    clips = load_audio_clips(path)
    assert clips.shape == (8, 32000) and clips.dtype == np.float32
    assert abs(np.argmax(np.abs(np.fft.rfft(clips[3]))) * 0.5 - 1000) <= 2


def test_load_sample_media_uses_config(tmp_path):
    video = write_ramp_video(tmp_path / "s.mp4", 20)
    face = write_faces(tmp_path / "s.npy", 10)
    audio = write_wav(tmp_path / "s.wav", np.zeros(48000, dtype=np.float32))
    cfg = DataConfig(n_frames=4, image_size=32, n_audio_clips=3, face_channel_order="bgr_to_rgb")
    out = load_sample_media(Record("s", "demo", video=video, audio=audio, face=face), cfg)
    assert out["frames"].shape == (4, 32, 32, 3)
    assert out["faces"].shape == (4, 32, 32, 3) and np.all(out["faces"][..., 0] == 200)
    assert out["audio"].shape == (3, 32000)
    assert set(load_sample_media(Record("a", "demo", audio=audio), cfg)) == {"audio"}


# ---------------------------------------------------------------- bad inputs


def assert_names(err: DataError, path: Path, reason: str, sample: str | None) -> None:
    message = str(err)
    assert str(path) in message and reason in message
    assert err.path == str(path) and reason in err.reason
    if sample is not None:
        assert f"'{sample}'" in message and err.sample == sample


@pytest.mark.parametrize("sample", [None, "sample_00000007"])
@pytest.mark.parametrize("loader", [load_frames, load_faces, load_audio_clips])
def test_missing_file(tmp_path, loader, sample):
    path = tmp_path / "nope.bin"
    with pytest.raises(DataError) as info:
        loader(path, sample=sample)
    assert_names(info.value, path, "not found", sample)


@pytest.fixture
def random_bytes_mp4(tmp_path) -> Path:
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def test_corrupt_mp4_frames(random_bytes_mp4):
    with pytest.raises(DataError) as info:
        load_frames(random_bytes_mp4, sample="s1")
    assert_names(info.value, random_bytes_mp4, "cannot open video", "s1")


def test_corrupt_mp4_audio(random_bytes_mp4):
    with pytest.raises(DataError) as info:
        load_audio_clips(random_bytes_mp4, sample="s1")
    assert_names(info.value, random_bytes_mp4, "cannot decode audio", "s1")


def test_zero_length_wav(tmp_path):
    path = write_wav(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), subtype="PCM_16")
    with pytest.raises(DataError) as info:
        load_audio_clips(path, sample="s2")
    assert_names(info.value, path, "audio is empty", "s2")


def test_nan_wav(tmp_path):
    data = np.zeros(16000, dtype=np.float32)
    data[100] = np.nan
    path = write_wav(tmp_path / "nan.wav", data)
    with pytest.raises(DataError) as info:
        load_audio_clips(path, sample="s3")
    assert_names(info.value, path, "NaN", "s3")


@pytest.mark.parametrize(
    "array, reason",
    [
        (np.zeros((12, 112, 112), dtype=np.uint8), "expected [n_faces, H, W, 3]"),
        (np.zeros((12, 112, 112, 4), dtype=np.uint8), "expected [n_faces, H, W, 3]"),
        (np.zeros((0, 112, 112, 3), dtype=np.uint8), "face array is empty"),
        (np.zeros((2, 0, 112, 3), dtype=np.uint8), "face array is empty"),
        (np.zeros((2, 112, 0, 3), dtype=np.uint8), "face array is empty"),
        (np.full((2, 8, 8, 3), 300.0), "outside 0..255"),
    ],
)
def test_bad_face_arrays(tmp_path, array, reason):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(DataError) as info:
        load_faces(path, sample="s4")
    assert_names(info.value, path, reason, "s4")


def test_corrupt_and_pickled_npy(tmp_path):
    corrupt = tmp_path / "corrupt.npy"
    corrupt.write_bytes(os.urandom(300))
    with pytest.raises(DataError) as info:
        load_faces(corrupt, sample="s5")
    assert_names(info.value, corrupt, "cannot read face array", "s5")
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError) as info:
        load_faces(pickled)
    assert_names(info.value, pickled, "cannot read face array", None)


@pytest.mark.parametrize("subtype, channels, rate", [("PCM_16", 1, 16000), ("PCM_24", 2, 16000), ("FLOAT", 1, 22050)])
def test_wav_soundfile_and_torchaudio_paths_agree(tmp_path, subtype, channels, rate):
    """The fast soundfile path for .wav gives exactly the samples (and clips) of the FFmpeg path."""
    from affectgpt.data.media import _decode_audio

    rng = np.random.default_rng(1)
    data = np.clip(rng.normal(0, 0.3, (int(2.5 * rate), channels)), -1, 1).astype(np.float32)
    path = write_wav(tmp_path / "noise.wav", data, rate=rate, subtype=subtype)
    fast, fast_rate = _decode_audio(path, backend="soundfile")
    slow, slow_rate = _decode_audio(path, backend="torchaudio")
    assert fast_rate == slow_rate == rate and fast.shape == slow.shape == (channels, len(data))
    np.testing.assert_array_equal(fast, slow)
    auto, _ = _decode_audio(path)
    np.testing.assert_array_equal(auto, fast)
    # and the clips are the official pipeline applied to the FFmpeg samples: resample each channel, average,
    # cut at clip_starts, remove each clip's mean. Float64 here against float32 there: the clip mean of 32000
    # samples |x| <= 1 is off by <= ~1e-6 in float32 (see test_media_rules.ATOL); a wrong start costs ~0.3.
    clips = load_audio_clips(path, n_clips=4)
    if rate != 16000:
        import torch
        import torchaudio.functional as F

        slow = F.resample(torch.from_numpy(slow), rate, 16000).numpy()
    mono = np.pad(slow.astype(np.float64).mean(axis=0), (0, max(0, 32000 - slow.shape[1])))
    want = np.stack([mono[s : s + 32000] - mono[s : s + 32000].mean() for s in clip_starts(len(mono), 4, 2.0, 16000)])
    np.testing.assert_allclose(clips, want, rtol=0, atol=2e-6)


def test_unknown_audio_backend(tmp_path):
    from affectgpt.data.media import _decode_audio

    with pytest.raises(ValueError, match="backend"):
        _decode_audio(write_wav(tmp_path / "a.wav", np.zeros(100, dtype=np.float32)), backend="sox")


def test_wav_that_libsndfile_refuses_is_decoded_by_ffmpeg(tmp_path):
    """An mp4 saved under a .wav name: soundfile raises, the FFmpeg path reads its audio track."""
    path = tmp_path / "really_mp4.wav"
    path.write_bytes(write_ramp_video(tmp_path / "av.mp4", 24, tone_hz=1000).read_bytes())
    clips = load_audio_clips(path)
    assert clips.shape == (8, 32000)
    assert abs(np.argmax(np.abs(np.fft.rfft(clips[3]))) * 0.5 - 1000) <= 2


def test_pyav_audio_fallback_matches_torchaudio(tmp_path, monkeypatch):
    """Where torchaudio cannot decode (no torchcodec / FFmpeg libraries), non-wav audio goes through PyAV: the
    same FFmpeg AAC decoder, so the same samples (up to float32 format-conversion rounding, <= ~2 ulp at
    |x| <= 1, hence 1e-6), every channel, at the file's own rate."""
    from affectgpt.data import media

    path = write_ramp_video(tmp_path / "av.mp4", 24, tone_hz=1000, stereo=True)
    ffmpeg, rate = media._read_other(path)
    assert ffmpeg.shape[0] == 2  # both channels, not a downmix
    clips = load_audio_clips(path, sample_rate=8000)  # a resample, so a wrong source rate would show
    monkeypatch.setattr(media, "_torchaudio_works", lambda: False)  # the lean environment's probe result
    fallback, fallback_rate = media._read_other(path)
    assert fallback_rate == rate == 16000 and fallback.dtype == np.float32 and fallback.shape == ffmpeg.shape
    np.testing.assert_allclose(fallback, ffmpeg, rtol=0, atol=1e-6)
    np.testing.assert_allclose(load_audio_clips(path, sample_rate=8000), clips, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- frames and video probing


def write_video(path: Path, n: int, width: int = 64, height: int = 48, top: int = 40, bottom: int = 200) -> Path:
    """n frames, the top half one grey and the bottom half another (lossless h264)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt, stream.options = width, height, "yuv420p", {"crf": "0"}
        image = np.full((height, width, 3), top, dtype=np.uint8)
        image[height // 2 :] = bottom
        for _ in range(n):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_frames_are_stretched_to_224_without_keeping_aspect(tmp_path):
    frames = load_frames(write_video(tmp_path / "wide.mp4", 3, width=128, height=32))  # 4:1; defaults 8 x 224
    assert frames.shape == (8, 224, 224, 3)
    grey = frames[..., 1].astype(int)
    # a letterboxed resize would leave bars of padding at the top and bottom; a stretch fills every row
    assert np.all(np.abs(grey[:, :100] - 40) <= 3) and np.all(np.abs(grey[:, 124:] - 200) <= 3)


@pytest.mark.parametrize("n", [1, 5])
def test_probe_video_accepts_a_real_mp4(tmp_path, n):
    assert probe_video(write_video(tmp_path / "ok.mp4", n), sample="v") is None  # one frame is enough


def test_probe_video_names_bad_files(tmp_path):
    good = write_video(tmp_path / "good.mp4", 40).read_bytes()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "cut.mp4").write_bytes(good[: len(good) // 2])
    for name in ("empty.mp4", "cut.mp4"):
        with pytest.raises(DataError, match="cannot open video") as info:
            probe_video(tmp_path / name, "v1")  # sample may be positional: probe_video(path, sample)
        assert info.value.path == str(tmp_path / name) and info.value.sample == "v1"
    with pytest.raises(DataError, match="not found"):
        probe_video(tmp_path / "absent.mp4")


def test_torchaudio_probe_reports_an_environment_without_it(monkeypatch, caplog):
    """Without a working torchaudio the probe says so once, with a warning naming the fallback decoders."""
    import sys

    from affectgpt.data import media

    media._torchaudio_works.cache_clear()
    monkeypatch.setitem(sys.modules, "torchaudio", None)  # `import torchaudio` now raises ImportError
    try:
        with caplog.at_level(logging.WARNING, logger="affectgpt.data.media"):
            assert media._torchaudio_works() is False
        assert any("torchaudio.load is unavailable" in r.getMessage() for r in caplog.records)
    finally:
        media._torchaudio_works.cache_clear()  # the next caller probes the real environment again

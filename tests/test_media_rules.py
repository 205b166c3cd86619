"""The official media rules (reference §3.1 and its 2026-12 corrections), each expected value derived by hand
or from the rule as written: audio clip positions, per-clip mean removal, channel handling, cv2 face resize,
and the checks that stop corrupt media (float faces, truncated wavs) passing silently."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile
import torch
import torchaudio.functional as F

from affectgpt.data.media import (
    clip_starts,
    load_audio_clips,
    load_faces,
)
from affectgpt.data.records import DataError

RATE = 16000
CLIP = 32000  # 2 s at 16 kHz


# ---------------------------------------------------------------- audio clip positions


def reference_float_starts(n_samples: int) -> list[int]:
    """The reference's formula as written, in Python floats: int(k * (dur - 2) / 8 * 16000), dur >= 2 s."""
    dur = max(n_samples, CLIP) / RATE
    return [int(k * (dur - 2) / 8 * 16000) for k in range(8)]


def pytorchvideo_starts(n_samples: int) -> list[int]:
    """What the official code computes: pytorchvideo 0.1.5 ConstantClipsPerVideoSampler makes the float
    difference `dur - 2` an exact Fraction, divides it by clips_per_video and multiplies by k; ImageBind
    then takes int(start_sec * 16000)."""
    dur = max(n_samples, CLIP) / RATE
    return [int(Fraction(max(dur - 2, 0)) / 8 * k * 16000) for k in range(8)]


@pytest.mark.parametrize(
    "n_samples, want",
    [
        (32000, [0] * 8),  # exactly 2 s: max start 0
        (16000, [0] * 8),  # 1 s, zero-padded to 2 s: max start 0
        (256000, [28000 * k for k in range(8)]),  # 16 s: step 14 s / 8 = 1.75 s = 28000 samples, last ends at 228000
        (320000, [36000 * k for k in range(8)]),  # 20 s: step 18 s / 8 = 2.25 s = 36000 samples
    ],
)
def test_clip_starts_hand_computed(n_samples, want):
    assert clip_starts(max(n_samples, CLIP), 8, 2.0, RATE) == want
    assert clip_starts(n_samples, 8, 2.0, RATE) == want  # unpadded lengths < 2 s give max start 0 too
    assert reference_float_starts(n_samples) == want  # every float step is exact here: the float formula agrees


def test_clip_starts_of_5_3_seconds():
    # max start 3.3 s, step 3.3 / 8 s = 6600 samples; but the float 84800 / 16000 - 2 is just below 3.3, so
    # its exact Fraction times k * 2000 is just below k * 6600 and truncates to k * 6600 - 1 (k >= 1).
    # The last clip starts at 46199 and ends at 78199: the end of the file (up to 84800) is never used.
    x = 84800 / 16000 - 2
    assert Fraction(x) < Fraction(33, 10)
    assert clip_starts(84800, 8, 2.0, RATE) == [0, 6599, 13199, 19799, 26399, 32999, 39599, 46199]
    # The reference's float formula rounds k * x / 8 * 16000 back up to the whole k * 6600 for k = 1, 2, 4, 5
    # (ties: the exact start is a whole sample), one sample later than the official Fraction arithmetic.
    assert reference_float_starts(84800) == [0, 6600, 13200, 19799, 26400, 33000, 39599, 46199]


def test_clip_starts_generic_count_length_rate():
    # 5 s at 8 kHz, 4 clips of 1 s: max start 4 s, step 1 s = 8000 samples
    assert clip_starts(40000, 4, 1.0, 8000) == [0, 8000, 16000, 24000]
    # 1.5 s at 16 kHz, 3 clips of 0.5 s: max start 1 s, step 1/3 s = 5333.33 samples, truncated
    assert clip_starts(24000, 3, 0.5, 16000) == [0, 5333, 10666]
    assert clip_starts(24000, 1, 0.5, 16000) == [0]


def test_clip_starts_equal_the_official_fraction_rule_and_the_float_formula_off_ties():
    """Over every length from 2 s to 4.5 s and a spread up to 60 s: equal to the pytorchvideo form; equal to
    the reference's float formula wherever the exact start k * (n - 32000) / 8 is not a whole sample. At
    such ties the float formula may round up across the integer while the exact Fraction of the (slightly
    low or high) float difference does not, so the two differ there by one sample (62.5 us)."""
    lengths = list(range(CLIP, CLIP + 4000)) + list(range(CLIP + 4000, 60 * RATE, 2999))
    differ = 0
    for n in lengths:
        got = clip_starts(n, 8, 2.0, RATE)
        assert got == pytorchvideo_starts(n), n
        floats = reference_float_starts(n)
        for k in range(8):
            if (k * (n - CLIP)) % 8:
                assert got[k] == floats[k], (n, k)
            else:
                assert abs(got[k] - floats[k]) <= 1, (n, k)
                differ += got[k] != floats[k]
    assert differ > 0  # the tie case is real (see the next test), so the test above can tell the two apart


def test_clip_start_at_a_tie_follows_the_exact_fraction():
    # 32686 samples: k = 4 starts exactly at 4 * 686 / 8 = 343 samples in exact arithmetic, but the float
    # 32686 / 16000 - 2 is below 686 / 16000, so the official Fraction form truncates to 342; the float
    # formula rounds 4 * x / 8 * 16000 to exactly 343.0.
    x = 32686 / 16000 - 2
    assert Fraction(x) < Fraction(686, 16000)
    assert int(4 * x / 8 * 16000) == 343
    assert clip_starts(32686, 8, 2.0, RATE)[4] == 342


# ---------------------------------------------------------------- clips and per-clip mean removal


def write_wav(path: Path, data: np.ndarray, rate: int = RATE, subtype: str = "FLOAT") -> Path:
    soundfile.write(path, data, rate, subtype=subtype)
    return path


def zero_mean(clip: np.ndarray) -> np.ndarray:
    """The official transform, `clip -= clip.mean()`, computed in float64 by hand."""
    clip = clip.astype(np.float64)
    return clip - clip.mean()


# float32 against a float64 hand computation: the clip mean is a float32 reduction of 32000 samples |x| <= 1
# (rounding error <= ~log2(32000) * 6e-8 * 1 ~ 1e-6 worst case) plus one float32 rounding of each difference
# (<= 6e-8). A clip cut one sample off, or a mean removed over the wrong span, differs by >= 1e-2 here.
ATOL = 2e-6


def test_clips_are_cut_at_the_official_starts_and_each_loses_its_own_mean(tmp_path):
    rng = np.random.default_rng(0)
    noise = rng.uniform(-0.5, 0.5, 84800).astype(np.float32) + np.linspace(0, 0.4, 84800, dtype=np.float32)
    clips = load_audio_clips(write_wav(tmp_path / "n.wav", noise))  # 5.3 s, with a drifting DC level
    assert clips.shape == (8, CLIP) and clips.dtype == np.float32
    for clip, start in zip(clips, [0, 6599, 13199, 19799, 26399, 32999, 39599, 46199]):
        np.testing.assert_allclose(clip, zero_mean(noise[start : start + CLIP]), rtol=0, atol=ATOL)


def test_dc_offset_and_sine_give_zero_mean_clips(tmp_path):
    t = np.arange(5 * RATE) / RATE  # 5 s: max start 3 s, step 0.375 s = 6000 samples
    wave = (0.3 + 0.2 * t + 0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # clip means rise 0.5 -> 0.92
    clips = load_audio_clips(write_wav(tmp_path / "dc.wav", wave))
    assert np.all(np.abs(clips.astype(np.float64).mean(axis=1)) < ATOL)
    for k, clip in enumerate(clips):
        raw = wave[6000 * k : 6000 * k + CLIP]
        assert raw.mean() > 0.45  # the offset was really there
        np.testing.assert_allclose(clip, zero_mean(raw), rtol=0, atol=ATOL)


def test_short_audio_is_padded_before_the_mean_is_removed(tmp_path):
    ramp = np.linspace(0.1, 0.5, RATE, dtype=np.float32)  # 1 s: padded with 16000 zeros, 8 identical clips
    clips = load_audio_clips(write_wav(tmp_path / "short.wav", ramp))
    want = zero_mean(np.concatenate([ramp, np.zeros(RATE, dtype=np.float32)]))  # mean 0.15 over 2 s, not 0.3
    for clip in clips:
        np.testing.assert_allclose(clip, want, rtol=0, atol=ATOL)


def test_generic_clip_count_length_and_rate(tmp_path):
    noise = np.random.default_rng(1).uniform(-1, 1, 40000).astype(np.float32)  # 5 s at 8 kHz
    path = write_wav(tmp_path / "g.wav", noise, rate=8000)
    clips = load_audio_clips(path, n_clips=4, clip_seconds=1.0, sample_rate=8000)
    assert clips.shape == (4, 8000)
    for clip, start in zip(clips, [0, 8000, 16000, 24000]):
        np.testing.assert_allclose(clip, zero_mean(noise[start : start + 8000]), rtol=0, atol=ATOL)


# ---------------------------------------------------------------- channels


def test_stereo_is_the_mean_of_its_channels(tmp_path, caplog):
    rng = np.random.default_rng(2)
    stereo = rng.uniform(-0.5, 0.5, (3 * RATE, 2)).astype(np.float32) + np.float32([0, 0.25])  # DC on the right
    with caplog.at_level(logging.WARNING, logger="affectgpt.data.media"):
        clips = load_audio_clips(write_wav(tmp_path / "st.wav", stereo), n_clips=2)
        load_audio_clips(write_wav(tmp_path / "mono.wav", stereo[:, 0]), n_clips=2)
    assert not caplog.records  # mono and stereo are the ordinary cases: nothing to warn about
    mono = stereo.astype(np.float64).mean(axis=1)  # 3 s: max start 1 s, step 0.5 s = 8000 samples
    for clip, start in zip(clips, [0, 8000]):
        np.testing.assert_allclose(clip, zero_mean(mono[start : start + CLIP]), rtol=0, atol=ATOL)


def test_stereo_at_44k_is_resampled_per_channel_then_averaged(tmp_path):
    rng = np.random.default_rng(3)
    stereo = rng.uniform(-0.5, 0.5, (2, 3 * 44100)).astype(np.float32)
    clips = load_audio_clips(write_wav(tmp_path / "st44.wav", stereo.T, rate=44100), n_clips=2)
    # the official loader: torchaudio resample of the [2, T] waveform, then the channel mean
    mono = F.resample(torch.from_numpy(stereo), 44100, RATE).numpy().astype(np.float64).mean(axis=0)
    assert mono.shape == (3 * RATE,)
    for clip, start in zip(clips, [0, 8000]):
        np.testing.assert_allclose(clip, zero_mean(mono[start : start + CLIP]), rtol=0, atol=ATOL)


def test_three_channels_give_channel_0_and_warn_once(tmp_path, caplog):
    rng = np.random.default_rng(4)
    chans = rng.uniform(-0.5, 0.5, (3, 3 * RATE)).astype(np.float32)
    chans[1] += 0.6  # a DC level on channel 1 only
    path = write_wav(tmp_path / "three.wav", chans.T)
    with caplog.at_level(logging.WARNING, logger="affectgpt.data.media"):
        clips = load_audio_clips(path, n_clips=2)
        again = load_audio_clips(path, n_clips=2)
    np.testing.assert_array_equal(again, clips)
    # Channel 0 of each clip, minus the clip's mean over all its channels (`waveform.mean()` of the [3, 32000]
    # clip); averaging the channels instead would mix channels 1 and 2 into the clip.
    for clip, start in zip(clips, [0, 8000]):
        part = chans[:, start : start + CLIP].astype(np.float64)
        np.testing.assert_allclose(clip, part[0] - part.mean(), rtol=0, atol=ATOL)
    warnings = [r for r in caplog.records if "3 channels" in r.getMessage()]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()


# ---------------------------------------------------------------- truncated and odd wav files


def test_truncated_wav_is_reported(tmp_path):
    path = write_wav(tmp_path / "cut.wav", np.zeros(RATE, dtype=np.float32), subtype="PCM_16")  # 44-byte header
    data = path.read_bytes()
    assert len(data) == 44 + 2 * RATE
    path.write_bytes(data[: 44 + RATE])  # half the 16000 two-byte samples
    with pytest.raises(DataError, match="audio truncated: header says 16000 samples, file holds 8000") as info:
        load_audio_clips(path, sample="s9")
    assert info.value.sample == "s9" and info.value.path == str(path)


def test_truncated_float_wav_is_reported(tmp_path):
    path = write_wav(tmp_path / "cutf.wav", np.zeros(RATE, dtype=np.float32))  # WAVE_FORMAT_IEEE_FLOAT, 4 bytes
    data = path.read_bytes()
    start = data.index(b"data") + 8
    assert int.from_bytes(data[data.index(b"fmt ") + 8 :][:2], "little") == 3 and len(data) - start == 4 * RATE
    path.write_bytes(data[: start + 4 * 1234])
    with pytest.raises(DataError, match="audio truncated: header says 16000 samples, file holds 1234"):
        load_audio_clips(path)


@pytest.mark.parametrize("container, tag", [("WAV", 1), ("WAVEX", 0xFFFE)])  # plain PCM and WAVE_FORMAT_EXTENSIBLE
def test_truncated_stereo_24bit_wav_counts_frames(tmp_path, container, tag):
    path = tmp_path / "cut24.wav"
    soundfile.write(path, np.zeros((1000, 2), dtype=np.float32), RATE, subtype="PCM_24", format=container)
    data = path.read_bytes()
    assert int.from_bytes(data[data.index(b"fmt ") + 8 :][:2], "little") == tag
    start = data.index(b"data") + 8
    assert len(data) - start == 6000  # 1000 frames of 2 channels x 3 bytes
    path.write_bytes(data[: start + 6 * 700 + 4])  # 700 whole frames and part of one more
    with pytest.raises(DataError, match="header says 1000 samples, file holds 700"):
        load_audio_clips(path)


def riff_wav(chunks: list[tuple[bytes, bytes]], declared: dict[bytes, int] | None = None) -> bytes:
    """A RIFF/WAVE file built by hand: each chunk padded to even size; `declared` overrides a chunk's size field."""
    body = b"WAVE"
    for name, payload in chunks:
        size = (declared or {}).get(name, len(payload))
        body += name + size.to_bytes(4, "little") + payload + b"\0" * (len(payload) % 2)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


def fmt_chunk(tag: int = 1, channels: int = 1, rate: int = RATE, bits: int = 16) -> bytes:
    align = channels * bits // 8
    fields = [(tag, 2), (channels, 2), (rate, 4), (rate * align, 4), (align, 2), (bits, 2)]
    return b"".join(value.to_bytes(size, "little") for value, size in fields)


def test_old_14_byte_fmt_chunk(tmp_path):
    from affectgpt.data.media import _check_wav_complete

    path = tmp_path / "old.wav"  # WAVEFORMAT without the bits-per-sample field
    path.write_bytes(riff_wav([(b"fmt ", fmt_chunk()[:14]), (b"data", b"\0" * 100)], {b"data": 400}))
    with pytest.raises(DataError, match="header says 200 samples, file holds 50"):
        _check_wav_complete(path, None)


def test_chunks_before_data_are_walked_with_their_padding(tmp_path):
    pcm = (np.arange(RATE, dtype=np.int16) % 200 - 100).astype("<i2").tobytes()
    path = tmp_path / "list.wav"
    path.write_bytes(riff_wav([(b"fmt ", fmt_chunk()), (b"LIST", b"odd"), (b"data", pcm)]))  # odd-sized LIST chunk
    clips = load_audio_clips(path, n_clips=1)
    want = np.concatenate([np.frombuffer(pcm, "<i2") / 32768.0, np.zeros(RATE)])
    np.testing.assert_allclose(clips[0], want - want.mean(), rtol=0, atol=ATOL)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="header says 16000 samples, file holds 15950"):
        load_audio_clips(path, n_clips=1)


def test_files_the_header_check_leaves_to_the_decoder(tmp_path):
    from affectgpt.data.media import _check_wav_complete

    payload = b"\0" * 100
    cases = {
        "streamed.wav": riff_wav([(b"fmt ", fmt_chunk()), (b"data", payload)], {b"data": 0xFFFFFFFF}),  # size unknown
        "adpcm.wav": riff_wav([(b"fmt ", fmt_chunk(tag=2)), (b"data", payload)], {b"data": 400}),  # blocks != frames
        "rf64.wav": b"RF64" + riff_wav([(b"fmt ", fmt_chunk()), (b"data", payload)], {b"data": 400})[4:],
        "avi.wav": riff_wav([(b"fmt ", fmt_chunk()), (b"data", payload)], {b"data": 400}).replace(b"WAVE", b"AVI ", 1),
        "nofmt.wav": riff_wav([(b"data", payload)], {b"data": 400}),
        "tiny.wav": b"RIFF\0\0",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert _check_wav_complete(tmp_path / name, None) is None, name
    (tmp_path / "cut.wav").write_bytes(riff_wav([(b"fmt ", fmt_chunk()), (b"data", payload)], {b"data": 400}))
    with pytest.raises(DataError, match="header says 200 samples, file holds 50"):
        _check_wav_complete(tmp_path / "cut.wav", None)
    (tmp_path / "bare.wav").write_bytes(riff_wav([(b"fmt ", fmt_chunk()), (b"data", b"")], {b"data": 400}))
    with pytest.raises(DataError, match="header says 200 samples, file holds 0"):  # cut right after the chunk header
        _check_wav_complete(tmp_path / "bare.wav", None)


# ---------------------------------------------------------------- face crops: cv2 resize, dtype and range


@pytest.mark.parametrize("height, width", [(64, 64), (96, 128), (112, 112), (224, 224), (300, 300)])
def test_faces_equal_cv2_resize_byte_for_byte(tmp_path, height, width):
    faces = np.random.default_rng(height + width).integers(0, 256, (11, height, width, 3), dtype=np.uint8)
    np.save(tmp_path / "f.npy", faces)
    got = load_faces(tmp_path / "f.npy")
    picked = [0, 1, 2, 4, 5, 6, 8, 9]  # floor(arange(0, 11, 11 / 8)) = floor(0, 1.375, 2.75, ..., 9.625)
    want = np.stack([cv2.resize(faces[i], (224, 224)) for i in picked])  # the official call, INTER_LINEAR
    assert got.shape == (8, 224, 224, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    if (height, width) == (224, 224):
        np.testing.assert_array_equal(got, faces[picked])  # already 224 x 224: unchanged
    np.testing.assert_array_equal(load_faces(tmp_path / "f.npy", channel_order="bgr_to_rgb"), want[..., ::-1])


def test_non_square_faces_are_stretched_not_padded(tmp_path):
    faces = np.zeros((1, 40, 160, 3), dtype=np.uint8)
    faces[:, :, 80:] = 250  # right half bright; a wide crop, 4:1
    np.save(tmp_path / "wide.npy", faces)
    got = load_faces(tmp_path / "wide.npy", n=1)[0, ..., 0]
    assert got.shape == (224, 224)
    assert np.all(got[:, :110] == 0) and np.all(got[:, 114:] == 250)  # the edge stays mid-image, every row filled


def save_faces(path: Path, faces: np.ndarray) -> Path:
    np.save(path, faces)
    return path


def test_float_faces_just_above_1_are_pixel_values(tmp_path):
    got = load_faces(save_faces(tmp_path / "dim.npy", np.full((1, 4, 4, 3), 1.5)), n=1, size=4)
    assert np.all(got == 2)  # max 1.5 > 1.0: taken as (very dark) 0..255 pixels, rint(1.5) = 2


def test_float_faces_in_0_255_are_rounded_with_one_warning(tmp_path, caplog):
    faces = np.full((2, 8, 8, 3), 100.4)
    faces[1] = 255.0  # the top of the range is allowed
    faces[0, 0, 0] = [0.0, 1.5, 100.6]
    path = save_faces(tmp_path / "float.npy", faces)
    with caplog.at_level(logging.WARNING, logger="affectgpt.data.media"):
        got = load_faces(path, n=2, size=8)
        load_faces(path, n=2, size=8)
    assert got.dtype == np.uint8
    assert got[0, 0, 0].tolist() == [0, 2, 101] and got[0, 1, 1, 0] == 100 and np.all(got[1] == 255)
    warnings = [r for r in caplog.records if "rounded to uint8" in r.getMessage()]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()


@pytest.mark.parametrize(
    "fill, reason",
    [
        (0.7, "float face crops in [0, 1]; expected uint8 0..255"),
        (1.0, "float face crops in [0, 1]; expected uint8 0..255"),  # max exactly 1.0: still a normalised image
        (255.5, "outside 0..255"),
        (-0.5, "outside 0..255"),
        (np.nan, "NaN or infinite"),
        (np.inf, "NaN or infinite"),
    ],
)
def test_bad_float_faces(tmp_path, fill, reason):
    faces = np.full((12, 8, 8, 3), 0.5, dtype=np.float32)
    faces[5, 2, 2, 1] = fill  # face 5 is not among the 8 picked from 12 (0, 1, 3, 4, 6, 7, 9, 10): whole file checked
    path = save_faces(tmp_path / "bad.npy", faces)
    with pytest.raises(DataError) as info:
        load_faces(path, sample="s7")
    assert reason in str(info.value) and str(path) in str(info.value) and info.value.sample == "s7"


def test_integer_faces_in_range_are_exact_and_other_dtypes_are_refused(tmp_path):
    faces = np.arange(4 * 8 * 8 * 3, dtype=np.int16).reshape(4, 8, 8, 3) % 256
    got = load_faces(save_faces(tmp_path / "i16.npy", faces), n=4, size=8)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, faces.astype(np.uint8))
    with pytest.raises(DataError, match="outside 0..255"):
        load_faces(save_faces(tmp_path / "big.npy", faces * 2), n=4, size=8)
    with pytest.raises(DataError, match="dtype bool; expected uint8 0..255"):
        load_faces(save_faces(tmp_path / "bool.npy", faces > 100), n=4, size=8)

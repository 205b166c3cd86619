"""Mode-aware corrupt media (issue 17.7): a file the mode does not decode (the mp4 in the face modes) is probed,
so an empty, truncated or video-less one is skipped and counted like a missing file, never passed silently."""

import copy
import shutil

import av
import numpy as np
import pytest

from affectgpt.cache import build_cache
from affectgpt.config import Config
from affectgpt.data import synthetic
from affectgpt.data.dataset import AffectDataset
from affectgpt.data.feature_cache import FeatureCache, cache_key
from affectgpt.data.modes import get_mode
from affectgpt.data.probe import probe_audio, probe_faces, probe_unused
from affectgpt.data.records import DataError, SkipLog
from affectgpt.data.sources import split_records
from affectgpt.model.tokenizer import load_tokenizer


def _audio_only_mp4(path, seconds: float = 1.0) -> None:
    """A real mp4 with an AAC track and no video stream."""
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=16000)
        samples = np.zeros((1, int(16000 * seconds)), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """(cfg, records, {name: corruption}) of an 8-sample dataset whose first three mp4s are broken."""
    base = tmp_path_factory.mktemp("probe")
    cfg = Config()  # the default mode, multiface_audio_face_text: faces + audio, the mp4 is never decoded
    cfg.data.root = str(synthetic.generate(base / "data", n=8, seed=2, unibench=False))
    cfg.data.val_fraction = 0.3
    cfg.data.on_error = "skip"
    records = split_records(cfg.data, "all")
    assert "frames" not in get_mode(cfg.model.face_or_frame).streams
    broken = {}
    a, b, c = records[:3]
    data = a.video.read_bytes()
    a.video.write_bytes(data[: len(data) // 2])
    broken[a.name] = "truncated"
    b.video.write_bytes(b"")
    broken[b.name] = "empty"
    _audio_only_mp4(c.video)
    broken[c.name] = "no video stream"
    return cfg, records, broken


def test_the_probe_refuses_each_broken_mp4_and_passes_the_good_ones(broken):
    cfg, records, bad = broken
    for record in records:
        if record.name in bad:
            with pytest.raises(DataError, match=r"cannot open video|zero frames") as err:
                probe_unused(record, ("faces", "audio"), cfg.model.face_or_frame)
            assert err.value.sample == record.name and err.value.path == str(record.video), bad[record.name]
            assert "does not decode" in err.value.reason
        else:
            probe_unused(record, ("faces", "audio"), cfg.model.face_or_frame)
    # a mode that decodes the video does not probe it (its decoder reports it)
    probe_unused(records[0], ("faces", "audio", "frames"), "multiface_audio_face_frame_text")


def test_on_the_fly_reading_skips_and_counts_the_broken_mp4s(broken):
    cfg, records, bad = broken
    skips = SkipLog()
    dataset = AffectDataset(records, cfg.data, cfg.model, load_tokenizer(cfg.model), skips=skips)
    items = [dataset[i] for i in range(len(records))]
    assert [r.name for r, it in zip(records, items) if it is None] == [r.name for r in records if r.name in bad]
    assert skips.total == len(bad) == 3
    assert all(it["faces"].shape[0] == cfg.data.n_frames for it in items if it is not None)


def test_the_cache_build_records_the_broken_mp4s_as_failed(broken, tmp_path):
    cfg, records, bad = broken
    cfg = copy.deepcopy(cfg)
    cfg.data.feature_cache = str(tmp_path / "cache")
    report = build_cache(cfg, records, progress=False)
    assert (report.failed, report.computed) == (3, len(records) - 3)
    cache = FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data)
    for record in records:
        key = cache_key(record)
        if record.name in bad:
            assert key not in cache
            assert "cannot open video" in cache.failed[key] or "zero frames" in cache.failed[key]
            with pytest.raises(DataError, match="failed during the cache build"):
                cache.get(key)
        else:
            assert key in cache


def test_audio_and_face_probes_catch_cut_and_empty_files(broken, tmp_path):
    _, records, _ = broken
    good = records[-1]
    probe_audio(good.audio)
    probe_faces(good.face)
    wav = good.audio.read_bytes()
    (tmp_path / "half.wav").write_bytes(wav[: len(wav) // 2])
    with pytest.raises(DataError, match="audio truncated: header says 48000 samples"):
        probe_audio(tmp_path / "half.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(DataError, match="cannot open audio"):
        probe_audio(tmp_path / "empty.wav")
    shutil.copy(good.face, tmp_path / "f.npy")
    np.save(tmp_path / "f.npy", np.zeros((0, 112, 112, 3), np.uint8))
    with pytest.raises(DataError, match=r"shape \(0, 112, 112, 3\)"):
        probe_faces(tmp_path / "f.npy")
    (tmp_path / "g.npy").write_bytes(good.face.read_bytes()[:60])
    with pytest.raises(DataError, match="cannot read face array"):
        probe_faces(tmp_path / "g.npy")

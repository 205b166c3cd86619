"""The feature cache of every input mode: each stores exactly the streams its prompt reads, and reads them back
equal to on-the-fly encoding (affectgpt/data/feature_cache.py with affectgpt/data/modes.py)."""

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from affectgpt.cache import build_cache
from affectgpt.config import Config
from affectgpt.data import synthetic
from affectgpt.data.dataset import BATCH_STREAM_KEYS, AffectDataset
from affectgpt.data.feature_cache import FeatureCache, cache_spec
from affectgpt.data.modes import MODES
from affectgpt.data.sources import split_records
from affectgpt.model.build import build_audio_encoder, build_visual_encoder
from affectgpt.model.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(cfg, train records, tokenizer) of a 12-sample dataset (no cache built: each test builds its own)."""
    base = tmp_path_factory.mktemp("fcm")
    cfg = Config()
    cfg.data.root = str(synthetic.generate(base / "data", n=12, seed=0, unibench=False))
    cfg.data.val_fraction = 0.3
    return cfg, split_records(cfg.data, "train"), load_tokenizer(cfg.model)


def _no_cache(cfg: Config) -> Config:
    other = copy.deepcopy(cfg)
    other.data.feature_cache = ""
    return other


def _with_cache(cfg: Config, cache: Path) -> Config:
    other = copy.deepcopy(cfg)
    other.data.feature_cache = str(cache)
    return other


# ---------------------------------------------------------------------------------------------- one cache per mode
AUDIO, FACES, FRAMES, IMAGE = (
    {"audio": "audio_feats"},
    {"faces": "face_feats"},
    {"frames": "frame_feats"},
    {"image": "image_feats"},
)
# face_or_frame -> the streams its cache holds: exactly what the mode's prompt reads (official mode definitions)
MODE_STREAMS = {
    "faceframe": {**AUDIO, **FRAMES, **FACES},
    "face": {**AUDIO, **FACES},
    "frame": {**AUDIO, **FRAMES},
    "audioonly": AUDIO,
    "textonly": {},
    "faceonly": FACES,
    "frameonly": FRAMES,
    "image": IMAGE,
    "audio_text": AUDIO,
    "face_text": FACES,
    "frame_text": FRAMES,
    "multiface_text": {**FACES, **AUDIO},
    "multiface_audio_face_text": {**FACES, **AUDIO},
    "multiframe_audio_frame_text": {**FRAMES, **AUDIO},
    "multiface_audio_face_frame_text": {**FACES, **FRAMES, **AUDIO},
}


def test_every_mode_fingerprints_exactly_its_streams(setup):
    cfg = copy.deepcopy(setup[0])
    assert set(MODE_STREAMS) == set(MODES)
    for name, streams in MODE_STREAMS.items():
        cfg.model.face_or_frame = name
        assert cache_spec(cfg.model, cfg.data)["streams"] == streams, name


@pytest.mark.parametrize(
    "name", ["faceframe", "face", "frame", "audioonly", "textonly", "faceonly", "frameonly", "image"]
)
def test_each_stream_set_is_cached_exactly_and_reads_back(setup, tmp_path, name):
    """One mode per distinct stream set: the shards hold exactly its features, and they equal on-the-fly encoding."""
    cfg, records, tok = setup
    cfg = _with_cache(cfg, tmp_path / "cache")
    cfg.model.face_or_frame = name
    with_images = []
    for record in records[:3]:
        path = tmp_path / f"{record.name}.png"
        Image.fromarray(np.ascontiguousarray(np.load(record.face)[0])).save(path)
        with_images.append(dataclasses.replace(record, image=path))
    report = build_cache(cfg, with_images, shard_size=2, batch_size=2, progress=False)
    cache = FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data)
    expected = MODE_STREAMS[name]
    assert cache.streams == expected
    shards = sorted((tmp_path / "cache" / "shards").iterdir())
    if not expected:  # textonly reads no media: nothing is encoded or stored
        assert (report.requested, report.computed, len(cache), shards) == (3, 0, 0, [])
    else:
        assert (report.computed, len(cache), len(shards)) == (3, 3, 2)
        for shard in shards:
            with safe_open(str(shard), framework="pt") as handle:
                assert set(handle.keys()) == set(expected.values())
    cached = AffectDataset(with_images, cfg.data, cfg.model, tok)
    live = AffectDataset(with_images, _no_cache(cfg).data, cfg.model, tok)
    visual, audio = build_visual_encoder(cfg.model), build_audio_encoder(cfg.model)
    for i in range(len(with_images)):
        a, b = cached[i], live[i]
        assert {k for k in BATCH_STREAM_KEYS if k in a} == set(expected.values()) and a["input_ids"] == b["input_ids"]
        assert {k for k in BATCH_STREAM_KEYS if k in b} == set(expected)
        for stream, feat in expected.items():
            with torch.no_grad():
                want = (audio if stream == "audio" else visual)(torch.from_numpy(b[stream])[None])[0]
            # encoded in a batch of 2 vs alone: fp32 reductions differ by ~1e-7 at these magnitudes
            assert a[feat].shape == want.shape and torch.allclose(a[feat], want, atol=1e-6), (name, feat)

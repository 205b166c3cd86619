"""Feature cache faults (issue 17.2): the settings fingerprint lives in every shard, so losing meta.json
can never make features of other settings reusable."""

import copy
import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load, save

from affectgpt.cache import build_cache
from affectgpt.config import Config
from affectgpt.data import synthetic
from affectgpt.data.feature_cache import FeatureCache, cache_key
from affectgpt.data.records import DataError
from affectgpt.data.sources import split_records


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(cfg, records): a cache of an 8-sample dataset, 2 samples per shard."""
    base = tmp_path_factory.mktemp("fcf")
    cfg = Config()
    cfg.data.root = str(synthetic.generate(base / "data", n=8, seed=1, unibench=False))
    cfg.data.feature_cache = str(base / "cache")
    cfg.data.val_fraction = 0.3
    records = split_records(cfg.data, "all")
    report = build_cache(cfg, records, shard_size=2, batch_size=2, progress=False)
    assert report.computed == len(records) >= 6  # "all": train + val
    return cfg, records


def _copy(cfg: Config, folder: Path) -> Config:
    import shutil

    other = copy.deepcopy(cfg)
    shutil.copytree(cfg.data.feature_cache, folder)
    other.data.feature_cache = str(folder)
    return other


def test_lost_meta_json_and_changed_setting_recomputes_every_stale_shard(built, tmp_path):
    cfg, records = built
    changed = _copy(cfg, tmp_path / "cache")
    (tmp_path / "cache" / "meta.json").unlink()
    changed.data.face_channel_order = "bgr_to_rgb"
    n_shards = len(FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data).shards)
    report = build_cache(changed, records, progress=False)
    # every old shard is refused by its own fingerprint: nothing stale is reused
    assert (report.dropped_shards, report.reused, report.computed) == (n_shards, 0, len(records))
    fresh = copy.deepcopy(changed)
    fresh.data.feature_cache = str(tmp_path / "fresh")
    build_cache(fresh, records, progress=False)
    got = FeatureCache.open(changed.data.feature_cache, changed.model, changed.data)
    want = FeatureCache.open(fresh.data.feature_cache, fresh.model, fresh.data)
    old = FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data)
    for record in records:
        a, b, c = got.features(record), want.features(record), old.features(record)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not torch.equal(a["face_feats"], c["face_feats"])  # the setting really changes the numbers


def test_lost_meta_json_with_the_same_settings_reuses_everything(built, tmp_path):
    cfg, records = built
    same = _copy(cfg, tmp_path / "cache")
    (tmp_path / "cache" / "meta.json").unlink()
    report = build_cache(same, records, progress=False)
    assert (report.dropped_shards, report.reused, report.computed) == (0, len(records), 0)


def test_a_shard_without_a_fingerprint_is_never_read(built, tmp_path):
    cfg, records = built
    other = _copy(cfg, tmp_path / "cache")
    index_path = tmp_path / "cache" / "index.json"
    index = json.loads(index_path.read_text())
    name = sorted(index["shards"])[0]
    shard = tmp_path / "cache" / "shards" / name
    data = save(load(shard.read_bytes()))  # the same tensors, no metadata (e.g. written by another tool)
    shard.write_bytes(data)
    index["shards"][name].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    index_path.write_text(json.dumps(index))  # sizes and hashes match: only the fingerprint can tell
    opened = FeatureCache.open(other.data.feature_cache, other.model, other.data)
    key = index["shards"][name]["keys"][0]
    with pytest.raises(DataError, match="no settings fingerprint"):
        opened.get(key)
    report = build_cache(other, records, progress=False)
    assert (report.dropped_shards, report.computed) == (1, len(index["shards"][name]["keys"]))
    assert key in FeatureCache.open(other.data.feature_cache, other.model, other.data)
    assert cache_key(records[0]) in opened


def _truth(cfg: Config, records) -> dict:
    cache = FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data)
    return {cache_key(r): cache.features(r) for r in records}


def test_truncated_index_json_is_reported_and_its_samples_rebuilt(built, tmp_path, caplog):
    """Issue 17.5: a torn index.json used to crash every later start with a JSON decode error."""
    cfg, records = built
    other = _copy(cfg, tmp_path / "cache")
    index_path = tmp_path / "cache" / "index.json"
    index_path.write_bytes(index_path.read_bytes()[: index_path.stat().st_size // 2])
    with caplog.at_level("WARNING"):
        report = build_cache(other, records, shard_size=2, batch_size=2, progress=False)  # the fixture's batching
    assert sum("index.json is unreadable" in r.getMessage() for r in caplog.records) == 2  # build + reader open
    assert (report.reused, report.computed) == (0, len(records))
    json.loads(index_path.read_text())  # rewritten whole by the merge
    truth, got = _truth(cfg, records), _truth(other, records)
    assert all(torch.equal(got[k][f], truth[k][f]) for k in truth for f in truth[k])


def test_deleted_shards_folder_is_reported_and_rebuilt(built, tmp_path, caplog):
    import shutil

    cfg, records = built
    other = _copy(cfg, tmp_path / "cache")
    n_shards = len(FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data).shards)
    shutil.rmtree(tmp_path / "cache" / "shards")
    with pytest.raises(DataError, match="file is missing"):
        FeatureCache.open(other.data.feature_cache, other.model, other.data).features(records[0])
    with caplog.at_level("WARNING"):
        report = build_cache(other, records, shard_size=2, batch_size=2, progress=False)
    assert sum("file is missing" in r.getMessage() for r in caplog.records) == n_shards
    assert (report.dropped_shards, report.reused, report.computed) == (n_shards, 0, len(records))
    truth, got = _truth(cfg, records), _truth(other, records)
    assert all(torch.equal(got[k][f], truth[k][f]) for k in truth for f in truth[k])

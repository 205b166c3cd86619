"""Feature cache: cached == on-the-fly features, same training trajectory, fingerprint refusal,
corrupt/truncated shards, media changes, two ranks, and resume after a killed build."""

import copy
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from affectgpt.cache import build_cache
from affectgpt.config import Config
from affectgpt.data import synthetic
from affectgpt.data.dataset import AffectDataset, Collator
from affectgpt.data.feature_cache import (
    CacheMismatchError,
    FeatureCache,
    cache_key,
)
from affectgpt.data.records import DataError
from affectgpt.data.sources import split_records
from affectgpt.model.build import build_audio_encoder, build_model, build_visual_encoder
from affectgpt.model.tokenizer import load_tokenizer

REPO = Path(__file__).resolve().parents[1]


def _config(root: Path, cache: Path) -> Config:
    cfg = Config()
    cfg.data.root = str(root)
    cfg.data.feature_cache = str(cache)
    cfg.data.val_fraction = 0.3
    return cfg


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(cfg, train records, tokenizer): a built cache of the training split of a 12-sample dataset."""
    base = tmp_path_factory.mktemp("fc")
    root = synthetic.generate(base / "data", n=12, seed=0, unibench=False)
    cfg = _config(root, base / "cache")
    records = split_records(cfg.data, "train")
    report = build_cache(cfg, records, shard_size=3, batch_size=4, progress=False)
    assert (report.requested, report.computed, report.reused, report.failed) == (len(records), len(records), 0, 0)
    return cfg, records, load_tokenizer(cfg.model)


def _with_cache(cfg: Config, cache: Path) -> Config:
    other = copy.deepcopy(cfg)
    other.data.feature_cache = str(cache)
    return other


def _no_cache(cfg: Config) -> Config:
    other = copy.deepcopy(cfg)
    other.data.feature_cache = ""
    return other


def test_cached_features_equal_on_the_fly(setup):
    cfg, records, tok = setup
    cached = AffectDataset(records, cfg.data, cfg.model, tok)
    live = AffectDataset(records, _no_cache(cfg).data, cfg.model, tok)
    visual, audio = build_visual_encoder(cfg.model), build_audio_encoder(cfg.model)
    for i in range(len(records)):
        a, b = cached[i], live[i]
        assert "faces" not in a and "audio" not in a and a["input_ids"] == b["input_ids"]
        with torch.no_grad():
            face, wave = visual(torch.from_numpy(b["faces"])[None])[0], audio(torch.from_numpy(b["audio"])[None])[0]
        assert a["face_feats"].shape == (8, cfg.model.tiny_clip_projection) and a["face_feats"].dtype == torch.float32
        assert torch.allclose(a["face_feats"], face, atol=1e-6) and torch.allclose(a["audio_feats"], wave, atol=1e-6)
    # the collator stacks cached features; DataLoader workers read the cache (pickled, own handles)
    collate = Collator(tok)
    batch = collate([cached[i] for i in range(4)])
    assert batch["face_feats"].shape == (4, 8, cfg.model.tiny_clip_projection) and "faces" not in batch
    loaded = next(iter(DataLoader(cached, batch_size=4, num_workers=2, collate_fn=collate)))
    assert torch.equal(loaded["face_feats"], batch["face_feats"]) and torch.equal(
        loaded["audio_feats"], batch["audio_feats"]
    )
    # a second build reuses everything
    again = build_cache(cfg, records, progress=False)
    assert (again.reused, again.computed) == (len(records), 0)


def _losses(model, batches: list[dict], steps: int) -> list[float]:
    torch.manual_seed(123)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
    out = []
    for step in range(steps):
        loss = model(batches[step % len(batches)])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        out.append(loss.item())
    return out


def test_training_on_cache_matches_on_the_fly(setup):
    cfg, records, tok = setup
    collate = Collator(tok)
    cached = AffectDataset(records, cfg.data, cfg.model, tok, seed=7)
    live = AffectDataset(records, _no_cache(cfg).data, cfg.model, tok, seed=7)
    cached_batches = [collate([cached[i], cached[i + 1]]) for i in (0, 2)]
    live_batches = [collate([live[i], live[i + 1]]) for i in (0, 2)]
    assert "faces" in live_batches[0] and "face_feats" in cached_batches[0]
    torch.manual_seed(0)  # build_model draws the LoRA A init from the global RNG
    on_the_fly, _ = build_model(cfg)
    torch.manual_seed(0)
    from_cache, _ = build_model(cfg, with_encoders=False)
    assert on_the_fly.visual_encoder is not None and from_cache.visual_encoder is None
    expected = _losses(on_the_fly, live_batches, 3)
    got = _losses(from_cache, cached_batches, 3)
    assert len(set(round(x, 4) for x in expected)) > 1  # the weights really moved
    assert got == pytest.approx(expected, abs=1e-5)


def test_changed_settings_are_refused(setup):
    cfg, records, tok = setup
    changed = copy.deepcopy(cfg)
    changed.model.tiny_clip_projection = 16
    with pytest.raises(CacheMismatchError, match=r"clip\.tiny_clip_projection: cache has 32, now 16"):
        FeatureCache.open(cfg.data.feature_cache, changed.model, changed.data)
    with pytest.raises(CacheMismatchError, match="tiny_clip_projection"):
        AffectDataset(records, changed.data, changed.model, tok)
    changed = copy.deepcopy(cfg)
    changed.data.face_channel_order = "bgr_to_rgb"
    with pytest.raises(CacheMismatchError, match=r"preprocessing\.face_channel_order.*Delete that folder"):
        build_cache(changed, records, progress=False)
    changed = copy.deepcopy(cfg)
    changed.model.face_or_frame = "multiframe_audio_frame_text"
    with pytest.raises(CacheMismatchError, match="streams"):
        FeatureCache.open(cfg.data.feature_cache, changed.model, changed.data)


@pytest.mark.parametrize("key", ["code_version", "sampling_rule_version"])
def test_a_cache_from_older_media_or_encoder_rules_is_refused(setup, key, monkeypatch):
    """The fidelity fixes changed the numbers (clip starts, per-clip mean, cv2 faces: sampling rule 2; HuBERT's
    post-norm state: code 2): a cache written under the earlier rules must be refused by name, not reused."""
    from affectgpt.data import cache_settings

    cfg, _, _ = setup
    constant = {"code_version": "CODE_VERSION", "sampling_rule_version": "SAMPLING_RULE_VERSION"}[key]
    current = getattr(cache_settings, constant)
    assert current >= 2
    monkeypatch.setattr(cache_settings, constant, current - 1)  # what the cache on disk would have recorded
    with pytest.raises(CacheMismatchError, match=rf"{key}: cache has {current}, now {current - 1}"):
        FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data)


def test_corrupt_and_truncated_shards_are_recomputed(setup, tmp_path):
    cfg, records, tok = setup
    cfg = copy.deepcopy(cfg)
    shutil.copytree(cfg.data.feature_cache, tmp_path / "cache")
    cfg.data.feature_cache = str(tmp_path / "cache")
    reference = FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data)
    truth = {cache_key(r): reference.features(r) for r in records}
    names = sorted(reference.shards)
    truncated, flipped = names[0], names[1]
    path = tmp_path / "cache" / "shards" / truncated
    path.write_bytes(path.read_bytes()[:-100])
    path = tmp_path / "cache" / "shards" / flipped
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # same size, different content: only the hash can tell
    path.write_bytes(bytes(data))
    # reading: the truncated shard is refused with a clear reason
    opened = FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data)
    victim = opened.shards[truncated]["keys"][0]
    with pytest.raises(DataError, match="truncated"):
        opened.get(victim)
    # rebuilding detects both and recomputes exactly their samples
    n_bad = len(opened.shards[truncated]["keys"]) + len(opened.shards[flipped]["keys"])
    report = build_cache(cfg, records, progress=False)
    assert (report.dropped_shards, report.computed, report.reused) == (2, n_bad, len(records) - n_bad)
    fixed = FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data)
    assert fixed.verify() == {}
    for record in records:
        got = fixed.features(record)
        assert all(torch.equal(got[k], truth[cache_key(record)][k]) for k in got)


def test_changed_media_is_recomputed_and_missing_sample_reported(setup, tmp_path):
    cfg, records, tok = setup
    cfg = copy.deepcopy(cfg)
    shutil.copytree(cfg.data.feature_cache, tmp_path / "cache")
    cfg.data.feature_cache = str(tmp_path / "cache")
    face = records[0].face
    stat = os.stat(face)
    os.utime(face, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        report = build_cache(cfg, records, progress=False)
    finally:
        os.utime(face, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (report.computed, report.reused) == (1, len(records) - 1)
    val = split_records(cfg.data, "val")
    dataset = AffectDataset(val, cfg.data, cfg.model, load_tokenizer(cfg.model))
    with pytest.raises(DataError, match="not in feature cache"):
        dataset.feature_cache.features(val[0])
    assert dataset[0] is None and dataset.skips.total == 1  # skip-and-count policy


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, port: int, cfg: Config, records: list) -> None:
    """One rank of a 2-process group (forked: no re-import), as torchrun / accelerate would run it."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        report = build_cache(cfg, records, rank=rank, world=2, barrier=dist.barrier, shard_size=1, progress=False)
    finally:
        dist.destroy_process_group()
    sys.exit(0 if report.computed == len(records[rank::2]) else 3)


def test_two_processes_write_own_shards_and_merge(setup, tmp_path):
    """Each rank encodes its share into its own shards; rank 0 merges the journals into the index."""
    cfg, records, _ = setup
    cfg = _with_cache(cfg, tmp_path / "cache")
    subset = records[:3]
    context = multiprocessing.get_context("fork")
    port = _free_port()
    procs = [context.Process(target=_rank_main, args=(r, port, cfg, subset)) for r in (0, 1)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=1800)  # safety net
    assert [proc.exitcode for proc in procs] == [0, 0]
    cache = tmp_path / "cache"
    merged = FeatureCache.open(cache, cfg.model, cfg.data)
    assert set(merged.samples) == {cache_key(r) for r in subset}
    assert sorted(name[:6] for name in merged.shards) == ["r00000", "r00000", "r00001"]  # own shards per rank
    assert not list((cache / "journal").iterdir())  # journals folded into index.json
    assert len(json.loads((cache / "index.json").read_text())["shards"]) == 3
    reference = FeatureCache.open(setup[0].data.feature_cache, cfg.model, cfg.data)
    for record in subset:
        got, want = merged.features(record), reference.features(record)  # 1 vs 2 threads: rounding only
        assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)


def _journal_shards(cache: Path) -> list[str]:
    out = []
    for journal in (cache / "journal").glob("*.jsonl"):
        for line in journal.read_text().splitlines():
            try:
                out.append(json.loads(line)["shard"])
            except (json.JSONDecodeError, KeyError):
                pass
    return out


def test_cli_refuses_a_changed_setting_with_the_message_not_a_traceback(setup, tmp_path):
    cfg, _, _ = setup
    config = tmp_path / "cfg.yaml"
    config.write_text(
        f"data:\n  root: {cfg.data.root}\n  feature_cache: {cfg.data.feature_cache}\n  val_fraction: 0.3\n"
    )
    cmd = [
        sys.executable,
        "-m",
        "affectgpt.cache",
        "--config",
        str(config),
        "--split",
        "train",
        "--no-progress",
        "model.tiny_clip_projection=16",
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, env=dict(os.environ, HF_HUB_OFFLINE="1"), capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode != 0
    assert "error: feature cache" in proc.stderr and "clip.tiny_clip_projection: cache has 32, now 16" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_killed_build_resumes_without_recomputing(setup, tmp_path):
    cfg, records, tok = setup
    cache = tmp_path / "cache"
    config = tmp_path / "cfg.yaml"
    config.write_text(f"data:\n  root: {cfg.data.root}\n  feature_cache: {cache}\n  val_fraction: 0.3\n")
    cmd = [
        sys.executable,
        "-m",
        "affectgpt.cache",
        "--config",
        str(config),
        "--split",
        "train",
        "--shard-size",
        "1",
        "--batch-size",
        "1",
        "--no-progress",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(_journal_shards(cache)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the build finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    done = _journal_shards(cache)
    assert 2 <= len(done) < len(records)
    assert json.loads((cache / "index.json").read_text())["shards"] == {}  # progress lives in the journal only
    before = {name: (cache / "shards" / name).read_bytes() for name in done}
    report = build_cache(_with_cache(cfg, cache), records, progress=False)
    assert (report.reused, report.computed) == (len(done), len(records) - len(done))
    resumed = FeatureCache.open(cache, cfg.model, cfg.data)
    assert set(resumed.samples) == {cache_key(r) for r in records}
    for name, data in before.items():  # finished shards kept as they were
        assert name in resumed.shards and (cache / "shards" / name).read_bytes() == data

"""`python -m affectgpt.cache` faults (issue 17.8): a stop signal ends the build at a shard boundary keeping
every encoded sample; a full disk while writing a shard is one line naming the shard, and the index stays
consistent. Real subprocesses and signals; the full disk is a write that fails half way (ENOSPC)."""

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from affectgpt.cache import build_cache, main
from affectgpt.config import Config
from affectgpt.data import synthetic
from affectgpt.data.feature_cache import FeatureCache, cache_key
from affectgpt.data.sources import split_records
from affectgpt.files import sha256_file

REPO = Path(__file__).resolve().parents[1]
LIMIT = 1800  # a safety net for a loaded machine, never a speed target


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """(cfg, records) of a 40-sample dataset (32 in the "all" split): enough that a build outlives the signal."""
    base = tmp_path_factory.mktemp("stop")
    cfg = Config()
    cfg.data.root = str(synthetic.generate(base / "data", n=40, seed=3, unibench=False))
    cfg.data.val_fraction = 0.3
    return cfg, split_records(cfg.data, "all")


def _journal(cache: Path) -> list[dict]:
    out = []
    for journal in sorted((cache / "journal").glob("rank-*.jsonl")):
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "shard" in item:
                out.append(item)
    return out


def _cfg(dataset, cache: Path) -> Config:
    import copy

    cfg = copy.deepcopy(dataset[0])
    cfg.data.feature_cache = str(cache)
    return cfg


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_build_at_a_shard_boundary_and_a_rerun_finishes(dataset, tmp_path, signum):
    cfg, records = dataset
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "affectgpt.cache", "--shard-size", "4", "--batch-size", "1", "--no-progress"]
    cmd += [f"data.root={cfg.data.root}", f"data.feature_cache={cache}", "data.val_fraction=0.3"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + LIMIT
        while not _journal(cache) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the build finished (or died) before the signal: " + proc.stderr.read()[-3000:]
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=LIMIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    tail = f"rc={proc.returncode}\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}"
    assert proc.returncode == 128 + signum, tail
    assert "Traceback" not in err, tail
    lines = [x for x in err.splitlines() if "stopped by" in x]
    assert len(lines) == 1 and lines[0].startswith(f"feature cache: stopped by {signal.Signals(signum).name} "), tail
    computed = int(re.search(r"after (\d+) computed samples \((\d+) shards written", lines[0]).group(1))
    shards = _journal(cache)
    assert int(re.search(r"\((\d+) shards written", lines[0]).group(1)) == len(shards), tail
    # every encoded sample is in a complete, listed shard (the partial one included), and it stopped early
    assert sum(len(s["keys"]) for s in shards) == computed, tail
    assert 1 <= computed < len(records), tail
    for item in shards:
        path = cache / "shards" / item["shard"]
        assert path.stat().st_size == item["bytes"] and sha256_file(path) == item["sha256"]
    assert not [p for p in (cache / "shards").iterdir() if p.suffix != ".safetensors"]  # no temporary leftovers

    report = build_cache(_cfg(dataset, cache), records, shard_size=4, batch_size=4, progress=False)
    assert (report.reused, report.computed, report.failed) == (computed, len(records) - computed, 0)
    done = FeatureCache.open(cache, cfg.model, cfg.data)
    assert done.verify() == {} and len(done) == len(records)
    # a kept sample holds exactly the numbers a fresh build computes (nothing half-written was kept)
    kept = [r for r in records if cache_key(r) in set(shards[0]["keys"])]
    fresh_cfg = _cfg(dataset, tmp_path / "fresh")
    build_cache(fresh_cfg, kept, batch_size=1, progress=False)  # the batch size of the stopped build
    fresh = FeatureCache.open(tmp_path / "fresh", cfg.model, cfg.data)
    for record in kept:
        for name, value in done.features(record).items():
            assert torch.equal(value, fresh.features(record)[name]), (record.name, name)


def test_a_full_disk_while_writing_a_shard_is_one_line_and_the_index_stays_consistent(
    dataset, tmp_path, monkeypatch, capsys
):
    cfg, records = dataset
    cache = tmp_path / "cache"
    real_write = Path.write_bytes
    written = []

    def full_after_two_shards(self: Path, data: bytes) -> int:
        if self.parent.name == "shards" and self.name.startswith(".r"):
            if len(written) == 2:  # the disk fills half way through the 3rd shard
                real_write(self, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
            written.append(self)
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_after_two_shards)
    argv = ["--shard-size", "2", "--batch-size", "2", "--no-progress"]
    argv += [f"data.root={cfg.data.root}", f"data.feature_cache={cache}", "data.val_fraction=0.3"]
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, err
    assert re.match(
        r"error: no space left on /\S* while writing \S+/shards/r00000-[0-9a-f]{16}\.safetensors "
        r"\(traceback in \S+/errors\.log; --debug prints it\)$",
        lines[0],
    )
    assert str(cache) in lines[0] and "Traceback" not in err
    assert len(_journal(cache)) == 2
    assert sorted(p.name for p in (cache / "shards").iterdir()) == sorted(s["shard"] for s in _journal(cache))

    monkeypatch.setattr(Path, "write_bytes", real_write)  # space again: the rerun keeps the 2 shards and finishes
    report = build_cache(_cfg(dataset, cache), records, shard_size=2, batch_size=2, progress=False)
    assert (report.reused, report.computed, report.failed) == (4, len(records) - 4, 0)
    done = FeatureCache.open(cache, cfg.model, cfg.data)
    assert done.verify() == {} and len(done) == len(records)

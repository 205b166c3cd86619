"""Memory and time of the dataset readers and the feature-cache bookkeeping at 20 / 200 / 2,000 records.

  python benchmarks/bench_scaling.py [--sizes 20,200,2000] [--data DIR]

Issue 16 asks that both grow linearly with the number of samples. A 20-sample synthetic MER2025 dataset is
generated once; each size is a copy whose CSV rows are repeated under new names, the media hard-linked (so the
readers see N real files, with no N-fold generation). Measured per size, in this process:
- readers: `split_records(data, "all")` (CSVs, file listings, name and label checks, the train/val split);
- cache: `FeatureCache.open(create=True)` + `write_shard` of every record in 256-sample shards (random features
  of the tiny encoders' shape: encoding cost is per sample by construction and not what is measured), the
  build's up-to-date check (`media_signature` of every record), reopen, `features()` of every record, `merge`.
Time is wall-clock (best of --repeats); memory is the tracemalloc peak of Python allocations (numpy and torch
buffers included). The growth ratio is (cost at 10x) / (cost at 1x): ~10 is linear; the summary flags a ratio
over LINEAR_LIMIT (15 = linear plus per-call noise and fixed costs amortised differently). Summary line last.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from affectgpt.config import Config
from affectgpt.data import synthetic
from affectgpt.data.feature_cache import FeatureCache, cache_key, media_signature
from affectgpt.data.sources import split_records

LINEAR_LIMIT = 15.0
SHARD = 256


def scaled_copy(base: Path, out: Path, repeats: int) -> Path:
    """`base` with every CSV row repeated `repeats` times under new names and every media file hard-linked."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    names = pd.read_csv(base / "track_all_candidates.csv", dtype=str)["name"].tolist()
    new = {n: [f"{n}_r{r:05d}" for r in range(repeats)] for n in names}
    for csv in base.glob("*.csv"):
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
        rows = [dict(row, name=name) for row in table.to_dict("records") for name in new[row["name"]]]
        pd.DataFrame(rows, columns=table.columns).to_csv(out / csv.name, index=False)
    for folder in ("video", "audio"):
        (out / folder).mkdir()
        for path in (base / folder).iterdir():
            for name in new.get(path.stem, []):
                os.link(path, out / folder / f"{name}{path.suffix}")
    for path in (base / "openface_face").rglob("*.npy"):
        for name in new.get(path.stem, []):
            target = out / "openface_face" / name / f"{name}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    for marker in base.iterdir():  # the .complete marker and README: the readers accept the copy as a dataset
        if marker.is_file() and marker.suffix != ".csv":
            shutil.copy(marker, out / marker.name)
    return out


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """(best seconds, tracemalloc peak MB of the last run, result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        tracemalloc.start()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return best, peak, result


def cache_cycle(cfg: Config, records: list, folder: Path) -> int:
    """Create, fill, check, reopen, read and merge a cache of `records`; returns the samples read back."""
    shutil.rmtree(folder, ignore_errors=True)
    cfg.data.feature_cache = str(folder)
    cache = FeatureCache.open(folder, cfg.model, cfg.data, create=True)
    streams = cache.streams
    width = {"face_feats": cfg.model.tiny_encoder_hidden, "audio_feats": cfg.model.tiny_encoder_hidden}
    keys = [cache_key(r) for r in records]
    for start in range(0, len(records), SHARD):
        chunk = records[start : start + SHARD]
        feats = {f: torch.randn(len(chunk), 8, width.get(f, 32)) for f in streams.values()}
        cache.write_shard(0, keys[start : start + SHARD], [media_signature(r, list(streams)) for r in chunk], feats)
    cache.merge()
    reopened = FeatureCache.open(folder, cfg.model, cfg.data)
    stale = [r for r in records if reopened.samples[cache_key(r)].media != media_signature(r, list(streams))]
    assert not stale, f"{len(stale)} records look stale right after the build"
    read = sum(1 for r in records if reopened.features(r))
    reopened.merge()
    return read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,200,2000", help="comma-separated record counts (each 10x the last)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (the best time is kept)")
    parser.add_argument("--data", help="work folder (default: a temporary one, removed afterwards)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="bench_scaling_"))
    try:
        base = synthetic.generate(work / "base", n=20, seed=0, unibench=False)
        cfg = Config()
        cfg.data.root = str(base)
        per_copy = len(split_records(cfg.data, "all"))
        rows = []
        for size in sizes:
            repeats = max(1, round(size / per_copy))
            cfg.data.root = str(scaled_copy(base, work / f"n{size}", repeats))
            t_read, m_read, records = measure(lambda: split_records(cfg.data, "all"), args.repeats)
            t_cache, m_cache, read = measure(
                lambda rs=records, f=work / f"cache{size}": cache_cycle(cfg, rs, f), args.repeats
            )
            assert read == len(records)
            rows.append((len(records), t_read, m_read, t_cache, m_cache))
            print(
                f"{len(records):6d} records: readers {t_read * 1e3:8.1f} ms {m_read:7.2f} MB | "
                f"cache {t_cache * 1e3:8.1f} ms {m_cache:7.2f} MB",
                flush=True,
            )
        worst = 0.0
        for (n0, *a), (n1, *b) in zip(rows, rows[1:]):
            ratios = [y / x for x, y in zip(a, b)]
            worst = max(worst, max(r / (n1 / n0) * 10 for r in ratios))  # normalised to a 10x step
            print(
                f"growth {n0} -> {n1} records (x{n1 / n0:.1f}): readers time x{ratios[0]:.1f} memory x{ratios[1]:.1f}"
                f" | cache time x{ratios[2]:.1f} memory x{ratios[3]:.1f}"
            )
        verdict = "linear" if worst <= LINEAR_LIMIT else "SUPERLINEAR"
        print(
            f"summary: readers and feature cache {verdict}: worst growth x{worst:.1f} per 10x records "
            f"(limit x{LINEAR_LIMIT:.0f}) over {', '.join(str(r[0]) for r in rows)} records"
        )
    finally:
        if not args.data:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

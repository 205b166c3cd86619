"""Build the frozen-encoder feature cache: `python -m affectgpt.cache --config CONFIG [--split S] [key=value ...]`.

Decodes each sample's media once (DataLoader workers in parallel, every sample decoded by exactly
one worker of one rank), runs the frozen CLIP / HuBERT encoders and stores the per-sample vectors
the poolers consume in `data.feature_cache` (see affectgpt.data.feature_cache for the format and
the safety checks). Re-running is cheap: finished shards are kept, only missing, stale (media
changed) or corrupt samples are computed. Under `torchrun` / `accelerate launch` each rank encodes
its own share into its own shards and rank 0 merges the index.

Splits: train / val = the training records and the validation records exactly as training reads
them (affectgpt.data.sources.split_records), test = every MER-UniBench root in data.unibench_roots,
all = their union.

Stopping: SIGTERM or SIGINT (Ctrl-C) during a build finishes the batch being encoded, writes the samples
buffered so far as one last shard, says so in one line and exits with 128 + the signal number (143 / 130);
a rerun continues from there. A second signal stops at once (the finished shards are still kept). Every
other failure is one line naming the file and the cause; `--debug` prints the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from affectgpt.config import Config, load_config
from affectgpt.data.feature_cache import (
    FeatureCache,
    cache_key,
    media_signature,
)
from affectgpt.data.media import load_sample_media
from affectgpt.data.probe import probe_unused
from affectgpt.data.records import DataError, Record, SkipLog, with_streams
from affectgpt.data.sources import SPLITS, split_records
from affectgpt.model.build import build_audio_encoder, build_visual_encoder
from affectgpt.model.device import pick_device
from affectgpt.signals import StopFlag
from affectgpt.user_errors import report

logger = logging.getLogger(__name__)

SHARD_SIZE = 256  # samples per shard: ~15 MB for the official 768/1024-d features
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class BuildStopped(RuntimeError):
    """A stop signal ended the build at a shard boundary (every finished shard is kept)."""

    def __init__(self, signum: int, report: BuildReport):
        self.signum, self.report = signum, report
        left = report.requested - report.reused - report.computed - report.failed
        super().__init__(
            f"feature cache: stopped by {signal.Signals(signum).name} at a shard boundary after {report.computed} "
            f"computed samples ({report.shards_written} shards written and kept); {left} samples are left: "
            "rerun the same command to finish"
        )


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave stop signals to the main process (a Ctrl-C reaches the whole process group)."""
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


class MediaDataset(Dataset):
    """(key, media dict | DataError) per record: decodes only the streams the cache stores."""

    def __init__(self, records: list[Record], data_cfg: Any, streams: list[str], mode: str | None = None):
        self.records, self.data_cfg, self.streams, self.mode = records, data_cfg, streams, mode

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[str, dict[str, np.ndarray] | DataError]:
        record = self.records[index]
        try:
            if self.mode is not None:  # the files this mode does not decode are probed, so corrupt ones are reported
                probe_unused(record, self.streams, self.mode)
            return cache_key(record), load_sample_media(with_streams(record, self.streams), self.data_cfg)
        except DataError as err:
            return cache_key(record), err


@dataclass
class BuildReport:
    requested: int = 0  # distinct samples asked for
    reused: int = 0  # already in the cache and up to date
    computed: int = 0  # encoded by this rank in this run
    failed: int = 0  # media errors in this rank's share (reported by name in the log / index)
    dropped_shards: int = 0  # shards found corrupt or truncated (their samples were recomputed)
    shards_written: int = 0  # shards this rank wrote in this run

    def summary(self) -> str:
        return (
            f"feature cache: {self.requested} samples requested, {self.reused} reused, {self.computed} computed, "
            f"{self.failed} failed, {self.dropped_shards} bad shards dropped"
        )


def _encoders(cfg: Config, streams: dict[str, str], device: torch.device) -> dict[str, torch.nn.Module]:
    """media key -> its frozen encoder: HuBERT for audio, one CLIP shared by faces, frames and images."""
    built: dict[str, torch.nn.Module] = {}
    out = {}
    for media_key in streams:
        kind = "audio" if media_key == "audio" else "visual"
        if kind not in built:
            encoder = build_audio_encoder(cfg.model) if kind == "audio" else build_visual_encoder(cfg.model)
            built[kind] = encoder.to(device)
        out[media_key] = built[kind]
    return out


def build_cache(
    cfg: Config,
    records: list[Record],
    *,
    rank: int = 0,
    world: int = 1,
    barrier: Callable[[], None] | None = None,
    shard_size: int = SHARD_SIZE,
    batch_size: int = 8,
    progress: bool = True,
    stop: Callable[[], int | None] | None = None,
) -> BuildReport:
    """Make `cfg.data.feature_cache` hold up-to-date features for every record (rank `rank` of `world`
    does every world-th missing sample). `barrier` (e.g. accelerator.wait_for_everyone) is required
    when world > 1. `stop()` returning a signal number ends the build at the next shard boundary with
    `BuildStopped` (the CLI passes affectgpt.signals.StopFlag's)."""
    if not cfg.data.feature_cache:
        raise ValueError("data.feature_cache is empty: set it to the folder the cache should live in")
    if world > 1 and barrier is None:
        raise ValueError("build_cache with world > 1 needs a barrier (e.g. accelerator.wait_for_everyone)")
    sync = barrier or (lambda: None)
    report = BuildReport()
    lock = None
    if rank == 0:  # only rank 0 creates, verifies and compacts: no two writers of index.json
        cache = FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data, create=True)
        lock = cache.lock()
    try:
        if rank == 0:
            report.dropped_shards = len(cache.merge())
        sync()
        _build(cfg, records, rank, world, sync, shard_size, batch_size, progress, report, stop)
    finally:
        if lock is not None:
            lock.close()
    logger.info("%s (rank %d)", report.summary(), rank)
    return report


def _build(
    cfg: Config,
    records: list[Record],
    rank: int,
    world: int,
    sync: Callable[[], None],
    shard_size: int,
    batch_size: int,
    progress: bool,
    report: BuildReport,
    stop: Callable[[], int | None] | None,
) -> None:
    cache = FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data)
    streams = cache.streams
    unique = list({cache_key(r): r for r in records}.items())
    report.requested = len(unique)
    if not streams:  # the mode reads no media (textonly): its samples need no features
        logger.info("feature cache: face_or_frame=%s reads no media; nothing to encode", cfg.model.face_or_frame)
        return
    todo: list[tuple[Record, list]] = []
    for key, record in unique:
        signature = media_signature(record, list(streams))
        entry = cache.samples.get(key)
        if entry is None or entry.media != signature:
            todo.append((record, signature))
    report.reused = report.requested - len(todo)
    mine = todo[rank::world]
    if mine:
        _encode(cfg, cache, mine, rank, shard_size, batch_size, progress, report, stop or (lambda: None))
    sync()
    if rank == 0:
        cache.merge()
    sync()


def _encode(
    cfg: Config,
    cache: FeatureCache,
    mine: list[tuple[Record, list]],
    rank: int,
    shard_size: int,
    batch_size: int,
    progress: bool,
    report: BuildReport,
    stop: Callable[[], int | None],
) -> None:
    streams = cache.streams
    device = pick_device()
    encoders = _encoders(cfg, streams, device)
    signatures = {cache_key(r): s for r, s in mine}
    loader = DataLoader(
        MediaDataset([r for r, _ in mine], cfg.data, list(streams), cfg.model.face_or_frame),
        batch_size=batch_size,
        num_workers=cfg.data.num_workers,
        collate_fn=list,
        worker_init_fn=_ignore_stop_signals,
    )
    keys: list[str] = []
    feats: dict[str, list[torch.Tensor]] = {f: [] for f in streams.values()}

    def write(n: int) -> None:
        """Write the first n buffered samples as one shard; keep the rest buffered."""
        rows = {f: torch.cat(v) for f, v in feats.items()}
        head = keys[:n]
        cache.write_shard(rank, head, [signatures[k] for k in head], {f: t[:n] for f, t in rows.items()})
        report.shards_written += 1
        del keys[:n]
        for f, t in rows.items():
            feats[f][:] = [t[n:]] if len(t) > n else []

    with tqdm(total=len(mine), desc=f"feature cache (rank {rank})", disable=not progress, unit="sample") as bar:
        for batch in loader:
            if stop() is not None:
                break
            good = [(k, m) for k, m in batch if not isinstance(m, DataError)]
            for key, err in ((k, m) for k, m in batch if isinstance(m, DataError)):
                logger.warning("feature cache: skipped %s", err)
                cache.write_failure(rank, key, err.reason)
                report.failed += 1
            if good:
                with torch.no_grad():
                    for media_key, feat_key in streams.items():
                        stacked = torch.from_numpy(np.stack([m[media_key] for _, m in good])).to(device)
                        feats[feat_key].append(encoders[media_key](stacked).float().cpu())
                keys.extend(k for k, _ in good)
                report.computed += len(good)
            while len(keys) >= shard_size:
                write(shard_size)
            bar.update(len(batch))
        if keys:  # the last (or, on a stop, the in-progress) shard
            write(len(keys))
    signum = stop()
    if signum is not None:
        raise BuildStopped(signum, report)


def ensure_cache(cfg: Config, records: list[Record], **kwargs: Any) -> FeatureCache:
    """Build what is missing for `records`, then open the cache for reading (training / inference)."""
    build_cache(cfg, records, **kwargs)
    return FeatureCache.open(cfg.data.feature_cache, cfg.model, cfg.data)


def _distributed() -> tuple[int, int, Callable[[], None] | None]:
    """(rank, world, barrier) under torchrun / accelerate launch; (0, 1, None) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), world, dist.barrier


def main(argv: list[str] | None = None) -> BuildReport:
    parser = argparse.ArgumentParser(description="Precompute the frozen-encoder features into data.feature_cache.")
    parser.add_argument("--config", default=None, help="YAML config (defaults + overrides when absent)")
    parser.add_argument("--split", default="all", choices=SPLITS)
    parser.add_argument("--shard-size", type=int, default=SHARD_SIZE, help="samples per shard file")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per encoder call")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--debug", action="store_true", help="print the traceback of a failure, not only its line")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. data.feature_cache=cache/demo")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except BuildStopped as err:
        print(err, file=sys.stderr, flush=True)
        raise SystemExit(128 + err.signum) from None
    except KeyboardInterrupt:  # a second Ctrl-C: the finished shards are kept all the same
        print("feature cache: stopped at once by a second signal; rerun the same command to finish", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as err:  # the user's to fix or to know: one line; the traceback on --debug or in the log
        log = getattr(args, "log_path", None)
        report(err, log if log is not None and log.parent.is_dir() else None, args.debug)
        raise SystemExit(1) from None


def _run(args: argparse.Namespace) -> BuildReport:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = load_config(args.config, args.overrides)
    if cfg.data.feature_cache:  # where `report` keeps the traceback of a failure (once the folder exists)
        args.log_path = Path(cfg.data.feature_cache).expanduser() / "errors.log"
    rank, world, barrier = _distributed()
    skips = SkipLog()
    records = split_records(cfg.data, args.split, skips)
    stop = StopFlag("finishing the current batch; the samples done are written as one last shard")
    stop.install()
    try:
        report = build_cache(
            cfg,
            records,
            rank=rank,
            world=world,
            barrier=barrier,
            shard_size=args.shard_size,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            stop=lambda: stop.signum,
        )
    finally:
        stop.restore()
    if rank == 0:
        print(f"{report.summary()}; dataset reading: {skips.summary()}")
        print(f"cache: {cfg.data.feature_cache}")
    return report


if __name__ == "__main__":
    main()

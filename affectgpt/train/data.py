"""Training/validation records and a resumable, world-size-aware stream of training batches.

The stream is a sequence of passes over the training set; pass p is a permutation seeded by
(seed, p), cut into global batches of batch_size x world_size samples, rank r taking slice r of each
(so one process with batch 4 sees exactly the samples two processes with batch 2 see together).
Epoch e covers micro-batches [e*M, (e+1)*M) of the stream: a full pass (iters_per_epoch = 0) or the
official fixed number of iterations crossing pass boundaries. The data position is one integer.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from affectgpt.data.records import Record, SkipLog

logger = logging.getLogger(__name__)


def name_fraction(name: str) -> float:
    """A stable pseudo-random number in [0, 1) per sample name (independent of order and process)."""
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "big") / 2**64


def split_by_name(records: list[Record], val_fraction: float) -> tuple[list[Record], list[Record]]:
    """(train, val): a record is held out when its name hash falls below val_fraction (order kept)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1) for val_dataset=split, got {val_fraction}")
    held_out = [name_fraction(r.name) < val_fraction for r in records]
    val = [r for r, out in zip(records, held_out) if out]
    train = [r for r, out in zip(records, held_out) if not out]
    if not val or not train:
        raise ValueError(
            f"data.val_fraction={val_fraction} leaves {len(train)} training and {len(val)} validation samples "
            f"out of {len(records)}; use more data or another fraction"
        )
    return train, val


EMPTY_SUBTITLES = {"keep": True, "skip": False}  # data.empty_subtitles -> the readers' allow_empty_subtitle


def load_records(data_cfg: Any, skips: SkipLog, reports: list | None = None) -> tuple[list[Record], list[Record]]:
    """(train, val) records per data.train_dataset / data.val_dataset (split | ovmerd | a MER-UniBench name).

    `reports`, if given, receives one ReadReport per file set read (NA cells, empty subtitles, warnings)."""
    from affectgpt.data.mer2025 import ReadReport
    from affectgpt.data.unibench import read_dataset

    policy = data_cfg.empty_subtitles
    if policy not in EMPTY_SUBTITLES:
        raise ValueError(f"data.empty_subtitles must be one of {list(EMPTY_SUBTITLES)}, got {policy!r}")
    kwargs = {"subtitle_language": data_cfg.subtitle_language, "on_error": data_cfg.on_error, "skips": skips,
              "allow_empty_subtitle": EMPTY_SUBTITLES[policy]}  # fmt: skip

    def read(name: str, root: str) -> list[Record]:
        report = ReadReport()
        if reports is not None:
            reports.append(report)
        return read_dataset(name, root, report=report, **kwargs)

    records = read(data_cfg.train_dataset, data_cfg.root)
    source = data_cfg.val_dataset
    if source == "split":
        train, val = split_by_name(records, data_cfg.val_fraction)
    else:
        train = records
        root = data_cfg.unibench_roots.get(source, data_cfg.root)
        if source.lower() not in ("ovmerd", "mercaptionplus") and source not in data_cfg.unibench_roots:
            raise ValueError(f"data.val_dataset={source!r}: no root in data.unibench_roots (have {sorted(data_cfg.unibench_roots)})")
        val = read(source, root)
    val = [r for r in val if r.ovlabels is not None]
    if not val:
        raise ValueError(f"data.val_dataset={source!r}: no validation samples with OV labels")
    if data_cfg.val_max_samples > 0:
        val = sorted(val, key=lambda r: name_fraction(r.name))[: data_cfg.val_max_samples]
    return train, val


@dataclass(frozen=True)
class BatchStream:
    """Which dataset indices rank `rank` trains on at every micro-batch position of the run."""

    n_samples: int
    batch_size: int
    world_size: int
    rank: int
    seed: int
    grad_accum: int = 1
    iters_per_epoch: int = 0  # optimizer steps per epoch; 0 = one full pass

    @property
    def batches_per_pass(self) -> int:
        return self.n_samples // (self.batch_size * self.world_size)

    @property
    def micro_per_epoch(self) -> int:
        """Micro-batches per epoch, a multiple of grad_accum (a full pass drops its ragged tail)."""
        if self.iters_per_epoch > 0:
            return self.iters_per_epoch * self.grad_accum
        return (self.batches_per_pass // self.grad_accum) * self.grad_accum

    def check(self) -> None:
        if self.micro_per_epoch <= 0:
            raise ValueError(
                f"{self.n_samples} training samples give no full step: batch_size {self.batch_size} x "
                f"{self.world_size} processes x grad_accum {self.grad_accum} is larger than one pass"
            )

    def pass_seed(self, pass_index: int) -> int:
        """The seed of pass `pass_index`: its permutation and its DataLoader's generator."""
        return self.seed * 100_003 + pass_index

    def permutation(self, pass_index: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.pass_seed(pass_index))
        return torch.randperm(self.n_samples, generator=generator).tolist()

    def position(self, micro: int) -> tuple[int, int]:
        """(pass, global batch within the pass) of stream micro-batch `micro`."""
        if self.iters_per_epoch > 0:
            return divmod(micro, self.batches_per_pass)
        epoch, offset = divmod(micro, self.micro_per_epoch)
        return epoch, offset

    def rank_batches(self, start: int, stop: int) -> Iterator[tuple[int, list[int]]]:
        """(pass, indices of this rank) for stream micro-batches [start, stop)."""
        cached: tuple[int, list[int]] | None = None
        width = self.batch_size * self.world_size
        for micro in range(start, stop):
            pass_index, batch = self.position(micro)
            if cached is None or cached[0] != pass_index:
                cached = (pass_index, self.permutation(pass_index))
            lo = batch * width + self.rank * self.batch_size
            yield pass_index, cached[1][lo : lo + self.batch_size]


def iterate_epoch(
    stream: BatchStream,
    epoch: int,
    start_micro: int,
    make_dataset: Callable[[int], Dataset],
    collate: Callable,
    num_workers: int,
) -> Iterator[dict[str, Any]]:
    """Batches of epoch `epoch` from stream position `start_micro` (a later position on resume).

    One fresh dataset per pass (`make_dataset(pass)`), so per-item random choices depend only on
    (seed, pass, index), never on how many items were read before (resume- and worker-proof).
    """
    stop = (epoch + 1) * stream.micro_per_epoch
    groups: list[tuple[int, list[list[int]]]] = []
    for pass_index, indices in stream.rank_batches(start_micro, stop):
        if not groups or groups[-1][0] != pass_index:
            groups.append((pass_index, []))
        groups[-1][1].append(indices)
    for pass_index, batches in groups:
        loader = DataLoader(
            make_dataset(pass_index),
            batch_sampler=batches,
            collate_fn=collate,
            num_workers=num_workers,
            pin_memory=torch.cuda.is_available(),
            # Its own generator: creating an iterator must not draw from the global RNG, or a
            # mid-epoch resume would shift every later dropout mask.
            generator=torch.Generator().manual_seed(stream.pass_seed(pass_index)),
        )
        yield from loader


def shard(items: list[Any], rank: int, world: int, batch_size: int) -> tuple[list[Any], int]:
    """Rank `rank`'s contiguous share, padded by repetition so every rank runs the same number of
    batches (collectives inside generation stay in lock-step); returns (share, n_real)."""
    per_rank = -(-len(items) // world)
    per_rank = -(-per_rank // batch_size) * batch_size
    mine = items[rank * per_rank : (rank + 1) * per_rank]
    n_real = len(mine)
    filler = items[: per_rank - n_real] if items else []
    while len(filler) < per_rank - n_real:
        filler = filler + items
    return mine + filler[: per_rank - n_real], n_real


def demo_data_root(root: str) -> bool:
    """True for the embedded demo dataset location (generated on first use)."""
    return Path(root).as_posix().rstrip("/").endswith("data/demo")

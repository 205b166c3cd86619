"""A resumable, world-size-aware stream of training batches.

The stream is a sequence of passes over the training set; pass p is a permutation seeded by
(seed, p), cut into global batches of batch_size x world_size samples, rank r taking slice r of each
(so one process with batch 4 sees exactly the samples two processes with batch 2 see together).
Epoch e covers micro-batches [e*M, (e+1)*M) of the stream: a full pass (iters_per_epoch = 0) or the
official fixed number of iterations crossing pass boundaries. The data position is one integer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

logger = logging.getLogger(__name__)


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

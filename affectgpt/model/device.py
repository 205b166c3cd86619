"""Which device a process computes on and how mixed precision is applied outside the training loop.

One helper for inference, the feature-cache build and tools (training gets both from accelerate): the GPU of
this process's LOCAL_RANK when CUDA exists, else the CPU; autocast to the training run's precision, never fp16
on a CPU (no fast fp16 kernels there: full precision instead).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str | None = None) -> torch.device:
    """`name` if given (e.g. "cuda:1", "cpu"), else this process's GPU (LOCAL_RANK) or the CPU."""
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def autocast_for(mixed_precision: str, device: torch.device) -> Callable[[], AbstractContextManager] | None:
    """train.mixed_precision ("no" | "fp16" | "bf16") as an autocast factory for `device` (None = full precision)."""
    dtype = AUTOCAST_DTYPES.get(mixed_precision)
    if dtype is None or (dtype is torch.float16 and device.type != "cuda"):
        return None
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)

"""Process-group setup that works the same on CUDA (nccl) and on CPU-only machines (gloo).

Two accelerate quirks without a GPU are handled here, before the Accelerator exists:
- a multi-process launch is only distributed (MULTI_CPU) when ACCELERATE_USE_CPU is true;
- DeepSpeed picks no backend, so every rank would think it is alone: we pass gloo explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import (
    DistributedDataParallelKwargs,
    InitProcessGroupKwargs,
    ProjectConfiguration,
)


def using_deepspeed() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def prepare_environment() -> None:
    """Set the env switches accelerate reads at construction time (no-op on GPU or single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not torch.cuda.is_available() and world > 1 and not using_deepspeed():
        os.environ["ACCELERATE_USE_CPU"] = "true"


def tracker_name(report_to: str) -> str | None:
    """accelerate's tracker name for train.report_to; wandb stays offline unless the user configured it."""
    if report_to in ("", "none"):
        return None
    if report_to == "wandb" and not (os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY")):
        os.environ["WANDB_MODE"] = "offline"
    return report_to


def make_accelerator(train_cfg: Any, run_dir: Path) -> Accelerator:
    """The one Accelerator of a run: mixed precision, grad accumulation, gloo without GPU, trackers."""
    prepare_environment()
    handlers: list[Any] = [DistributedDataParallelKwargs(find_unused_parameters=True)]
    if not torch.cuda.is_available() and using_deepspeed():
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    accelerator = Accelerator(
        mixed_precision=train_cfg.mixed_precision,
        gradient_accumulation_steps=max(1, int(train_cfg.grad_accum)),
        kwargs_handlers=handlers,
        log_with=tracker_name(train_cfg.report_to),
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        # We step the scheduler once per optimizer step ourselves: accelerate would step it
        # num_processes times per step, which makes the schedule depend on the world size.
        step_scheduler_with_optimizer=False,
    )
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:
        ds = plugin.deepspeed_config
        if ds.get("train_micro_batch_size_per_gpu", "auto") == "auto":
            ds["train_micro_batch_size_per_gpu"] = int(train_cfg.batch_size)
        if ds.get("gradient_clipping", "auto") == "auto":
            # accelerate's "auto" means 1.0; the official recipe does not clip (0 = off in DeepSpeed).
            ds["gradient_clipping"] = float(train_cfg.max_grad_norm)
    return accelerator


def is_zero3(accelerator: Accelerator) -> bool:
    plugin = accelerator.state.deepspeed_plugin
    return plugin is not None and int(plugin.zero_stage or 0) == 3

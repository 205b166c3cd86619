"""Training faults that must stop a run loudly instead of passing silently: non-finite steps and config drift.

- `NonFiniteGuard`: a step whose loss or gradients hold NaN/inf is skipped (no optimizer update) and counted;
  `limit` such steps in a row stop the run with `NonFiniteError` (a diverging LR never recovers by itself).
- Run.save refuses to write a checkpoint from NaN/inf weights (so they never become best/last); a NaN score is
  never best.
- `stream_record` / `check_resume_fits`: the values the saved data position and optimizer state depend on are kept
  in trainer.json; a resume with other values is refused with one line naming what changed and what to do
  (instead of an assertion deep in the loop or a mismatched optimizer load).

Stage code (SFT loop, RL) shares these through `train/run.py`'s `Run`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class NonFiniteError(RuntimeError):
    """Training diverged: too many non-finite steps in a row, or non-finite weights about to be saved."""


class ResumeMismatchError(RuntimeError):
    """The config no longer fits the checkpoint being resumed."""


def all_finite(tensors: Iterable[torch.Tensor | None]) -> bool:
    """True when every given tensor (None = no gradient, ignored) holds only finite values; one device sync."""
    flags = [torch.isfinite(t).all() for t in tensors if t is not None]
    return bool(torch.stack(flags).all()) if flags else True


class NonFiniteGuard:
    """Counts skipped non-finite steps; `limit` in a row raises. The counters live in the trainer state (resumable)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, int(limit))

    def update(self, state: Any, finite: bool, step: int) -> bool:
        """Record step `step` (1-based) as finite or not on `state` (fields nonfinite_steps / nonfinite_in_a_row);
        True when the step must be skipped. Raises NonFiniteError once `limit` non-finite steps come in a row."""
        if finite:
            state.nonfinite_in_a_row = 0
            return False
        state.nonfinite_steps += 1
        state.nonfinite_in_a_row += 1
        if state.nonfinite_in_a_row >= self.limit:
            raise NonFiniteError(
                f"training diverged: {state.nonfinite_in_a_row} steps in a row (up to step {step}) had a non-finite "
                f"loss or gradient (train.max_nonfinite_steps={self.limit}); nothing non-finite was saved: lower "
                f"train.lr or enable train.max_grad_norm, then start a new run or resume from the last checkpoint"
            )
        return True


# The stream values a saved data position / optimizer state depend on: (trainer.json key, config name for the user).
STREAM_KEYS = {
    "batch_size": "train.batch_size",
    "grad_accum": "train.grad_accum",
    "world_size": "number of processes",
    "iters_per_epoch": "train.iters_per_epoch",
    "n_samples": "number of training samples",
    "seed": "train.seed",
}


def stream_record(stream: Any) -> dict[str, int]:
    """What trainer.json keeps of the BatchStream (every rank-independent field)."""
    return {key: int(getattr(stream, key)) for key in STREAM_KEYS}


def check_resume_fits(saved: dict[str, Any] | None, current: dict[str, int], checkpoint: str) -> None:
    """ResumeMismatchError (one line: what changed, how to resume or restart) when `current` differs from `saved`.

    Checkpoints written before this record existed have none (`saved` None): they are resumed unchecked."""
    if not saved:
        return
    changed = {k: (saved[k], current[k]) for k in STREAM_KEYS if k in saved and int(saved[k]) != current[k]}
    if not changed:
        return
    what = ", ".join(f"{STREAM_KEYS[k]} {old} -> {new}" for k, (old, new) in changed.items())
    old_values = " ".join(
        f"{STREAM_KEYS[k]}={old}" for k, (old, _) in changed.items() if STREAM_KEYS[k][:6] == "train."
    )
    how = []
    if old_values:
        how.append(f"resume with the old values ({old_values})")
    if "world_size" in changed:
        how.append(f"launch {saved['world_size']} process(es) again")
    if "n_samples" in changed:
        how.append("use the same training data")
    raise ResumeMismatchError(
        f"cannot resume {checkpoint}: {what} since it was saved (the data position and optimizer state depend on "
        f"them); {', '.join(how)}, or start a new run (another train.run_name, or train.resume=never)"
    )

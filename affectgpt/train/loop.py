"""The SFT training loop: one code path for 1 process, CPU/GPU DDP and DeepSpeed ZeRO-2/3 (via accelerate).

Per epoch: train (grad accumulation, clipping, LR schedule, logging every N steps) -> validate on
held-out data with the EW metric -> save an atomic checkpoint (trainable weights + full state) ->
rotate, update best/last (train/run.py: shared with the RL stage). SIGTERM / Ctrl-C stops at the next step
boundary with a resumable save.

The loss of a step is the mean over every target token of the step (all micro-batches, all ranks),
so the trajectory does not depend on how a global batch is split over processes.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from affectgpt.config import Config
from affectgpt.data.dataset import IGNORE_INDEX, AffectDataset, Collator
from affectgpt.files import append_jsonl
from affectgpt.model.build import build_model
from affectgpt.train import tracking
from affectgpt.train.optim import build_optimizer, build_scheduler
from affectgpt.train.run import Run
from affectgpt.train.stream import BatchStream, iterate_epoch

logger = logging.getLogger("affectgpt.train")


def _count_targets(batch: dict[str, Any]) -> int:
    labels = batch.get("labels")
    return int((labels[:, 1:] != IGNORE_INDEX).sum()) if labels is not None else 0


def _trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


class Trainer(Run):
    """Supervised fine-tuning of AffectGPT (LoRA + modality heads) on MER-Caption+, the official recipe by default.

    Run it (the header of configs/affectgpt_qwen2.5_7b.yaml has the full sequence):
        accelerate launch train.py                                             # CPU demo, minutes
        accelerate launch train.py --config configs/affectgpt_qwen2.5_7b.yaml  # the official 7B recipe, one GPU
        accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml --num_processes 8 train.py --config ...

    Features, and what each costs:
    - Distribution: one code path for 1 process, DDP (nccl, or gloo on CPUs) and DeepSpeed ZeRO-2/3 through
      accelerate. The step's loss is the token mean over all micro-batches and ranks, so 1 x batch 4 == 2 x batch 2.
      ZeRO-3 shards the frozen 7B weights (~14 GiB less per GPU) for an all-gather per layer per step.
    - Feature cache (data.feature_cache): frozen CLIP/HuBERT outputs computed once, then read: ~3x faster steps,
      ~6 KB of disk per sample; the encoders are then not even built.
    - Chunked loss through the frozen output layer (model.loss_vocab_chunk): never builds the [targets x 151,936]
      logits (1.7 GiB less in the recipe); exact. Gradient checkpointing (model.gradient_checkpointing): ~3x less
      activation memory for ~30 % more compute. Mixed precision (train.mixed_precision): fp16 as official, bf16.
    - Official optimisation: AdamW without decay on biases and norms, constant LR 1e-5 (or warmup + cosine),
      fixed-iteration epochs (train.iters_per_epoch) or full passes, accumulation, optional clipping.
    - Per-epoch validation (data.val_dataset): greedy answers to the OV-label question, parsed and scored with the
      EW metric, exactly as `infer.py --split val` + `evaluate.py run` would; the best epoch is chosen on it, never
      on a test set. Costs one generation pass over the validation set per epoch (data.val_max_samples caps it).
    - Bad samples: skipped and counted per epoch (metrics.jsonl: train/n_skipped, reasons) or fatal
      (data.on_error=raise); never silently replaced.
    - Checkpoints: trainable weights only (MBs) + accelerate state, one temporary folder and one manifest, renamed
      into place; keep_last rotation that never deletes best/last; resume=auto continues bit-exactly (optimizer,
      scheduler, RNG, data position) and falls back past a corrupt checkpoint. SIGTERM / Ctrl-C save at the next
      step boundary.
    - Logs: tqdm bar, train_log.jsonl every train.log_every steps, metrics.jsonl per epoch, training_curves.png,
      wandb (offline by default) or tensorboard (train.report_to).
    """

    # --- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        acc, cfg, t = self.accelerator, self.cfg, self.cfg.train
        found = self._prepare_run_dir()
        self.load_data()
        set_seed(t.seed)  # identical initial weights on every rank
        # With a feature cache the frozen encoders are never run again: leave them out of the model.
        model, self.tokenizer = build_model(cfg, with_encoders=self.feature_cache is None)
        self._build_stream()
        optimizer = build_optimizer(model, t)
        scheduler = build_scheduler(optimizer, t, self.total_steps)
        self.model, self.optimizer, self.scheduler = acc.prepare(model, optimizer, scheduler)
        self.trainable = _trainable(self.model)  # listed once: clipping needs it every step
        self._register_state_hooks()
        if found is not None:
            self.resume(found)
        else:
            set_seed(t.seed + acc.process_index)  # official: seed + rank (dropout, augmentation)
        self.init_trackers()
        n_train = sum(p.numel() for p in self.trainable)
        n_all = sum(p.numel() for p in model.parameters())
        logger.info(
            "%s | %d processes | train %d / val %d samples | %d steps/epoch x %d epochs | "
            "trainable %.2fM of %.1fM params",
            acc.distributed_type,
            acc.num_processes,
            len(self.train_records),
            len(self.val_records),
            self.stream.micro_per_epoch // self.stream.grad_accum,
            t.epochs,
            n_train / 1e6,
            n_all / 1e6,
        )

    def _build_stream(self) -> None:
        """The per-rank batch order of the training records (self.stream) and the run's optimizer steps."""
        acc, t = self.accelerator, self.cfg.train
        self.stream = BatchStream(
            n_samples=len(self.train_records),
            batch_size=int(t.batch_size),
            world_size=acc.num_processes,
            rank=acc.process_index,
            seed=int(t.seed),
            grad_accum=max(1, int(t.grad_accum)),
            iters_per_epoch=int(t.iters_per_epoch),
        )
        self.stream.check()
        self.total_steps = int(t.epochs) * self.stream.micro_per_epoch // self.stream.grad_accum

    # --- training ------------------------------------------------------------------------------
    dataset_split = "train"  # AffectDataset split: "train" appends the target; GRPO's "rollout" asks only

    def _make_dataset(self, pass_index: int):
        dataset = AffectDataset(
            self.train_records,
            self.cfg.data,
            self.cfg.model,
            self.tokenizer,
            split=self.dataset_split,
            seed=int(self.cfg.train.seed),
            skips=self.skips,
            feature_cache=self.feature_cache,
        )
        dataset.set_epoch(pass_index)
        return dataset

    def _loss(self, batch: dict[str, Any], n_local: int, n_global: float) -> tuple[torch.Tensor, float]:
        """(loss to backpropagate, sum of token losses for logging); scaled so the update is the
        token-mean over the whole step across ranks and micro-batches."""
        if not batch["names"] or n_local == 0:  # every sample of the batch was skipped
            return sum(p.sum() for p in self.trainable) * 0.0, 0.0
        mean = self.model(batch)
        scale = n_local * self.accelerator.num_processes * self.stream.grad_accum / max(n_global, 1.0)
        return mean * scale, float(mean.detach()) * n_local

    def _window(self, batches: Any) -> list[dict[str, Any]]:
        window = []
        for _ in range(self.stream.grad_accum):
            batch = next(batches, None)
            if batch is None:
                break
            window.append(batch)
        return window

    def train_epoch(self, epoch: int, bar: Any) -> bool:
        """Train until the end of `epoch`; False when stopped by a signal (state already saved)."""
        self._reasons_before = self.skips.counts.copy()
        acc, t, st = self.accelerator, self.cfg.train, self.state
        batches = iterate_epoch(
            self.stream,
            epoch,
            st.micro,
            self._make_dataset,
            self._collator(),
            int(self.cfg.data.num_workers),
        )
        self.model.train()
        log = torch.zeros(5, dtype=torch.float64)  # loss sum, target tokens, samples, input tokens, dropped samples
        throughput = tracking.Throughput()
        while True:
            window = self._window(batches)
            counts = [_count_targets(b) for b in window]
            flags = torch.tensor(
                [float(sum(counts)), float(self.stop.requested), float(len(window))], device=acc.device
            )
            n_global, n_stop, n_micro = acc.reduce(flags, reduction="sum").tolist()  # one device sync per step
            if n_stop > 0 or not window:
                self._fold(log)
                if n_stop > 0:
                    self.save(kind="interrupt")
                return not n_stop > 0
            if n_micro != len(window) * acc.num_processes:
                raise RuntimeError("ranks disagree on the number of micro-batches in a step (data stream bug)")
            step_log = torch.zeros_like(log)
            finite_loss, skip = True, False
            for batch, n_local in zip(window, counts):
                with acc.accumulate(self.model):
                    with acc.autocast():
                        loss, loss_sum = self._loss(batch, n_local, n_global)
                    finite_loss = finite_loss and math.isfinite(loss_sum)
                    acc.backward(loss)
                    if acc.sync_gradients:  # the step's gradients are complete: skip it if anything is NaN/inf
                        skip = self.nonfinite_step(finite_loss)
                        if not skip and t.max_grad_norm > 0 and acc.state.deepspeed_plugin is None:
                            acc.clip_grad_norm_(self.trainable, t.max_grad_norm)
                    if not skip:
                        self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                counts_now = [
                    loss_sum,
                    n_local,
                    len(batch["names"]),
                    float(batch["attention_mask"].sum()),
                    batch["n_dropped"],
                ]
                step_log += torch.tensor(counts_now, dtype=torch.float64)
                st.micro += 1
            if skip:  # a skipped step's loss is not part of the logged mean (train/nonfinite_steps counts it)
                step_log[:2] = 0.0
            log += step_log
            if not skip and not acc.optimizer_step_was_skipped:
                self.scheduler.step()
            st.global_step += 1
            bar.update(1)
            if st.global_step % max(1, int(t.log_every)) == 0:
                self._log_step(log, throughput, bar)
        return True  # pragma: no cover

    def _fold(self, log: torch.Tensor) -> torch.Tensor:
        """Sum the local counters over ranks into the epoch totals; returns the global counters."""
        acc, st = self.accelerator, self.state
        total = acc.reduce(log.to(acc.device), reduction="sum").cpu()
        st.loss_sum += float(total[0])
        st.loss_tokens += float(total[1])
        st.skipped += int(total[4])
        log.zero_()
        return total

    def _log_step(self, log: torch.Tensor, throughput: tracking.Throughput, bar: Any) -> None:
        acc, st = self.accelerator, self.state
        total = self._fold(log)
        record = {
            "step": st.global_step,
            "epoch_float": st.micro / self.stream.micro_per_epoch,
            # NaN when every step since the last log point was skipped as non-finite (no loss was counted)
            "train/loss": float(total[0] / total[1]) if total[1] > 0 else float("nan"),
            "train/nonfinite_steps": st.nonfinite_steps,
            "train/lr": float(self.scheduler.get_last_lr()[0]),
            **throughput.rates(float(total[2]), float(total[3])),
        }
        if self.main:
            append_jsonl(self.run_dir / tracking.TRAIN_LOG_FILE, record, fsync=False)  # fsynced at each save
            bar.set_postfix(loss=f"{record['train/loss']:.4f}", lr=f"{record['train/lr']:.2e}")
        if acc.log_with:
            acc.log({k: v for k, v in record.items() if k.startswith("train/")}, step=st.global_step)

    def _collator(self):
        return Collator(self.tokenizer, prompt_style=self.cfg.data.prompt_style)

    # --- validation and saving ---------------------------------------------------------------------
    def end_epoch(self, epoch: int) -> None:
        st = self.state
        reasons = self.skips.counts - self._reasons_before  # this epoch's, as this process saw them
        train_record = {
            "train/loss": st.loss_sum / max(st.loss_tokens, 1.0),
            "train/n_skipped": st.skipped,  # every rank, every DataLoader worker (the collator's count)
            "train/skipped_reasons": dict(reasons.most_common()),  # main process; per-worker copies log their own
            "data/n_skipped_reading": self.read_skips.total,
            "train/nonfinite_steps": st.nonfinite_steps,  # skipped for a NaN/inf loss or gradient, whole run
        }
        st.loss_sum, st.loss_tokens, st.skipped = 0.0, 0.0, 0
        self.close_epoch(epoch, train_record)

    # --- driver --------------------------------------------------------------------------------
    def fit(self) -> Path | None:
        try:
            return self._fit()
        finally:
            self.release()

    def _fit(self) -> Path | None:
        self.setup()
        t, st = self.cfg.train, self.state
        if st.epoch >= int(t.epochs):
            logger.info(
                "run already complete (%d epochs); use train.resume=never or another train.run_name to retrain",
                st.epoch,
            )
            return self.finish()
        self.stop.install()
        bar = tqdm(
            total=self.total_steps, initial=st.global_step, disable=not self.main, desc="train", dynamic_ncols=True
        )
        try:
            for epoch in range(st.epoch, int(t.epochs)):
                bar.set_description(f"epoch {epoch + 1}/{t.epochs}")
                if not self.train_epoch(epoch, bar):
                    bar.close()
                    if self.main:
                        print(
                            f"stopped at step {st.global_step}; resume with the same command (train.resume=auto)",
                            flush=True,
                        )
                    return None
                assert st.micro == (epoch + 1) * self.stream.micro_per_epoch, "data position out of step"
                self.end_epoch(epoch)
                if self._stop_agreed() and epoch + 1 < int(t.epochs):
                    if self.main:
                        print(
                            f"stopped after epoch {epoch + 1}; resume with the same command (train.resume=auto)",
                            flush=True,
                        )
                    return None
        finally:
            bar.close()
            self.stop.restore()
        return self.finish()


def train(cfg: Config) -> Path | None:
    """Run (or resume) training per `cfg`; returns the best checkpoint directory (None if stopped early)."""
    return Trainer(cfg).fit()

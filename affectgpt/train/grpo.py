"""The GRPO stage: from an SFT checkpoint, optimise the EW metric itself on the OV-label question.

    accelerate launch train.py --config configs/demo_grpo.yaml                      # CPU demo, minutes
    accelerate launch train.py --config configs/grpo_qwen2.5_7b.yaml rl.init_from=checkpoints/<sft run>/best

Per optimizer step (train.grad_accum micro-batches of train.batch_size prompts per process): G completions per
prompt from one shared prefix (infer/rollout.py), parsed with the sentence parser and scored (train/grpo_step.py),
group-relative advantages, then rl.inner_passes passes of the clipped surrogate (+ beta x k3 KL to the frozen SFT
weights) against the log-probs stored at rollout (train/grpo_math.py). Everything else is the SFT stage's
(train/run.py via train/loop.py's Trainer): run folder, data, feature cache, optimiser groups, LR schedule, clipping,
precision, accelerate / DDP / DeepSpeed, atomic checkpoints in the infer.py format, per-epoch EW validation, best
epoch, SIGTERM-safe resume. The rollout seeds are a function of the data position (grpo_step.step_seed), so the
resumed run samples exactly the completions the uninterrupted one would.

Rollouts run in eval mode (infer/rollout.py), updates in train mode (so gradient checkpointing applies). Set
model.lora_dropout: 0 for RL (both GRPO configs do): then the policy that samples is the one whose log-probs are
optimised, the first-pass ratio is 1 and clipping only acts on the later inner passes; with dropout > 0 every
ratio carries dropout noise.
Under DDP the loss never goes through the DDP wrapper's forward (rollouts and log-probs call the model's parts),
so gradients are averaged over processes explicitly at each optimizer step; DeepSpeed reduces them in backward.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from affectgpt.config import load_config
from affectgpt.config_values import ConfigError
from affectgpt.data.dataset import Collator
from affectgpt.data.synthetic import is_demo_root
from affectgpt.files import append_jsonl
from affectgpt.infer.rollout import logprobs_of
from affectgpt.infer.runner import resolve_checkpoint
from affectgpt.model.build import build_model
from affectgpt.model.checkpoint import load_checkpoint
from affectgpt.train import tracking
from affectgpt.train.distributed import is_zero3
from affectgpt.train.grpo_math import group_advantages, grpo_loss
from affectgpt.train.grpo_step import INDEX, STATS, Scored, add_rollout_stats, rollout_and_score, step_seed, summarise
from affectgpt.train.loop import Trainer, train
from affectgpt.train.optim import build_optimizer, build_scheduler
from affectgpt.train.run import TrainerState
from affectgpt.train.stream import iterate_epoch

logger = logging.getLogger("affectgpt.train")
COMPLETIONS_FILE = "completions.jsonl"
ADV_EPS = 1e-4  # grpo_math.group_advantages' eps
DEMO_SFT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


@dataclass
class GRPOState(TrainerState):
    """TrainerState plus this epoch's reward sums (the epoch's train/reward in metrics.jsonl)."""

    reward_sum: float = 0.0
    reward_rows: float = 0.0


class GRPOTrainer(Trainer):
    """GRPO on the AffectGPT module (LoRA + modality heads train, as in SFT). Reuses Trainer.fit / Run's saving."""

    dataset_split = "rollout"  # the OV-label question on training samples, the answer kept as text (the GT)

    def __init__(self, cfg: Any):
        super().__init__(cfg, GRPOState())

    # --- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        acc, cfg, t, rl = self.accelerator, self.cfg, self.cfg.train, self.cfg.rl
        if is_zero3(acc):  # rollouts call the model's parts outside the engine, and the KL swaps whole tensors
            raise ConfigError("the GRPO stage (rl.init_from) does not support DeepSpeed ZeRO-3 yet: use DDP or ZeRO-2")
        init = resolve_checkpoint(rl.init_from)  # a checkpoint folder, or a run folder: its best checkpoint
        found = self._prepare_run_dir()
        self.load_data()
        n_all = len(self.train_records)
        self.train_records = [r for r in self.train_records if r.ovlabels]
        if self.main and len(self.train_records) < n_all:
            print(f"rl: {n_all - len(self.train_records)} training samples without OV labels left out", flush=True)
        self.gt = {r.name: r.ovlabels for r in self.train_records}
        set_seed(t.seed)
        model, self.tokenizer = build_model(cfg, with_encoders=self.feature_cache is None)
        load_checkpoint(model, init)  # the SFT policy: LoRA and heads
        trainable = [p for p in model.parameters() if p.requires_grad]
        # The KL reference: a frozen copy of the small trainable tensors (never a second LLM).
        self.reference = [p.detach().clone() for p in trainable] if rl.kl_beta > 0 else None
        self._build_stream()
        optimizer = build_optimizer(model, t)
        scheduler = build_scheduler(optimizer, t, self.total_steps * int(rl.inner_passes))
        self.model, self.optimizer, self.scheduler = acc.prepare(model, optimizer, scheduler)
        self.policy = acc.unwrap_model(self.model)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self._register_state_hooks()
        if found is not None:
            self.resume(found)
        self.init_trackers()
        logger.info(
            "GRPO from %s | %s | %d processes | train %d prompts x G=%d / val %d | %d steps/epoch x %d epochs",
            init,
            acc.distributed_type,
            acc.num_processes,
            len(self.train_records),
            rl.group_size,
            len(self.val_records),
            self.total_steps // max(int(t.epochs), 1),
            t.epochs,
        )

    def _collator(self):
        return Collator(self.tokenizer, left_pad=True, prompt_style=self.cfg.data.prompt_style)

    # --- one step --------------------------------------------------------------------------------
    def _advantages(self, window: list[Scored]) -> list[torch.Tensor]:
        """Group-centred advantages; "batch" divides by the std of every valid reward of the step on all ranks."""
        rl, acc = self.cfg.rl, self.accelerator
        scale = rl.scale_rewards
        advs = [group_advantages(s.rewards, "none" if scale == "batch" else scale, ADV_EPS) for s in window]
        if scale == "batch":
            sums = torch.zeros(3, dtype=torch.float64)
            for s in window:
                kept = s.rewards[s.valid].double()
                sums += torch.stack([kept.sum(), (kept**2).sum(), torch.tensor(float(kept.numel()))])
            total, square, n = acc.reduce(sums.to(acc.device), reduction="sum").cpu().tolist()
            std = max(square / max(n, 1.0) - (total / max(n, 1.0)) ** 2, 0.0) ** 0.5
            advs = [a / (std + ADV_EPS) for a in advs]
        return advs

    def _ref_logprobs(self, scored: Scored) -> torch.Tensor:
        """Log-probs of the reference (SFT) policy: the frozen copy swapped into the trainable tensors."""
        out = scored.rollout
        with torch.no_grad():
            saved = [p.data for p in self.trainable]
            try:
                for p, ref in zip(self.trainable, self.reference):
                    p.data = ref
                return logprobs_of(self.policy, scored.batch, out.completion_ids, out.completion_mask, self._temp)
            finally:
                for p, data in zip(self.trainable, saved):
                    p.data = data

    @property
    def _temp(self) -> float:
        return float(self.cfg.rl.temperature)

    def _sync_gradients(self) -> None:
        """DDP without its forward: average the trainable gradients over processes (one flat all-reduce)."""
        acc = self.accelerator
        if acc.num_processes == 1 or acc.state.deepspeed_plugin is not None:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.trainable]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= acc.num_processes
        offset = 0
        for p in self.trainable:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).to(p.dtype).clone()
            offset += n

    def _update(self, scored: Scored, adv: torch.Tensor, normaliser: float, stats: torch.Tensor) -> None:
        acc, rl, t = self.accelerator, self.cfg.rl, self.cfg.train
        out, mask = scored.rollout, scored.loss_mask
        with acc.accumulate(self.model):
            with acc.autocast():
                logp = logprobs_of(self.policy, scored.batch, out.completion_ids, out.completion_mask, self._temp)
                ref = self._ref_logprobs(scored) if rl.kl_beta > 0 else None
                loss, info = grpo_loss(
                    logp,
                    out.logprobs.to(logp.device),
                    adv.to(logp.device),
                    mask,
                    eps_clip=float(rl.clip_eps),
                    beta=float(rl.kl_beta),
                    ref_logp=ref,
                    aggregation=rl.loss_aggregation,
                    normaliser=normaliser,
                )
            self._window_finite = getattr(self, "_window_finite", True) and bool(torch.isfinite(loss.detach()))
            acc.backward(loss)
            self._skip_update = False
            if acc.sync_gradients:  # the update's gradients are complete: skip it if anything is NaN/inf (SFT's guard)
                self._sync_gradients()
                self._skip_update = self.nonfinite_step(self._window_finite)
                self._window_finite = True
                if not self._skip_update and t.max_grad_norm > 0 and acc.state.deepspeed_plugin is None:
                    acc.clip_grad_norm_(self.trainable, t.max_grad_norm)
            if not self._skip_update:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        tokens = float(info["tokens"])
        stats[INDEX["tokens"]] += tokens
        stats[INDEX["clipped_tokens"]] += float(info["clip_fraction"]) * tokens
        stats[INDEX["kl_tokens"]] += float(info.get("kl", 0.0)) * tokens
        stats[INDEX["loss"]] += float(loss.detach())
        stats[INDEX["updates"]] += 1

    def _normaliser(self, window: list[Scored]) -> float:
        """The step's global token (or sequence) count / (processes x micro-batches): a world-size-invariant mean."""
        acc = self.accelerator
        if self.cfg.rl.loss_aggregation == "token":
            local = sum(float(s.loss_mask.sum()) for s in window)
        else:
            local = sum(float(s.valid.sum()) * s.rollout.group_size for s in window)
        n = float(acc.reduce(torch.tensor([local], device=acc.device), reduction="sum")[0])
        return max(n, 1.0) / (acc.num_processes * self.stream.grad_accum)

    def train_epoch(self, epoch: int, bar: Any) -> bool:
        """Train until the end of `epoch`; False when stopped by a signal (state already saved)."""
        acc, t, rl, st = self.accelerator, self.cfg.train, self.cfg.rl, self.state
        self._reasons_before = self.skips.counts.copy()
        batches = iterate_epoch(
            self.stream, epoch, st.micro, self._make_dataset, self._collator(), int(self.cfg.data.num_workers)
        )
        self.model.train()  # rollouts switch to eval themselves; see the module docstring on dropout
        stats = torch.zeros(len(STATS), dtype=torch.float64)
        while True:
            window = self._window(batches)
            flags = torch.tensor([float(self.stop.requested), float(len(window))], device=acc.device)
            n_stop, n_micro = acc.reduce(flags, reduction="sum").tolist()
            if n_stop > 0 or not window:
                self._fold_stats(stats)
                if n_stop > 0:
                    self.save(kind="interrupt")
                return not n_stop > 0
            if n_micro != len(window) * acc.num_processes:
                raise RuntimeError("ranks disagree on the number of micro-batches in a step (data stream bug)")
            if any(not b["names"] for b in window):
                raise RuntimeError(f"step {st.global_step + 1}: a micro-batch lost every sample (see the warnings)")
            start = time.perf_counter()
            with acc.autocast():
                scored = [
                    rollout_and_score(self.policy, b, self.gt, rl, self.wheel, step_seed(t.seed, st.micro + k))
                    for k, b in enumerate(window)
                ]
            stats[INDEX["rollout_s"]] += time.perf_counter() - start
            start = time.perf_counter()
            for s in scored:
                add_rollout_stats(stats, s)
            advs = self._advantages(scored)
            normaliser = self._normaliser(scored)
            for _ in range(int(rl.inner_passes)):
                for s, adv in zip(scored, advs):
                    self._update(s, adv, normaliser, stats)
                if not self._skip_update and not acc.optimizer_step_was_skipped:
                    self.scheduler.step()
            stats[INDEX["update_s"]] += time.perf_counter() - start
            st.micro += len(window)
            st.global_step += 1
            self._last_rows = scored[0].rows
            bar.update(1)
            if st.global_step % max(1, int(t.log_every)) == 0:
                self._log_step(stats, bar)

    def _fold_stats(self, stats: torch.Tensor) -> torch.Tensor:
        acc, st = self.accelerator, self.state
        total = acc.reduce(stats.to(acc.device), reduction="sum").cpu()
        st.reward_sum += float(total[INDEX["reward"]])
        st.reward_rows += float(total[INDEX["rows"]])
        st.skipped += int(total[INDEX["dropped"]])
        st.loss_sum += float(total[INDEX["loss"]])
        st.loss_tokens += float(total[INDEX["updates"]])
        stats.zero_()
        return total

    def _log_step(self, stats: torch.Tensor, bar: Any) -> None:
        acc, st = self.accelerator, self.state
        total = self._fold_stats(stats)
        record = {
            "step": st.global_step,
            "epoch_float": st.micro / self.stream.micro_per_epoch,
            "train/lr": float(self.scheduler.get_last_lr()[0]),
            "train/nonfinite_steps": st.nonfinite_steps,  # updates skipped for a NaN/inf loss or gradient, whole run
            **summarise(total),
        }
        if self.main:
            append_jsonl(self.run_dir / tracking.TRAIN_LOG_FILE, record, fsync=False)  # fsynced at each save
            bar.set_postfix(
                reward=f"{record['rl/reward_mean']:.3f}",
                ew=f"{record['rl/ew_mean']:.3f}",
                labels=f"{record['rl/pred_labels']:.1f}/{record['rl/gt_labels']:.1f}",
            )
        if acc.log_with:
            acc.log({k: v for k, v in record.items() if "/" in k}, step=st.global_step)

    # --- end of epoch --------------------------------------------------------------------------------
    def end_epoch(self, epoch: int) -> None:
        st = self.state
        rows = getattr(self, "_last_rows", [])[: int(self.cfg.rl.log_completions)]
        if self.main and rows:
            print(f"sampled completions (epoch {epoch + 1}, main process, last step):", flush=True)
            print(f"  {'reward':>6} {'ew':>5} {'fmt':>3}  answer", flush=True)
            for row in rows:
                print(f"  {row['reward']:6.3f} {row['ew']:5.3f} {row['format']:3.0f}  {row['text'][:90]!r}", flush=True)
            path = self.run_dir / COMPLETIONS_FILE
            with path.open("a", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps({"epoch": epoch + 1, "step": st.global_step, **row}, ensure_ascii=False) + "\n")
        train_record = {
            "train/loss": st.loss_sum / max(st.loss_tokens, 1.0),  # the GRPO objective (mean over updates)
            "train/reward": st.reward_sum / max(st.reward_rows, 1.0),
            "train/nonfinite_steps": st.nonfinite_steps,
            "train/n_skipped": st.skipped,
            "data/n_skipped_reading": self.read_skips.total,
        }
        st.reward_sum, st.reward_rows, st.skipped, st.loss_sum, st.loss_tokens = 0.0, 0.0, 0, 0.0, 0.0
        self.close_epoch(epoch, train_record)


def ensure_demo_init(cfg: Any) -> None:
    """The CPU demo makes its own start point: when rl.init_from (<dir>/<run>/epoch_NNNN) does not exist yet and the
    data is a synthetic demo world, train that SFT run first: configs/demo.yaml for NNNN epochs on the world's
    MER-Caption+ labels, validated like the GRPO run (same val set), so both curves share one axis. Real data never
    does."""
    init = Path(cfg.rl.init_from)
    match = re.fullmatch(r"epoch_(\d+)", init.name)
    if init.exists() or match is None or not is_demo_root(cfg.data.root):
        return
    overrides = [
        f"train.output_dir={init.parent.parent}",
        f"train.run_name={init.parent.name}",
        f"train.epochs={int(match[1])}",
        f"data.root={cfg.data.root}",
        f"data.feature_cache={cfg.data.feature_cache}",
        f"data.val_dataset={cfg.data.val_dataset}",
        f"data.unibench_roots={json.dumps(dict(cfg.data.unibench_roots))}",  # JSON is a YAML flow mapping
    ]
    print(f"rl.init_from={init} does not exist: training it first (SFT demo: {' '.join(overrides)})", flush=True)
    if train(load_config(DEMO_SFT_CONFIG, overrides)) is None:
        raise RuntimeError(f"the SFT run for rl.init_from={init} stopped early; run the same command again to resume")


def train_grpo(cfg: Any) -> Path | None:
    """Run (or resume) the GRPO stage per `cfg`; returns the best checkpoint directory (None if stopped early)."""
    ensure_demo_init(cfg)
    return GRPOTrainer(cfg).fit()

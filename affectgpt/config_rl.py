"""The `rl:` config section: the GRPO stage (affectgpt/train/grpo.py), selected by a non-empty `rl.init_from`.

Stage rule: `rl.init_from` empty = supervised fine-tuning (train/loop.py); a checkpoint folder = GRPO from it.
One knob selects the stage and names its only required input, so a GRPO config cannot forget its start point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from affectgpt.config_values import Checks


@dataclass
class RLConfig:
    # SFT checkpoint (train.py's epoch_XXXX / best folder) the policy and the KL reference start from;
    # "" = no RL (the SFT stage runs).
    init_from: str = ""
    # Completions per prompt (G): more = a better group baseline and fewer zero-variance groups, for G x rollout cost.
    group_size: int = 8
    # Sampling temperature of rollouts: higher explores more label sets, lower wastes fewer samples on noise.
    temperature: float = 1.0
    # Nucleus mass of rollouts: < 1 cuts the tail (fewer garbled answers), 1 samples the full distribution.
    top_p: float = 0.9
    # Rollout length cap: an OV-label sentence is ~15-30 tokens; longer caps only cost time on rambling rows.
    max_new_tokens: int = 64
    # Reward weights: ew is the EW F-score (the metric itself), format the strict label-sentence check
    # (AffectGPT-R1 used 0.1-0.2: enough to keep the form, too little to compete with accuracy).
    ew_weight: float = 1.0
    format_weight: float = 0.1
    # Factor on ew when an answer lists more labels than the ground truth (p > g): "inverse" 1/(p-g+1) is harsh,
    # "ratio" g/p proportional, "log" log g / log p mild (but 0 for g = 1), "none" lets recall inflate freely.
    length_penalty: Literal["inverse", "ratio", "log", "none"] = "ratio"
    # Advantage scale: "group" std per prompt (GRPO), "batch" one std over the step (less noisy for small G),
    # "none" only centred (Dr. GRPO: no up-weighting of prompts whose answers barely differ).
    scale_rewards: Literal["group", "batch", "none"] = "group"
    # PPO clip range on per-token ratios: smaller = safer, slower steps; only acts when inner_passes > 1.
    clip_eps: float = 0.2
    # "token": every completion token weighs the same (long answers count more); "sequence": each answer weighs
    # the same (original GRPO; long answers are diluted per token).
    loss_aggregation: Literal["token", "sequence"] = "token"
    # Optimiser passes (mu) over each rollout batch: more reuse of costly rollouts, more off-policy drift (clipping).
    inner_passes: int = 1
    # KL weight to the frozen SFT policy (LoRA + heads): > 0 keeps answers near SFT at one extra forward per update.
    kl_beta: float = 0.0
    # Sampled completions printed and saved per epoch (completions.jsonl): a look at what the reward rewards.
    log_completions: int = 4

    def check(self) -> list[str]:
        c = Checks("rl", self)
        c.at_least(1, "group_size", "max_new_tokens", "inner_passes")
        c.at_least(0, "ew_weight", "format_weight", "kl_beta", "log_completions")
        c.positive("temperature")
        c.that(0 < self.top_p <= 1, f"top_p: must be in (0, 1], got {self.top_p!r}")
        c.that(0 <= self.clip_eps < 1, f"clip_eps: must be in [0, 1), got {self.clip_eps!r}")
        c.that(self.ew_weight + self.format_weight > 0, "ew_weight: ew_weight and format_weight are both 0 (no reward)")
        if self.init_from:
            c.that(
                self.group_size >= 2,
                f"group_size: GRPO needs >= 2 completions per prompt (a group baseline), got {self.group_size}",
            )
        return c.errors

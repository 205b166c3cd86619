"""One GRPO rollout batch: sample G answers per prompt, parse and score them, and the step's statistics.

Rewards per completion (pure functions of metrics/rewards.py on the deterministic sentence parser's labels):
  ew      EW F-score (mean over the five wheels, level 1) x the label-count penalty when p > g
  format  1 when the answer is exactly the trained label sentence
A prompt whose ground truth maps to no wheel word carries no reward signal: its group is excluded (mask 0)
and counted. The step's statistics are SUMS (one float64 vector), so ranks and log intervals add up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from affectgpt.config_rl import RLConfig
from affectgpt.infer.rollout import Rollout, rollout
from affectgpt.labels.sentence import is_label_sentence, parse_label_sentence
from affectgpt.metrics.rewards import combine, ew_reward, format_reward, label_count, length_penalty
from affectgpt.metrics.wheel import EmotionWheel

# Names of the summed statistics (STATS[i] is entry i of the vector); "sq" entries give std = sqrt(E[x^2] - E[x]^2).
STATS = (
    "rows",  # scored completions (excluded groups not counted)
    "reward",
    "reward_sq",
    "ew",
    "ew_sq",
    "format",
    "format_sq",
    "pred_labels",
    "gt_labels",
    "length",
    "groups",
    "zero_var_groups",
    "excluded_groups",
    "tokens",
    "clipped_tokens",
    "kl_tokens",  # sum of per-token KL (only with kl_beta > 0)
    "dropped",  # samples the collator dropped (bad media / text)
    "loss",  # sum of micro-batch losses (each already the step's global mean share: sum / updates = step loss)
    "updates",  # micro-batch loss evaluations (the clip / KL denominators are tokens x inner passes)
    "rollout_s",
    "update_s",
)
INDEX = {name: i for i, name in enumerate(STATS)}


def step_seed(seed: int, micro: int) -> int:
    """Rollout seed of stream micro-batch `micro`: a function of the data position, so resuming needs no RNG state
    (rows then hash it with their sample name and member: infer/rollout.row_seed)."""
    return int(seed) * 1_000_003 + int(micro)


@dataclass
class Scored:
    """A micro-batch's rollout with its rewards and what the loss needs."""

    batch: dict[str, Any]
    rollout: Rollout
    rewards: torch.Tensor  # [B, G] combined rewards (0 in excluded groups)
    valid: torch.Tensor  # [B] bool: groups with a reward signal
    rows: list[dict[str, Any]] = field(default_factory=list)  # per completion: name, text, labels, rewards

    @property
    def loss_mask(self) -> torch.Tensor:
        """Completion tokens of groups with a reward signal."""
        keep = self.valid.repeat_interleave(self.rollout.group_size).to(self.rollout.completion_mask.device)
        return self.rollout.completion_mask & keep[:, None]


def score_completion(text: str, gt: Any, rl: RLConfig, wheel: EmotionWheel) -> dict[str, Any] | None:
    """The reward components of one answer; None when the ground truth carries no reward signal."""
    labels = parse_label_sentence(text)
    ew = ew_reward(labels, gt, wheel)
    if ew is None:
        return None
    p, g = label_count(labels), label_count(gt)
    ew *= length_penalty(p, g, rl.length_penalty)
    fmt = format_reward(is_label_sentence(text))
    total = combine({"ew": ew, "format": fmt}, {"ew": rl.ew_weight, "format": rl.format_weight})
    return {"labels": labels, "ew": ew, "format": fmt, "reward": total, "pred_labels": p, "gt_labels": g}


def rollout_and_score(
    model: Any, batch: dict[str, Any], gt: dict[str, Any], rl: RLConfig, wheel: EmotionWheel, seed: int
) -> Scored:
    """G completions per prompt of `batch` (shared prefix), parsed and scored against `gt[name]` labels."""
    out = rollout(
        model,
        batch,
        int(rl.group_size),
        seed=seed,
        max_new_tokens=int(rl.max_new_tokens),
        temperature=float(rl.temperature),
        top_p=float(rl.top_p),
    )
    g = int(rl.group_size)
    names = list(batch["names"])
    rewards = torch.zeros(len(names), g, dtype=torch.float32)
    valid = torch.ones(len(names), dtype=torch.bool)
    rows = []
    for k, text in enumerate(out.texts):
        i = k // g
        scored = score_completion(text, gt[names[i]], rl, wheel)
        if scored is None:
            valid[i] = False
            continue
        rewards[i, k % g] = scored["reward"]
        rows.append({"name": names[i], "text": text, "length": int(out.lengths[k]), **scored})
    return Scored(batch, out, rewards, valid, rows)


def add_rollout_stats(stats: torch.Tensor, scored: Scored) -> None:
    """Add a scored micro-batch's reward / label-count / length / group statistics to `stats` (in place)."""
    for row in scored.rows:
        for key in ("reward", "ew", "format"):
            stats[INDEX[key]] += row[key]
            stats[INDEX[key + "_sq"]] += row[key] ** 2
        stats[INDEX["pred_labels"]] += row["pred_labels"]
        stats[INDEX["gt_labels"]] += row["gt_labels"]
        stats[INDEX["length"]] += row["length"]
    stats[INDEX["rows"]] += len(scored.rows)
    stats[INDEX["dropped"]] += float(scored.batch.get("n_dropped", 0))
    kept = scored.rewards[scored.valid]
    stats[INDEX["groups"]] += kept.shape[0]
    stats[INDEX["zero_var_groups"]] += float((kept == kept[:, :1]).all(dim=1).sum()) if kept.numel() else 0.0
    stats[INDEX["excluded_groups"]] += float((~scored.valid).sum())


def summarise(stats: torch.Tensor) -> dict[str, float]:
    """The per-step log record from summed statistics (over ranks and the log interval)."""
    s = {name: float(stats[i]) for i, name in enumerate(STATS)}
    rows = max(s["rows"], 1.0)
    out: dict[str, float] = {}
    for key in ("reward", "ew", "format"):
        mean = s[key] / rows
        out[f"rl/{key}_mean"] = mean
        out[f"rl/{key}_std"] = max(s[key + "_sq"] / rows - mean**2, 0.0) ** 0.5
    out["rl/pred_labels"] = s["pred_labels"] / rows
    out["rl/gt_labels"] = s["gt_labels"] / rows
    out["rl/completion_length"] = s["length"] / rows
    out["train/loss"] = s["loss"] / max(s["updates"], 1.0)
    out["rl/zero_var_fraction"] = s["zero_var_groups"] / max(s["groups"], 1.0)
    out["rl/excluded_groups"] = s["excluded_groups"]
    out["rl/clip_fraction"] = s["clipped_tokens"] / max(s["tokens"], 1.0)
    out["rl/kl"] = s["kl_tokens"] / max(s["tokens"], 1.0)
    total_s = s["rollout_s"] + s["update_s"]
    out["rl/rollouts_per_s"] = s["rows"] / max(s["rollout_s"], 1e-9)
    out["rl/rollout_time_fraction"] = s["rollout_s"] / max(total_s, 1e-9)
    out["time/rollout_s"] = s["rollout_s"]
    out["time/update_s"] = s["update_s"]
    return out

"""GRPO loss math: group-relative advantages, the clipped PPO surrogate on per-token ratios, the k3 KL.

Shapes: rewards [B, G] (B prompts x G completions, row i*G + g of the completion tensors is prompt i,
completion g); per-token tensors [N, T] with N = B*G and a 0/1 completion mask [N, T]; advantages [N].

World-size invariance: every loss is a SUM of per-token (or per-sequence) terms divided by `normaliser`.
Left as None it is the local count (tokens, or sequences), which is right for one process and one
micro-batch. A distributed loop passes the count over the whole optimizer step instead, as the SFT loop
does with n_global: DDP averages gradients over processes and accumulation sums micro-batches, so
`normaliser = n_global / (num_processes * grad_accum)` makes the update the global token mean (or global
sequence mean) however the batch is split.
"""

from __future__ import annotations

import torch

SCALES = ("group", "batch", "none")
AGGREGATIONS = ("token", "sequence")


def _check(name: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name}={value!r} is not supported; choose one of: {', '.join(options)}")


def group_advantages(rewards: torch.Tensor, scale: str = "group", eps: float = 1e-4) -> torch.Tensor:
    """Advantages [B*G] of rewards [B, G]: (r - group mean) / (std + eps).

    scale "group": std within each group (DeepSeekMath's GRPO); "batch": one std over all B*G rewards
    (less noisy for small G, keeps the relative weight of easy and hard prompts; pass the rewards of the
    whole global batch for world-size invariance); "none": r - group mean (Dr. GRPO: no per-prompt
    reweighting by 1/std, which favours prompts whose completions barely differ).
    Population std (divide by n, not n-1): the normalisation is a scale convention, not an estimate of a
    population parameter; it gives a group of distinct rewards unit RMS advantage and stays defined for
    G = 1 (advantage 0). TRL's unbiased torch.std differs by sqrt(G/(G-1)), a learning-rate factor.
    A group whose rewards are all equal gets advantage 0 everywhere: it carries no learning signal.
    """
    _check("scale_rewards", scale, SCALES)
    if rewards.dim() != 2 or rewards.numel() == 0:
        raise ValueError(f"rewards must be [prompts, group size] and non-empty, got shape {tuple(rewards.shape)}")
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError("rewards contain NaN/inf (a sample without reward signal must be dropped, not scored)")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if scale == "group":
        centred = centred / (rewards.std(dim=1, keepdim=True, unbiased=False) + eps)
    elif scale == "batch":
        centred = centred / (rewards.std(unbiased=False) + eps)
    return centred.reshape(-1)


def zero_variance_groups(rewards: torch.Tensor) -> torch.Tensor:
    """[B] bool: groups whose G rewards are all equal (advantage 0: no gradient from that prompt)."""
    return (rewards == rewards[:, :1]).all(dim=1)


def aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, aggregation: str, normaliser: float | None = None
) -> torch.Tensor:
    """Sum of masked per-token terms [N, T] / normaliser.

    "token": every completion token weighs the same (a long answer counts more; DAPO/TRL's default);
    normaliser = token count. "sequence": each sequence contributes the mean over its own tokens (the
    original GRPO; long answers are diluted per token); normaliser = sequence count.
    """
    _check("aggregation", aggregation, AGGREGATIONS)
    if normaliser is not None and not normaliser > 0:
        raise ValueError(f"normaliser must be > 0, got {normaliser}")
    mask = mask.to(per_token.dtype)
    if aggregation == "token":
        total = (per_token * mask).sum()
        local = mask.sum().clamp(min=1.0)
    else:  # a row without tokens (padding) contributes 0 rather than 0/0
        total = ((per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).sum()
        local = float(mask.shape[0])
    return total / (local if normaliser is None else float(normaliser))


def _policy_terms(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, eps_clip: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token clipped objective (to minimise) and detached stats over the masked tokens."""
    if not 0 <= eps_clip < 1:
        raise ValueError(f"eps_clip must be in [0, 1), got {eps_clip}")
    if logp.shape != old_logp.shape or logp.shape != mask.shape or advantages.shape != logp.shape[:1]:
        raise ValueError(
            f"shapes: logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)}, mask {tuple(mask.shape)} must "
            f"agree and advantages {tuple(advantages.shape)} must be [{logp.shape[0]}]"
        )
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.detach().to(ratio.dtype)[:, None]
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - eps_clip, 1 + eps_clip) * adv
    per_token = -torch.minimum(unclipped, clipped)
    with torch.no_grad():
        valid = mask.bool()
        n = valid.sum().to(ratio.dtype).clamp(min=1)
        # the clipped branch is taken and has zero gradient: ratio beyond the trust region in the advantage's direction
        is_clipped = ((ratio < 1 - eps_clip) & (adv < 0)) | ((ratio > 1 + eps_clip) & (adv > 0))
        stats = {
            "clip_fraction": (is_clipped & valid).sum().to(ratio.dtype) / n,
            "ratio_mean": (ratio * valid).sum() / n,
            "tokens": valid.sum(),
        }
    return per_token, stats


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_clip: float = 0.2,
    aggregation: str = "token",
    normaliser: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO-clip loss -min(r A, clip(r, 1-eps, 1+eps) A) with r = exp(logp - old_logp) per token, aggregated.

    old_logp are the log-probs stored at rollout (with one pass per rollout batch, mu = 1, pass
    logp.detach(): r = 1 and the gradient is REINFORCE with the group baseline). Returns the loss and
    detached stats: clip_fraction (masked tokens whose clipped branch is active), ratio_mean, tokens.
    """
    per_token, stats = _policy_terms(logp, old_logp, advantages, mask, eps_clip)
    return aggregate(per_token, mask, aggregation, normaliser), stats


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference) on tokens sampled from the policy:
    exp(ref - logp) - (ref - logp) - 1 (unbiased, always >= 0, low variance); 0 where mask is 0."""
    delta = ref_logp.detach() - logp
    return (torch.exp(delta) - delta - 1) * mask.to(logp.dtype)


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_clip: float = 0.2,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    aggregation: str = "token",
    normaliser: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The GRPO objective: per token clipped surrogate + beta * k3 KL to the reference, aggregated once.

    beta 0 needs no reference (no second forward pass); beta > 0 keeps the policy near the SFT model at
    the price of a reference forward per update. Stats add "kl" (mean k3 over masked tokens) when beta > 0.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    per_token, stats = _policy_terms(logp, old_logp, advantages, mask, eps_clip)
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp, the reference policy's log-probs of the same tokens")
        kl = kl_k3(logp, ref_logp, mask)
        per_token = per_token + beta * kl
        stats["kl"] = kl.detach().sum() / stats["tokens"].clamp(min=1)
    return aggregate(per_token, mask, aggregation, normaliser), stats

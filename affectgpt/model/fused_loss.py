"""Cross-entropy through a frozen output layer without materialising the [N, vocabulary] logits.

Why: Qwen2.5 has 151,936 vocabulary rows. The plain path (`F.cross_entropy(lm_head(h).float(), t)`)
writes the full logits, a log-softmax copy, a zero-filled gradient of the same size and reads them
all back in the backward pass. Every one of those tensors is far larger than the CPU caches (60 MB
for 100 target tokens), so memory traffic, not arithmetic, sets the speed: on the tiny demo LLM it
was ~70 % of a training step. In AffectGPT's recipe the output layer is frozen (only LoRA adapters
and the modality heads train), so the only gradient needed is the one w.r.t. the hidden states,
and it can be accumulated chunk by chunk in the forward pass with an online softmax (as in flash
attention): per vocabulary chunk W_c, l = h W_c^T, running max m and sum s are rescaled, and
g += exp(l - m) W_c. At the end lse = m + log s, loss = mean(lse - l_target) and
dL/dh = (g / s - W[target]) / N. Each chunk's logits stay in cache; the result equals the plain
path to float rounding (tests/test_fused_loss.py).

The chunked path is used only where it is exact and safe: a plain `nn.Linear` head whose weight
does not require grad and is not partitioned by DeepSpeed ZeRO-3 (`ds_id`: the weight is
gathered only inside the module's own forward). Anything else takes the plain path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def can_fuse(head: nn.Module) -> bool:
    """True when `head` is a frozen, unpartitioned nn.Linear (the chunked loss is then exact)."""
    if type(head) is not nn.Linear or head.weight.requires_grad:
        return False
    if head.bias is not None and head.bias.requires_grad:
        return False
    return not hasattr(head.weight, "ds_id")


def output_cross_entropy(hidden: torch.Tensor, head: nn.Module, targets: torch.Tensor, chunk: int) -> torch.Tensor:
    """Mean cross-entropy of `head(hidden)` (fp32 logits) against `targets`; hidden [N, D], targets [N].

    `chunk` vocabulary rows are processed at a time when the head is frozen (see module docstring);
    `chunk` <= 0 or a head that trains takes the plain path.
    """
    if chunk <= 0 or not can_fuse(head):
        return F.cross_entropy(head(hidden).float(), targets)
    if not (hidden.requires_grad and torch.is_grad_enabled()):  # evaluation: the loss alone
        return _chunked_loss_and_grad(hidden, head.weight, head.bias, targets, chunk, need_grad=False)[0]
    return _ChunkedCrossEntropy.apply(hidden, head.weight, head.bias, targets, chunk)


def _chunked_loss_and_grad(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    chunk: int,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One pass over the vocabulary: the mean loss and, if asked, dL/dhidden (fp32, [N, D])."""
    n = hidden.shape[0]
    running_max = hidden.new_full((n,), float("-inf"), dtype=torch.float32)
    running_sum = hidden.new_zeros((n,), dtype=torch.float32)
    grad = hidden.new_zeros(hidden.shape, dtype=torch.float32) if need_grad else None
    for start in range(0, weight.shape[0], chunk):
        w_chunk = weight[start : start + chunk]
        logits = F.linear(hidden, w_chunk, None if bias is None else bias[start : start + chunk]).float()
        new_max = torch.maximum(running_max, logits.amax(dim=1))
        rescale = torch.exp(running_max - new_max)  # exp(-inf) = 0 on the first chunk
        probs = logits.sub_(new_max[:, None]).exp_()  # in place: no second [N, chunk] buffer
        running_sum.mul_(rescale).add_(probs.sum(dim=1))
        if grad is not None:
            grad.mul_(rescale[:, None]).add_(probs.to(w_chunk.dtype) @ w_chunk)
        running_max = new_max
    target_rows = weight[targets]
    # rounded to the head's dtype like the chunk logits, so lse and the target logit agree
    target_logits = (hidden.float() * target_rows.float()).sum(dim=1)
    if bias is not None:
        target_logits = target_logits + bias[targets].float()
    target_logits = target_logits.to(weight.dtype).float()
    loss = (running_max + running_sum.log() - target_logits).mean()
    if grad is None:
        return loss, None
    grad = (grad / running_sum[:, None] - target_rows.float()) / n
    return loss, grad


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Loss in the forward pass, its hidden-state gradient computed there too (the weight is frozen)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk):  # type: ignore[override]
        loss, grad = _chunked_loss_and_grad(hidden, weight, bias, targets, chunk, need_grad=True)
        ctx.save_for_backward(grad)
        ctx.hidden_dtype = hidden.dtype
        return loss

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return (grad * grad_output).to(ctx.hidden_dtype), None, None, None, None

"""The chunked loss through a frozen output layer equals the plain full-logit loss, value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from affectgpt.model.fused_loss import can_fuse, output_cross_entropy


def frozen_head(vocab: int, dim: int, bias: bool, dtype=torch.float32, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    head = nn.Linear(dim, vocab, bias=bias).to(dtype)
    nn.init.normal_(head.weight, std=0.5)  # large logits: exercises the running-max rescaling
    if bias:
        nn.init.normal_(head.bias, std=2.0)
    head.requires_grad_(False)
    return head


def loss_and_grad(hidden: torch.Tensor, head: nn.Module, targets: torch.Tensor, chunk: int):
    h = hidden.clone().requires_grad_()
    loss = output_cross_entropy(h, head, targets, chunk)
    loss.backward()
    return loss.detach(), h.grad


@pytest.mark.parametrize("chunk", [1, 7, 256, 1000, 5000])
@pytest.mark.parametrize("bias", [False, True])
def test_chunked_equals_plain_loss_and_hidden_gradient(chunk, bias):
    head = frozen_head(vocab=1000, dim=24, bias=bias)
    hidden = torch.randn(37, 24) * 3
    targets = torch.randint(0, 1000, (37,))
    assert can_fuse(head)
    plain_loss, plain_grad = loss_and_grad(hidden, head, targets, chunk=0)
    torch.testing.assert_close(plain_loss, F.cross_entropy(head(hidden), targets))
    loss, grad = loss_and_grad(hidden, head, targets, chunk)
    torch.testing.assert_close(loss, plain_loss, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(grad, plain_grad, rtol=1e-5, atol=1e-7)


def test_gradient_flows_upstream_and_scales_with_the_outer_loss():
    head = frozen_head(vocab=500, dim=16, bias=False)
    torch.manual_seed(1)
    x, targets = torch.randn(9, 8), torch.randint(0, 500, (9,))
    grads = []
    for chunk in (0, 64):
        torch.manual_seed(2)
        layer = nn.Linear(8, 16)
        (2.5 * output_cross_entropy(layer(x), head, targets, chunk)).backward()  # grad_output 2.5
        grads.append(layer.weight.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)
    assert head.weight.grad is None


def test_evaluation_without_grad_gives_the_same_loss():
    head = frozen_head(vocab=800, dim=12, bias=True)
    hidden, targets = torch.randn(20, 12), torch.randint(0, 800, (20,))
    with torch.no_grad():
        torch.testing.assert_close(
            output_cross_entropy(hidden, head, targets, 100), output_cross_entropy(hidden, head, targets, 0)
        )


def test_bfloat16_head_matches_the_plain_bfloat16_path():
    head = frozen_head(vocab=3000, dim=32, bias=False, dtype=torch.bfloat16)
    hidden = torch.randn(16, 32, dtype=torch.bfloat16)
    targets = torch.randint(0, 3000, (16,))
    plain_loss, plain_grad = loss_and_grad(hidden, head, targets, chunk=0)
    loss, grad = loss_and_grad(hidden, head, targets, chunk=512)
    assert grad.dtype == torch.bfloat16
    torch.testing.assert_close(loss, plain_loss, rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(grad.float(), plain_grad.float(), rtol=0.05, atol=1e-3)


def test_trainable_or_partitioned_heads_take_the_plain_path():
    trainable = nn.Linear(8, 50)
    assert not can_fuse(trainable)
    hidden, targets = torch.randn(4, 8), torch.randint(0, 50, (4,))
    output_cross_entropy(hidden, trainable, targets, chunk=16).backward()
    assert trainable.weight.grad is not None and trainable.weight.grad.abs().sum() > 0

    zero3 = frozen_head(vocab=50, dim=8, bias=False)
    zero3.weight.ds_id = 0  # what DeepSpeed ZeRO-3 puts on a partitioned parameter
    assert not can_fuse(zero3)
    assert not can_fuse(nn.Sequential(frozen_head(vocab=50, dim=8, bias=False)))

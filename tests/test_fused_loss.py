"""The chunked loss through a frozen output layer: value and hidden-state gradient against cross-entropy written out
in float64 (loss = mean(lse - target logit), dL/dh = (softmax - onehot) W / N), the path rules of can_fuse, and the
work it saves (the gradient accumulated only when one is needed)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from affectgpt.model.fused_loss import can_fuse, output_cross_entropy

FP32_U = 2.0**-24  # fp32 unit roundoff


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


def float64_reference(hidden: torch.Tensor, head: nn.Linear, targets: torch.Tensor):
    """Cross-entropy by its definition, in float64: (loss, dL/dhidden, the fp32 rounding budget of a probability)."""
    w = head.weight.double()
    logits = hidden.double() @ w.T + (0 if head.bias is None else head.bias.double())
    lse = torch.logsumexp(logits, dim=1)
    loss = (lse - logits[torch.arange(len(targets)), targets]).mean()
    onehot = F.one_hot(targets, w.shape[0]).double()
    grad = (logits.softmax(dim=1) - onehot) @ w / len(targets)
    # fp32 error of one logit (a D-term dot product) + of lse (a V-term sum, random-walk estimate sqrt(V) u)
    d, v = w.shape[1], w.shape[0]
    eps = (logits.abs().max().item() * math.sqrt(d) + math.sqrt(v)) * FP32_U
    return loss, grad, eps


@pytest.mark.parametrize("chunk", [1, 7, 256, 1000, 5000])
@pytest.mark.parametrize("bias", [False, True])
def test_chunked_loss_and_hidden_gradient_equal_the_float64_definition(chunk, bias):
    head = frozen_head(vocab=1000, dim=24, bias=bias)
    torch.manual_seed(1)
    hidden = torch.randn(37, 24) * 3
    targets = torch.randint(0, 1000, (37,))
    assert can_fuse(head) is True
    ref_loss, ref_grad, eps = float64_reference(hidden, head, targets)
    loss, grad = loss_and_grad(hidden, head, targets, chunk)
    assert loss.dtype == torch.float32 and grad.dtype == torch.float32
    # the loss is a mean of lse - logit: absolute error <= eps; 4x margin
    assert abs(loss.double() - ref_loss).item() <= 4 * eps
    # each probability is off by <= eps relative, so sum_v |dp_v| |W_v| / N <= eps max|W| / N; 4x margin
    atol = 4 * eps * head.weight.abs().max().item() / len(targets)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=0, atol=atol)
    plain_loss, plain_grad = loss_and_grad(hidden, head, targets, chunk=0)  # torch's own path, same budget
    assert abs(plain_loss.double() - ref_loss).item() <= 4 * eps
    torch.testing.assert_close(plain_grad.double(), ref_grad, rtol=0, atol=atol)


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
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)  # fp32 vs fp32, both ~1e-6 from exact
    assert head.weight.grad is None
    # the chain rule by hand: dL/dW_layer = (2.5 dL/dh)^T x with dL/dh from the float64 definition
    torch.manual_seed(2)
    layer = nn.Linear(8, 16)
    _, ref_grad, eps = float64_reference(layer(x).detach(), head, targets)
    # per entry: 2.5 * sum_n |dg_n| |x_n| <= 2.5 * N * (4 eps max|W| / N) * max|x| (the bound of the test above)
    atol = 10 * eps * head.weight.abs().max().item() * x.abs().max().item()
    torch.testing.assert_close(grads[1].double(), 2.5 * ref_grad.T @ x.double(), rtol=0, atol=atol)


def test_evaluation_without_grad_gives_the_same_loss():
    head = frozen_head(vocab=800, dim=12, bias=True)
    hidden, targets = torch.randn(20, 12), torch.randint(0, 800, (20,))
    ref_loss, _, eps = float64_reference(hidden, head, targets)
    with torch.no_grad():
        loss = output_cross_entropy(hidden, head, targets, 100)
    assert loss.grad_fn is None and abs(loss.double() - ref_loss).item() <= 4 * eps
    plain = output_cross_entropy(hidden, head, targets, 0)  # hidden without requires_grad, grad mode on
    chunked = output_cross_entropy(hidden, head, targets, 100)
    assert abs(chunked.double() - ref_loss).item() <= 4 * eps and abs(plain.double() - ref_loss).item() <= 4 * eps


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_the_gradient_is_accumulated_only_when_one_is_needed():
    """Per chunk: logits = h W_c^T (2 N D V flops over the vocabulary); g += p W_c only when dL/dh is needed."""
    n, d, v = 20, 12, 800
    head = frozen_head(vocab=v, dim=d, bias=True)
    hidden, targets = torch.randn(n, d), torch.randint(0, v, (n,))
    one_pass = 2 * n * d * v
    assert flops(lambda: output_cross_entropy(hidden.clone().requires_grad_(), head, targets, 100)) == 2 * one_pass
    assert flops(lambda: output_cross_entropy(hidden, head, targets, 100)) == one_pass  # nothing needs dL/dh
    with torch.no_grad():
        assert flops(lambda: output_cross_entropy(hidden.clone().requires_grad_(), head, targets, 100)) == one_pass


@pytest.mark.parametrize("chunk", [1, 2, 64])
def test_any_positive_chunk_takes_the_chunked_path(chunk):
    head = frozen_head(vocab=100, dim=8, bias=False)
    hidden = torch.randn(5, 8, requires_grad=True)
    targets = torch.randint(0, 100, (5,))
    assert type(output_cross_entropy(hidden, head, targets, chunk).grad_fn).__name__ == "_ChunkedCrossEntropyBackward"
    for plain in (0, -1):
        assert type(output_cross_entropy(hidden, head, targets, plain).grad_fn).__name__ == "NllLossBackward0"


def test_bfloat16_head_matches_the_plain_bfloat16_path():
    head = frozen_head(vocab=3000, dim=32, bias=False, dtype=torch.bfloat16)
    hidden = torch.randn(16, 32, dtype=torch.bfloat16)
    targets = torch.randint(0, 3000, (16,))
    plain_loss, plain_grad = loss_and_grad(hidden, head, targets, chunk=0)
    loss, grad = loss_and_grad(hidden, head, targets, chunk=512)
    assert grad.dtype == torch.bfloat16
    # bf16 logits (8-bit mantissa, u = 2^-9 ~ 2e-3) rounded in a different order: loss to ~1e-2, grads to a few %
    torch.testing.assert_close(loss, plain_loss, rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(grad.float(), plain_grad.float(), rtol=0.05, atol=1e-3)


def test_trainable_or_partitioned_heads_take_the_plain_path():
    trainable = nn.Linear(8, 50)
    assert can_fuse(trainable) is False
    hidden, targets = torch.randn(4, 8), torch.randint(0, 50, (4,))
    output_cross_entropy(hidden, trainable, targets, chunk=16).backward()
    assert trainable.weight.grad is not None and trainable.weight.grad.abs().sum() > 0

    trainable_bias = frozen_head(vocab=50, dim=8, bias=True)
    trainable_bias.bias.requires_grad_(True)  # frozen weight, trainable bias: the chunked path has no bias gradient
    assert can_fuse(trainable_bias) is False
    output_cross_entropy(hidden, trainable_bias, targets, chunk=16).backward()
    assert trainable_bias.bias.grad is not None and trainable_bias.bias.grad.abs().sum() > 0
    assert can_fuse(frozen_head(vocab=50, dim=8, bias=True)) is True  # frozen bias too: fused

    zero3 = frozen_head(vocab=50, dim=8, bias=False)
    zero3.weight.ds_id = 0  # what DeepSpeed ZeRO-3 puts on a partitioned parameter
    assert can_fuse(zero3) is False
    assert can_fuse(nn.Sequential(frozen_head(vocab=50, dim=8, bias=False))) is False

"""GRPO advantage and loss math against direct reference computations (explicit loops, float64).

Everything runs in float64, so comparisons hold to ~1e-12 (sums of a few dozen terms of size ~1).
"""

from __future__ import annotations

import math

import pytest
import torch

from affectgpt.train.grpo_math import (
    aggregate,
    clipped_surrogate,
    group_advantages,
    grpo_loss,
    kl_k3,
    zero_variance_groups,
)

TOL = {"rtol": 1e-12, "atol": 1e-12}


def _close(a, b) -> None:
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), **TOL)


def _ref_advantages(rewards: list[list[float]], scale: str, eps: float) -> list[float]:
    flat = [r for group in rewards for r in group]
    batch_mean = sum(flat) / len(flat)
    batch_std = math.sqrt(sum((r - batch_mean) ** 2 for r in flat) / len(flat))
    out = []
    for group in rewards:
        mean = sum(group) / len(group)
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / len(group))  # population std
        divisor = {"group": std + eps, "batch": batch_std + eps, "none": 1.0}[scale]
        out.extend((r - mean) / divisor for r in group)
    return out


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_advantages_equal_the_reference_loops(scale):
    rewards = torch.rand(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = _ref_advantages(rewards.tolist(), scale, eps=1e-4)
    _close(group_advantages(rewards, scale, eps=1e-4), expected)


def test_advantages_hand_cases():
    # mean 0.5, population std 0.5: +-0.5 / 0.5 = +-1 (the unbiased std would give +-0.866)
    one = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    _close(group_advantages(one, "group", eps=0.0), [1, -1, -1, 1])
    # group 2 has zero variance: advantage 0; the batch std mixes both groups (std of [1,0,0,1,3,3,3,3] = sqrt(1.6875))
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 3.0, 3.0, 3.0]], dtype=torch.float64)
    _close(group_advantages(rewards, "group")[4:], [0.0] * 4)
    centred = (0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0)
    _close(group_advantages(rewards, "batch", eps=0.0), [x / math.sqrt(1.6875) for x in centred])
    _close(group_advantages(rewards, "none"), [0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])
    _close(group_advantages(torch.tensor([[0.7], [0.2]], dtype=torch.float64), "group"), [0.0, 0.0])  # G = 1
    assert zero_variance_groups(rewards).tolist() == [False, True]


def test_advantage_errors():
    with pytest.raises(ValueError, match="scale_rewards='global' is not supported; choose one of: group, batch, none"):
        group_advantages(torch.zeros(2, 2), "global")
    with pytest.raises(ValueError, match=r"must be \[prompts, group size\]"):
        group_advantages(torch.zeros(4))
    with pytest.raises(ValueError, match="NaN/inf"):
        group_advantages(torch.tensor([[1.0, float("nan")]]))


def _case(seed: int = 0):
    """logp, old_logp [4, 5], mask with lengths 5, 3, 1, 4, advantages [4]."""
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(4, 5, generator=g, dtype=torch.float64) * 3
    old = logp + (torch.rand(4, 5, generator=g, dtype=torch.float64) - 0.5) * 0.8  # ratios ~ exp(+-0.4): some clip
    mask = torch.zeros(4, 5, dtype=torch.float64)
    for i, n in enumerate((5, 3, 1, 4)):
        mask[i, :n] = 1
    adv = torch.tensor([1.3, -0.7, 0.4, -1.1], dtype=torch.float64)
    return logp, old, mask, adv


def _ref_loss(logp, old, mask, adv, eps, aggregation, beta=0.0, ref=None):
    """Explicit loops: -min(r A, clip(r) A) + beta k3 per token; token mean, or mean of per-sequence means."""
    seq_means, total, count, clipped = [], 0.0, 0, 0
    for i in range(len(logp)):
        terms = []
        for t in range(len(logp[i])):
            if mask[i][t] == 0:
                continue
            r = math.exp(logp[i][t] - old[i][t])
            a = adv[i]
            term = -min(r * a, min(max(r, 1 - eps), 1 + eps) * a)
            if beta:
                d = ref[i][t] - logp[i][t]
                term += beta * (math.exp(d) - d - 1)
            terms.append(term)
            clipped += (r > 1 + eps and a > 0) or (r < 1 - eps and a < 0)
        total, count = total + sum(terms), count + len(terms)
        seq_means.append(sum(terms) / len(terms))
    loss = total / count if aggregation == "token" else sum(seq_means) / len(seq_means)
    return loss, clipped / count


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_clipped_surrogate_equals_the_reference_loops(aggregation):
    logp, old, mask, adv = _case()
    loss, stats = clipped_surrogate(logp, old, adv, mask, eps_clip=0.2, aggregation=aggregation)
    ref_loss, ref_clip = _ref_loss(logp.tolist(), old.tolist(), mask.tolist(), adv.tolist(), 0.2, aggregation)
    _close(loss, ref_loss)
    assert 0 < ref_clip < 1  # the case exercises both branches
    _close(stats["clip_fraction"], ref_clip)
    flat = zip(logp.flatten().tolist(), old.flatten().tolist(), mask.flatten().tolist())
    ratios = [math.exp(a - b) for a, b, k in flat if k]
    _close(stats["ratio_mean"], sum(ratios) / len(ratios))
    assert int(stats["tokens"]) == 13


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_on_policy_gradient_is_reinforce_with_group_baseline_wrt_logprobs(aggregation):
    """mu = 1 (old = logp.detach()), beta = 0: ratio 1, nothing clipped, d loss / d logp_it = -A_i / normaliser."""
    logp, _, mask, _ = _case()
    adv = group_advantages(torch.tensor([[0.2, 0.9], [0.5, 0.1]], dtype=torch.float64))
    logp.requires_grad_(True)
    loss, stats = grpo_loss(logp, logp.detach(), adv, mask, eps_clip=0.2, beta=0.0, aggregation=aggregation)
    loss.backward()
    lengths = mask.sum(1)
    expected = torch.zeros_like(mask)
    for i in range(4):
        for t in range(5):
            if mask[i, t]:
                expected[i, t] = -adv[i] / (13 if aggregation == "token" else 4 * lengths[i])
    _close(logp.grad, expected)
    assert float(stats["clip_fraction"]) == 0.0 and float(stats["ratio_mean"]) == 1.0


def _policy(seed: int = 1):
    """A small softmax policy: logits = Linear(x) over a 7-token vocabulary; fixed features and tokens."""
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Linear(3, 7).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(4, 5, 3, generator=g, dtype=torch.float64)
    tokens = torch.randint(0, 7, (4, 5), generator=g)
    return net, x, tokens


def _logp(net, x, tokens):
    return torch.log_softmax(net(x), dim=-1).gather(-1, tokens[..., None])[..., 0]


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_on_policy_gradient_of_a_model_is_reinforce(aggregation):
    """Parameter gradient = -(1/n) sum_i A_i sum_t grad log pi(o_it) (token), or -(1/N) sum_i A_i mean_t ...
    (sequence); the reference is built from one autograd.grad per token."""
    net, x, tokens = _policy()
    _, _, mask, _ = _case()
    adv = group_advantages(torch.tensor([[0.2, 0.9], [0.5, 0.1]], dtype=torch.float64))
    logp = _logp(net, x, tokens)
    loss, _ = grpo_loss(logp, logp.detach(), adv, mask, aggregation=aggregation)
    grads = torch.autograd.grad(loss, list(net.parameters()))
    expected = [torch.zeros_like(p) for p in net.parameters()]
    lengths = mask.sum(1)
    for i in range(4):
        for t in range(5):
            if not mask[i, t]:
                continue
            one = torch.autograd.grad(_logp(net, x, tokens)[i, t], list(net.parameters()))
            weight = -adv[i] / (13 if aggregation == "token" else 4 * lengths[i])
            expected = [e + weight * o for e, o in zip(expected, one)]
    for got, want in zip(grads, expected):
        _close(got, want)


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_global_normaliser_makes_split_batches_average_to_the_whole(aggregation):
    """Two 'processes' with 2 rows each and normaliser = n_global / 2: DDP's mean of their gradients is the
    gradient of the whole batch on one process."""
    net, x, tokens = _policy()
    logp_all, old, mask, adv = _case()
    old = _logp(net, x, tokens).detach() + (old - logp_all)  # ratios away from 1: clipping active in places

    def grad(rows, normaliser=None):
        loss, _ = grpo_loss(
            _logp(net, x, tokens)[rows],
            old[rows],
            adv[rows],
            mask[rows],
            aggregation=aggregation,
            normaliser=normaliser,
        )
        return torch.autograd.grad(loss, list(net.parameters()))

    whole = grad(slice(0, 4))
    n_global = 13 if aggregation == "token" else 4
    parts = [grad(slice(0, 2), n_global / 2), grad(slice(2, 4), n_global / 2)]
    for w, a, b in zip(whole, *parts):
        _close((a + b) / 2, w)


def test_clipped_ratios_in_the_advantage_direction_get_no_gradient():
    eps = 0.2
    ratio = torch.tensor([[1.5, 0.5, 1.5, 0.5, 1.1]], dtype=torch.float64)
    old = torch.full_like(ratio, -2.0)
    logp = (old + ratio.log()).requires_grad_(True)
    mask = torch.ones_like(ratio)
    for adv, zero in ((1.0, [True, False, True, False, False]), (-1.0, [False, True, False, True, False])):
        logp.grad = None
        # each token its own sequence of one, so one advantage sign per call: rows [5, 1]
        advantages = torch.full((5,), adv, dtype=torch.float64)
        rows = (logp.reshape(5, 1), old.reshape(5, 1), advantages, mask.reshape(5, 1))
        loss, stats = clipped_surrogate(*rows, eps_clip=eps)
        loss.backward()
        # unclipped branch: d(-r A)/d logp = -A r, over 5 tokens
        expected = [0.0 if z else -adv * float(r) / 5 for z, r in zip(zero, ratio[0])]
        _close(logp.grad[0], expected)
        _close(stats["clip_fraction"], 2 / 5)
    _, stats = clipped_surrogate(
        logp.reshape(5, 1), old.reshape(5, 1), torch.zeros(5, dtype=torch.float64), mask.reshape(5, 1), eps_clip=eps
    )
    _close(stats["clip_fraction"], 0.0)  # advantage 0: no direction, nothing counts as clipped


def test_kl_k3_values_and_zero_at_the_reference():
    logp = torch.log(torch.tensor([[0.25, 0.5, 0.1]], dtype=torch.float64)).requires_grad_(True)
    ref = torch.log(torch.tensor([[0.5, 0.5, 0.1]], dtype=torch.float64))
    mask = torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64)
    kl = kl_k3(logp, ref, mask)
    _close(kl, [[2 - math.log(2) - 1, 0.0, 0.0]])  # ref - logp = ln 2: e^{ln 2} - ln 2 - 1; masked token 0
    kl.sum().backward()
    _close(logp.grad, [[1 - 2.0, 0.0, 0.0]])  # d/dlogp = 1 - exp(ref - logp)
    same = torch.randn(2, 4, dtype=torch.float64).requires_grad_(True)
    kl = kl_k3(same, same.detach(), torch.ones(2, 4, dtype=torch.float64))
    kl.sum().backward()
    _close(kl, torch.zeros(2, 4))
    _close(same.grad, torch.zeros(2, 4))


def test_kl_k3_is_unbiased_for_the_exact_kl():
    """E_pi[k3] = KL(pi || ref) exactly: enumerate a 5-outcome categorical instead of sampling."""
    pi = torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05], dtype=torch.float64)
    ref = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.2], dtype=torch.float64)
    k3 = kl_k3(pi.log()[None], ref.log()[None], torch.ones(1, 5, dtype=torch.float64))[0]
    _close((pi * k3).sum(), sum(p * math.log(p / q) for p, q in zip(pi.tolist(), ref.tolist())))


@pytest.mark.parametrize("aggregation", ["token", "sequence"])
def test_grpo_loss_with_kl_equals_the_reference_loops(aggregation):
    logp, old, mask, adv = _case()
    ref = logp + 0.3 * torch.sin(torch.arange(20, dtype=torch.float64)).reshape(4, 5)
    loss, stats = grpo_loss(logp, old, adv, mask, eps_clip=0.2, beta=0.05, ref_logp=ref, aggregation=aggregation)
    lists = (x.tolist() for x in (logp, old, mask, adv))
    expected, _ = _ref_loss(*lists, 0.2, aggregation, 0.05, ref.tolist())
    _close(loss, expected)
    _close(stats["kl"], kl_k3(logp, ref, mask).sum() / 13)
    no_kl, stats0 = grpo_loss(logp, old, adv, mask, beta=0.0, aggregation=aggregation)
    _close(no_kl, clipped_surrogate(logp, old, adv, mask, aggregation=aggregation)[0])
    assert "kl" not in stats0


def test_kl_to_an_identical_reference_leaves_the_gradient_unchanged():
    net, x, tokens = _policy()
    _, old, mask, adv = _case()
    grads = []
    for beta in (0.0, 0.5):
        logp = _logp(net, x, tokens)
        loss, stats = grpo_loss(logp, old, adv, mask, beta=beta, ref_logp=logp.detach())
        grads.append(torch.autograd.grad(loss, list(net.parameters())))
    for a, b in zip(*grads):
        _close(a, b)
    _close(stats["kl"], 0.0)


def test_loss_errors():
    logp, old, mask, adv = _case()
    with pytest.raises(ValueError, match="beta > 0 needs ref_logp"):
        grpo_loss(logp, old, adv, mask, beta=0.1)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        grpo_loss(logp, old, adv, mask, beta=-0.1)
    with pytest.raises(ValueError, match="aggregation='mean' is not supported; choose one of: token, sequence"):
        aggregate(logp, mask, "mean")
    with pytest.raises(ValueError, match="normaliser must be > 0"):
        aggregate(logp, mask, "token", normaliser=0)
    with pytest.raises(ValueError, match="eps_clip must be in"):
        clipped_surrogate(logp, old, adv, mask, eps_clip=1.5)
    with pytest.raises(ValueError, match=r"advantages \(3,\) must be \[4\]"):
        clipped_surrogate(logp, old, adv[:3], mask)


def test_aggregate_normaliser_and_empty_rows():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    _close(aggregate(per_token, mask, "token"), (1 + 2 + 4) / 3)
    _close(aggregate(per_token, mask, "token", normaliser=7.0), 1.0)
    _close(aggregate(per_token, mask, "sequence"), (1.5 + 4 + 0) / 3)  # the empty (padding) row counts 0
    _close(aggregate(per_token, mask, "sequence", normaliser=5.5), 1.0)


def test_single_token_stats_and_defaults():
    """One masked token: stats are that token's values (not halved); the default eps_clip is the issue's 0.2."""
    old = torch.tensor([[-1.0, -2.0]], dtype=torch.float64)
    logp = (old + torch.log(torch.tensor([[1.3, 1.0]], dtype=torch.float64))).requires_grad_(True)
    mask = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    adv = torch.tensor([1.0], dtype=torch.float64)
    loss, stats = clipped_surrogate(logp, old, adv, mask)  # ratio 1.3 > 1 + 0.2 with A > 0: clipped
    loss.backward()
    _close(stats["clip_fraction"], 1.0)
    _close(stats["ratio_mean"], 1.3)
    _close(logp.grad, torch.zeros(1, 2))
    _close(loss, -1.2)  # -clip(1.3) * A
    ref = old.clone()  # ref - logp = -log 1.3 on the one token
    _, stats = grpo_loss(logp, old, adv, mask, beta=0.1, ref_logp=ref)
    _close(stats["kl"], 1 / 1.3 + math.log(1.3) - 1)


def test_eps_clip_zero_and_on_policy_counts_nothing_as_clipped():
    logp, _, mask, adv = _case()
    loss, stats = clipped_surrogate(logp, logp.detach(), adv, mask, eps_clip=0.0)  # ratio exactly 1
    _close(stats["clip_fraction"], 0.0)
    _close(loss, -(adv[:, None] * mask).sum() / 13)
    with pytest.raises(ValueError, match="eps_clip must be in"):
        clipped_surrogate(logp, logp.detach(), adv, mask, eps_clip=-0.1)


def test_advantages_of_empty_and_single_reward():
    with pytest.raises(ValueError, match="non-empty"):
        group_advantages(torch.zeros(0, 4))
    _close(group_advantages(torch.tensor([[0.5]], dtype=torch.float64)), [0.0])

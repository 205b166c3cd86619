"""Shared-prefix GRPO rollouts and log-probs on a tiny random AffectGPT built from a real synthetic MER2025 folder.

Tolerances: the same tokens go through differently shaped fp32 matmuls (batch of 12 rows vs 3, cached vs full
attention, chunked vs full log-sum-exp), which changes sums by ~1e-6 relative; log-probs of the random
151,936-token LLM are around -12 to -20, so 1e-4 absolute leaves a 5x margin over the ~2e-5 observed.
"""

from __future__ import annotations

import copy

import pytest
import torch

from affectgpt.config import Config
from affectgpt.data import synthetic
from affectgpt.data.dataset import AffectDataset, Collator
from affectgpt.data.mer2025 import read_mer2025
from affectgpt.infer.rollout import (
    NUCLEUS_CANDIDATES,
    logprobs_of,
    rollout,
    row_seed,
    sample_top_p,
    stop_token_ids,
)
from affectgpt.model.affectgpt import STOP_STRING
from affectgpt.model.build import build_model

LOGP_ATOL = 1e-4
G, SEED, NEW = 4, 7, 10


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(model, tokenizer, raw-media generation batch of 3, the same batch with precomputed features)."""
    root = synthetic.generate(tmp_path_factory.mktemp("rollout"), n=4, seed=0, unibench=False)
    cfg = Config()
    cfg.data.root = str(root)
    model, tok = build_model(cfg)
    records = read_mer2025(root, "mercaptionplus")
    dataset = AffectDataset(records, cfg.data, cfg.model, tok, split="test")
    raw = Collator(tok, left_pad=True)([dataset[i] for i in range(len(records))])
    feats = {k: v for k, v in raw.items() if k not in ("faces", "audio")}
    with torch.no_grad():
        feats.update(face_feats=model.visual_encoder(raw["faces"]), audio_feats=model.audio_encoder(raw["audio"]))
    assert len(set(raw["attention_mask"].sum(1).tolist())) > 1  # left padding is exercised
    return model, tok, raw, feats


def _rows(batch, rows):
    """The sub-batch of prompts `rows` (tensors and per-sample lists sliced)."""
    pick = {list: lambda v: [v[i] for i in rows]}
    return {k: v[rows] if torch.is_tensor(v) else pick.get(type(v), lambda v: v)(v) for k, v in batch.items()}


def _check_same_tokens(got, want):
    assert torch.equal(got.completion_ids, want.completion_ids)
    assert torch.equal(got.lengths, want.lengths) and got.texts == want.texts and got.names == want.names
    mask = want.completion_mask
    torch.testing.assert_close(got.logprobs[mask], want.logprobs[mask], rtol=0, atol=LOGP_ATOL)


def test_one_group_call_equals_group_size_one_calls_and_other_groupings(demo):
    model, _, _, feats = demo
    whole = rollout(model, feats, G, seed=SEED, max_new_tokens=NEW)
    assert whole.completion_ids.shape == (3 * G, NEW) and whole.members == [0, 1, 2, 3] * 3
    assert len({tuple(row) for row in whole.completion_ids.tolist()}) == 3 * G  # every row sampled its own tokens
    for g in range(G):  # G independent calls with group size 1 and the same seeds
        single = rollout(model, feats, 1, seed=SEED, max_new_tokens=NEW, first_member=g)
        rows = [i * G + g for i in range(3)]
        assert single.members == [g] * 3
        _check_same_tokens(single, _subset(whole, rows))
    for i in range(3):  # each prompt alone: no padding, batch of G rows
        alone = rollout(model, _rows(feats, [i]), G, seed=SEED, max_new_tokens=NEW)
        _check_same_tokens(alone, _subset(whole, list(range(i * G, (i + 1) * G))))
    other = rollout(model, feats, G, seed=SEED + 1, max_new_tokens=NEW)
    assert not torch.equal(other.completion_ids, whole.completion_ids)


def _subset(r, rows):
    return type(r)(
        [r.names[i] for i in rows],
        [r.members[i] for i in rows],
        r.group_size,
        r.completion_ids[rows],
        r.completion_mask[rows],
        r.logprobs[rows],
        r.lengths[rows],
        r.stopped[rows],
        [r.texts[i] for i in rows],
    )


def _reference_nucleus(logits: torch.Tensor, u: float, temperature: float, top_p: float) -> int:
    """The documented rule in float64: sort descending, keep while the mass before a token is < top_p, then the
    first kept token whose cumulative mass exceeds u x (kept mass)."""
    probs, order = torch.softmax(logits.double() / temperature, dim=-1).sort(descending=True)
    cdf = probs.cumsum(0)
    n_keep = max(1, int(((cdf - probs) < top_p).sum()))
    target = u * float(cdf[n_keep - 1])
    j = min(int((cdf[:n_keep] <= target).sum()), n_keep - 1)
    return int(order[j])


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 0.9), (0.7, 0.5)])
def test_rollout_equals_a_cache_free_reference_sampler(demo, temperature, top_p):
    """Each token from a full forward of prompt + tokens so far (no KV cache, no padding), the row's uniforms
    from row_seed, and the nucleus rule above."""
    model, _, _, feats = demo
    model.eval()
    out = rollout(model, feats, 2, seed=SEED, max_new_tokens=6, temperature=temperature, top_p=top_p)
    lm = model.causal_lm
    for i in range(3):
        one = _rows(feats, [i])
        keep = one["attention_mask"][0].bool()
        with torch.no_grad():
            prompt = model.embed(one, one["input_ids"][:, keep])
        for g in range(2):
            u = torch.rand(6, generator=torch.Generator().manual_seed(row_seed(SEED, feats["names"][i], g)))
            tokens, logps = [], []
            for t in range(6):
                with torch.no_grad():
                    embeds = torch.cat([prompt, lm.get_input_embeddings()(torch.tensor([tokens], dtype=torch.long))], 1)
                    logits = lm(inputs_embeds=embeds, logits_to_keep=1).logits[0, -1].float()
                tokens.append(_reference_nucleus(logits, float(u[t]), temperature, top_p))
                logps.append(float(torch.log_softmax(logits / temperature, -1)[tokens[-1]]))  # before truncation
            row = i * 2 + g
            assert out.completion_ids[row].tolist() == tokens
            torch.testing.assert_close(out.logprobs[row], torch.tensor(logps), rtol=0, atol=LOGP_ATOL)


def test_encoders_heads_and_prefill_run_once_per_prompt(demo):
    model, _, raw, _ = demo
    seen: dict[str, list[tuple[int, ...]]] = {}

    def record(name):
        return lambda module, args, kwargs: seen.setdefault(name, []).append(
            tuple((kwargs.get("inputs_embeds") if kwargs.get("inputs_embeds") is not None else args[0]).shape)
        )

    modules = {"visual": model.visual_encoder, "audio": model.audio_encoder, "decoder": model.causal_lm.get_decoder()}
    modules.update({f"heads.{n}": m for n, m in model.heads.named_modules() if isinstance(m, torch.nn.Linear)})
    hooks = [m.register_forward_pre_hook(record(n), with_kwargs=True) for n, m in modules.items()]
    try:
        out = rollout(model, raw, G, seed=SEED, max_new_tokens=5)
    finally:
        for h in hooks:
            h.remove()
    assert out.completion_ids.shape[0] == 3 * G
    decoder = seen.pop("decoder")
    prefill = [s for s in decoder if s[1] > 1]
    assert prefill == [(3, raw["attention_mask"].shape[1], decoder[0][2])]  # one prefill, B rows
    assert len(decoder) == 5 and all(s[0] == 3 * G and s[1] == 1 for s in decoder[1:])  # 4 decode steps of B*G rows
    assert {"visual", "audio", "heads.affectgpt_proj", "heads.audio_llama_proj", "heads.multi_llama_proj"} <= set(seen)
    for name, shapes in seen.items():  # every encoder / head call saw the B prompts, once each
        assert [s[0] for s in shapes] == [3] * len(shapes), name
    assert len(seen["visual"]) == 1 and len(seen["audio"]) == 1 and len(seen["heads.affectgpt_proj"]) == 1


def test_stops_on_every_eos_id_and_on_the_stop_string(demo):
    """A copy of the model whose frozen output layer has a bias favouring <|endoftext|>/<|im_end|>, "#" and the
    special (not eos) <|im_start|>. Texts follow AffectGPT._postprocess: cut at eos, decode without special tokens,
    cut at "###", strip."""
    model, tok, _, feats = demo
    assert stop_token_ids(tok) == [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    biased = copy.deepcopy(model)
    old = biased.causal_lm.get_output_embeddings()
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.zero_()
        for token, bias in (("<|im_end|>", 13.0), ("<|endoftext|>", 13.0), ("#", 16.0), ("<|im_start|>", 12.0)):
            head.bias[tok.convert_tokens_to_ids(token)] = bias
    head.requires_grad_(False)
    biased.causal_lm.set_output_embeddings(head)
    out = rollout(biased, feats, G, seed=3, max_new_tokens=16)
    eos = set(stop_token_ids(tok))
    kinds = set()
    for row, n, stopped, text, mask in zip(
        out.completion_ids.tolist(), out.lengths.tolist(), out.stopped.tolist(), out.texts, out.completion_mask.tolist()
    ):
        assert mask == [True] * n + [False] * (len(row) - n)
        assert all(t == tok.pad_token_id for t in row[n:])
        ids = row[:n]
        assert text == model._postprocess(ids)
        assert not eos & set(ids[:-1])  # nothing stopped earlier
        decoded = [tok.decode(ids[:k], skip_special_tokens=True) for k in (n - 1, n)]
        assert STOP_STRING not in decoded[0]
        if ids[-1] in eos:
            kinds.add("eos")
            assert stopped and text == tok.decode(ids[:-1], skip_special_tokens=True).split(STOP_STRING)[0].strip()
        elif STOP_STRING in decoded[1]:
            kinds.add("###")
            assert stopped and text == decoded[1].split(STOP_STRING)[0].strip()
        else:
            assert not stopped and n == 16
    assert kinds == {"eos", "###"}
    start = tok.convert_tokens_to_ids("<|im_start|>")
    assert any(start in row[:n] for row, n in zip(out.completion_ids.tolist(), out.lengths.tolist()))
    assert (out.lengths < 16).any() and out.completion_ids.shape[1] == int(out.lengths.max())
    biased.eval()  # the bias branch of the chunked log-probs
    lp = logprobs_of(biased, feats, out.completion_ids, out.completion_mask)
    torch.testing.assert_close(lp[out.completion_mask], out.logprobs[out.completion_mask], rtol=0, atol=LOGP_ATOL)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_logprobs_of_equals_the_rollout_and_gradients_reach_lora_and_heads(demo, temperature):
    model, _, _, feats = demo
    out = rollout(model, feats, G, seed=SEED, max_new_tokens=NEW, temperature=temperature)
    model.eval()
    model.zero_grad(set_to_none=True)
    lp = logprobs_of(model, feats, out.completion_ids, out.completion_mask, temperature=temperature)
    mask = out.completion_mask
    torch.testing.assert_close(lp[mask], out.logprobs[mask], rtol=0, atol=LOGP_ATOL)
    assert bool((lp[~mask] == 0).all())
    lp.sum().backward()
    named = dict(model.named_parameters())
    lora_b = [n for n in named if "lora_B" in n]
    assert len(lora_b) == 14
    for n in lora_b:
        assert named[n].grad is not None and bool(named[n].grad.abs().sum() > 0), n
    for n in ("affectgpt_proj", "video_attention_mlp", "audio_llama_proj", "audio_attention_mlp", "multi_llama_proj"):
        grad = getattr(model.heads, n).weight.grad
        assert grad is not None and bool(grad.abs().sum() > 0) and bool(torch.isfinite(grad).all()), n
    assert all(p.grad is None for n, p in named.items() if not p.requires_grad)


def test_logprobs_of_equals_a_direct_forward_and_the_plain_head_path(demo):
    """Row by row: the HF causal LM on prompt ⧺ completion without padding; and the chunked head path equals the
    plain full-logit path in value and gradient."""
    model, _, _, feats = demo
    out = rollout(model, feats, 2, seed=SEED, max_new_tokens=NEW)
    model.eval()
    lm = model.causal_lm
    for row in (0, 3, 5):
        i, n = row // 2, int(out.lengths[row])
        one = _rows(feats, [i])
        with torch.no_grad():
            prompt = model.embed(one, one["input_ids"][:, one["attention_mask"][0].bool()])
            ids = out.completion_ids[row : row + 1, :n]
            logits = lm(inputs_embeds=torch.cat([prompt, lm.get_input_embeddings()(ids)], 1)).logits[0, -n - 1 : -1]
        direct = torch.log_softmax(logits.float(), -1).gather(1, ids.T)[:, 0]
        with torch.no_grad():
            ours = logprobs_of(model, feats, out.completion_ids, out.completion_mask)[row, :n]
        torch.testing.assert_close(ours, direct, rtol=0, atol=LOGP_ATOL)
    results = []
    chunk = model.loss_vocab_chunk
    try:
        for setting in (chunk, 0):
            model.loss_vocab_chunk = setting
            model.zero_grad(set_to_none=True)
            lp = logprobs_of(model, feats, out.completion_ids, out.completion_mask, temperature=0.8)
            (lp * torch.linspace(-1, 1, lp.numel()).reshape(lp.shape)).sum().backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            results.append((lp.detach(), grads))
    finally:
        model.loss_vocab_chunk = chunk
    (fused, fused_grads), (plain, plain_grads) = results
    torch.testing.assert_close(fused, plain, rtol=0, atol=LOGP_ATOL)
    assert fused_grads.keys() == plain_grads.keys()
    # Both paths accumulate in fp32 in different orders (online softmax over 2048-row blocks vs one log-softmax):
    # measured ~1e-5 relative on the LoRA and projection gradients, independent of the thread count. The
    # attention-pooling scorers' gradients are differences of near-equal terms (softmax weights times deviations
    # from the weighted mean), which amplify that ~10x (measured 1.1e-4 on video_attention_mlp). Hence 1e-4 on the
    # whole gradient vector and 1e-3 per tensor; a real difference between the paths gives O(1) errors.
    diff = torch.cat([(g - plain_grads[n]).flatten() for n, g in fused_grads.items()])
    whole = torch.cat([g.flatten() for g in plain_grads.values()])
    assert diff.norm() <= 1e-4 * whole.norm()
    for name, grad in fused_grads.items():
        assert (grad - plain_grads[name]).norm() <= 1e-3 * plain_grads[name].norm() + 1e-9, name


def test_sample_top_p_hand_cases():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.125, 0.125]])).repeat(3, 1)
    u = torch.tensor([0.5, 0.7, 0.99])
    # nucleus top_p 0.7 = {0, 1} renormalised to (2/3, 1/3): u 0.5 -> 0, u 0.7 -> 1, u 0.99 -> 1
    tokens, logp = sample_top_p(logits, u, 1.0, 0.7)
    assert tokens.tolist() == [0, 1, 1]
    torch.testing.assert_close(logp, torch.log(torch.tensor([0.5, 0.25, 0.25])))  # before truncation
    # top_p 0.8: the mass before token 2 is 0.75 < 0.8, so {0, 1, 2} renormalised by 0.875: u 0.99 -> 2
    assert sample_top_p(logits, u, 1.0, 0.8)[0].tolist() == [0, 1, 2]
    assert sample_top_p(logits, u, 1.0, 0.1)[0].tolist() == [0, 0, 0]  # always at least the top token
    # top_p 1: full distribution, cdf (0.5, 0.75, 0.875, 1): u 0.99 -> 3
    assert sample_top_p(logits, u, 1.0, 1.0)[0].tolist() == [0, 1, 3]
    # temperature 2: p ~ sqrt(p) = (0.7071, 0.5, 0.3536, 0.3536) / 1.9142; the log-prob follows
    _, logp = sample_top_p(logits[:1], torch.tensor([0.0]), 2.0, 0.9)
    torch.testing.assert_close(logp, torch.log(torch.tensor([0.5**0.5 / (0.5**0.5 + 0.5 + 2 * 0.125**0.5)])))


def test_sample_top_p_equals_the_sorted_reference_on_every_candidate_path():
    """Rows that each top-k candidate size covers first, and rows that need the full sort."""
    gen = torch.Generator().manual_seed(0)
    scales = torch.tensor([8.0, 2.5, 1.0, 0.2]).repeat_interleave(3)  # peaked .. flat
    logits = torch.randn(12, 5000, generator=gen) * scales[:, None]
    for top_p in (0.5, 0.9, 0.99):
        for _ in range(15):
            u = torch.rand(12, generator=gen)
            tokens, _ = sample_top_p(logits, u, 1.0, top_p)
            assert tokens.tolist() == [_reference_nucleus(logits[r], float(u[r]), 1.0, top_p) for r in range(12)]
    cdf = torch.softmax(logits, -1).sort(descending=True).values.cumsum(-1)
    needed = ((cdf < 0.9).sum(-1) + 1).tolist()
    bounds = (0, *NUCLEUS_CANDIDATES, 5000)
    for path in range(4):  # at top_p 0.9 every path ran: top-64, top-1024, top-4096, sort
        assert all(bounds[path] < n <= bounds[path + 1] for n in needed[3 * path : 3 * path + 3]), (path, needed)


def test_rollout_restores_train_mode_and_checks_its_settings(demo):
    model, _, _, feats = demo
    model.train()
    rollout(model, feats, 1, seed=0, max_new_tokens=1)
    assert model.training and model.causal_lm.training
    model.eval()
    with pytest.raises(ValueError, match="temperature must be > 0"):
        rollout(model, feats, 2, seed=0, temperature=0.0)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        rollout(model, feats, 2, seed=0, top_p=1.5)
    with pytest.raises(ValueError, match="group_size and max_new_tokens must be >= 1"):
        rollout(model, feats, 0, seed=0)
    with pytest.raises(ValueError, match="needs 'names' for its 3 prompts"):
        rollout(model, {k: v for k, v in feats.items() if k != "names"}, 2, seed=0)
    ids = torch.zeros(6, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="mark a prefix"):
        logprobs_of(model, feats, ids, torch.tensor([[True, False, True]] * 6))
    with pytest.raises(ValueError, match=r"do not fit 3 prompts"):
        logprobs_of(model, feats, ids[:5], torch.ones(5, 3, dtype=torch.bool))

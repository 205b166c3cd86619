"""GRPO rollouts: G sampled completions per prompt from one shared prefix, and their log-probs with gradient.

`rollout` encodes each prompt once (encoders and fusion heads run once per sample, in AffectGPT.embed),
runs the decoder prefill once per prompt with a KV cache, repeats the cache G times
(DynamicCache.batch_repeat_interleave) and samples all B*G rows token by token. Rows that stop are
dropped from the cache (batch_select_indices), so the step cost follows the rows still running.

Reproducibility independent of batching: row (prompt i, member g) draws its uniforms from its own
torch.Generator seeded by row_seed(seed, name_i, g), and sampling is inverse-CDF on the nucleus
(one uniform per token). One call with group size G, G calls with group size 1 (first_member = g),
or any other grouping of the prompts give the same tokens, up to float rounding of batched matmuls
(a uniform within ~1e-7 of a CDF boundary could flip a token; not seen in tests/test_rollout.py).

Log-probs are those of the sampling policy log_softmax(logits / temperature) BEFORE the top-p
truncation, as TRL stores them: the PPO ratio compares full distributions, and logprobs_of recomputes
exactly that quantity with gradient.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache

from affectgpt.data.dataset import IGNORE_INDEX
from affectgpt.model.affectgpt import STOP_STRING, left_pad
from affectgpt.model.fused_loss import can_fuse

# Nucleus candidates tried before a full sort of the vocabulary: top-k of the first size that holds top_p of
# the mass gives the same nucleus as sorting (sorting 151,936 logits per row costs ~50x a top-64 on a CPU).
# A trained model's nucleus mostly fits in 64; the random demo LLM's needs ~300-1700 tokens.
NUCLEUS_CANDIDATES = (64, 1024, 4096)
EXTRA_EOS_TOKENS = ("<|im_end|>", "<|endoftext|>")
_HASH_TABLES: dict[int, tuple[Any, torch.Tensor]] = {}


def row_seed(seed: int, name: str, member: int) -> int:
    """The seed of completion `member` of sample `name`: a hash, so it does not depend on batch position."""
    digest = hashlib.blake2b(f"{seed}\x00{name}\x00{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The tokenizer's eos plus <|im_end|> and <|endoftext|> where the vocabulary has them (Qwen2.5 stops on both)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for token in EXTRA_EOS_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id and token_id not in ids:
            ids.append(token_id)
    return ids


def _hash_tokens(tokenizer: Any, vocab: int) -> torch.Tensor:
    """[vocab] bool: tokens whose text contains '#'. Only these can complete "###", so only rows that just
    sampled one are decoded. Byte-level BPE and SentencePiece pieces keep ASCII '#' literally (SentencePiece
    byte fallback spells it <0x23>); ids beyond the tokenizer decode to nothing."""
    cached = _HASH_TABLES.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer and cached[1].numel() == vocab:
        return cached[1]
    n = min(len(tokenizer), vocab)
    pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    table = torch.zeros(vocab, dtype=torch.bool)
    table[:n] = torch.tensor([p is not None and ("#" in p or p == "<0x23>") for p in pieces])
    _HASH_TABLES[id(tokenizer)] = (tokenizer, table)
    return table


def sample_top_p(
    logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row of `logits` [n, V] and its log-prob under log_softmax(logits / temperature).

    Nucleus: the smallest set of most probable tokens whose probability reaches top_p (a token is kept
    when the mass strictly before it is < top_p; the top token always). The token is the inverse CDF
    of the renormalised nucleus, in descending-probability order, at the row's uniform in [0, 1).
    The candidates' probabilities and CDF are float64: a float32 cumulative sum over hundreds of
    tail tokens drifts by ~1e-5, enough to move the nucleus boundary by a token.
    """
    scaled = logits.float() if temperature == 1.0 else logits.float() / temperature
    lse = torch.logsumexp(scaled, dim=-1, keepdim=True)
    n, vocab = scaled.shape
    if top_p >= 1.0:  # the whole distribution: any fixed order works for the inverse CDF
        cdf = (scaled.double() - lse.double()).exp().cumsum(dim=-1)
        tokens = torch.searchsorted(cdf, (uniforms.double() * cdf[:, -1])[:, None], right=True)[:, 0]
        tokens = tokens.clamp(max=vocab - 1)
    else:
        tokens = torch.empty(n, dtype=torch.long, device=scaled.device)
        todo = torch.arange(n, device=scaled.device)
        for k in (*[c for c in NUCLEUS_CANDIDATES if c < vocab], vocab):
            rows = scaled if todo.numel() == n else scaled[todo]  # no [n, V] copy on the first try
            values, index = rows.topk(k, dim=-1) if k < vocab else rows.sort(dim=-1, descending=True)
            cdf = (values.double() - lse[todo].double()).exp().cumsum(dim=-1)
            covered = cdf[:, -1] >= top_p if k < vocab else torch.ones_like(cdf[:, -1], dtype=torch.bool)
            if bool(covered.any()):
                cdf, index, done = cdf[covered], index[covered], todo[covered]
                before = torch.cat([torch.zeros_like(cdf[:, :1]), cdf[:, :-1]], dim=1)
                last = (before < top_p).sum(dim=1).clamp(min=1)[:, None] - 1
                pick = torch.searchsorted(cdf, uniforms[done, None].double() * cdf.gather(1, last), right=True)
                tokens[done] = index.gather(1, torch.minimum(pick, last))[:, 0]
            todo = todo[~covered]
            if todo.numel() == 0:
                break
    return tokens, scaled.gather(1, tokens[:, None])[:, 0] - lse[:, 0]


@dataclass
class Rollout:
    """G completions per prompt; row i*G + g is prompt i, member first_member + g."""

    names: list[str]
    members: list[int]
    group_size: int
    completion_ids: torch.Tensor  # [N, T] long; pad after a row's last token
    completion_mask: torch.Tensor  # [N, T] bool; the sampled tokens, stop token included
    logprobs: torch.Tensor  # [N, T] float32 sampling-policy log-probs; 0 where masked
    lengths: torch.Tensor  # [N] long
    stopped: torch.Tensor  # [N] bool: ended on eos or "###" (False: cut at max_new_tokens)
    texts: list[str]  # cut at eos and "###", stripped (as AffectGPT._postprocess)


def prompt_tokens(model: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's prompts, left-padded (ids, attention mask), exactly as AffectGPT.generate builds them:
    target tokens of a training batch (labels != -100) are dropped."""
    ids = batch["input_ids"].to(model.device)
    keep = batch["attention_mask"].to(model.device).bool()
    if batch.get("labels") is not None:
        keep &= batch["labels"].to(model.device) == IGNORE_INDEX
    return left_pad(ids, keep, model.tokenizer.pad_token_id)


def _names(batch: dict[str, Any], n: int) -> list[str]:
    names = batch.get("names")
    if names is None or len(names) != n:
        raise ValueError(f"the batch needs 'names' for its {n} prompts (they seed each row's sampler), got {names!r}")
    return [str(name) for name in names]


def _check_settings(group_size: int, max_new_tokens: int, temperature: float, top_p: float) -> None:
    if group_size < 1 or max_new_tokens < 1:
        raise ValueError(f"group_size and max_new_tokens must be >= 1, got {group_size} and {max_new_tokens}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (sampling), got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def _text(tokenizer: Any, ids: list[int], eos: set[int]) -> str:
    cut = next((k for k, t in enumerate(ids) if t in eos), len(ids))
    return tokenizer.decode(ids[:cut], skip_special_tokens=True).split(STOP_STRING)[0].strip()


@torch.no_grad()
def rollout(
    model: Any,
    batch: dict[str, Any],
    group_size: int,
    *,
    seed: int,
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    top_p: float = 0.9,
    first_member: int = 0,
) -> Rollout:
    """Sample `group_size` completions for every prompt of a generation batch (Collator(left_pad=True), or any
    batch AffectGPT.generate accepts). Runs the model in eval mode (no dropout: the sampling policy is the
    deterministic network that logprobs_of recomputes) and restores its mode. The loop must vary `seed` per
    step (e.g. from the run seed and step): then no RNG state needs saving for resume."""
    _check_settings(group_size, max_new_tokens, temperature, top_p)
    tok, lm = model.tokenizer, model.causal_lm
    ids, mask = prompt_tokens(model, batch)
    names = _names(batch, ids.shape[0])
    was_training = model.training
    model.eval()
    try:
        embeds = model.embed(batch, ids)  # encoders + heads: once per prompt
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache(config=lm.config)
        decoder, head, embedding = lm.get_decoder(), lm.get_output_embeddings(), lm.get_input_embeddings()
        out = decoder(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
        )
        hidden = out.last_hidden_state[:, -1].repeat_interleave(group_size, dim=0)
        cache.batch_repeat_interleave(group_size)
        mask = mask.repeat_interleave(group_size, dim=0)
        next_pos = mask.sum(dim=1)
        n = hidden.shape[0]
        members = [first_member + g for _ in names for g in range(group_size)]
        row_names = [name for name in names for _ in range(group_size)]
        generators = [torch.Generator().manual_seed(row_seed(seed, nm, m)) for nm, m in zip(row_names, members)]
        uniforms = torch.stack([torch.rand(max_new_tokens, generator=g) for g in generators]).to(hidden.device)
        eos_ids = stop_token_ids(tok)
        eos = torch.tensor(eos_ids, device=hidden.device)
        hashes = _hash_tokens(tok, head.weight.shape[0]).to(hidden.device)
        completion = torch.full((n, max_new_tokens), tok.pad_token_id, dtype=torch.long, device=hidden.device)
        logprobs = torch.zeros((n, max_new_tokens), dtype=torch.float32, device=hidden.device)
        lengths = torch.zeros(n, dtype=torch.long, device=hidden.device)
        stopped = torch.zeros(n, dtype=torch.bool, device=hidden.device)
        alive = torch.arange(n, device=hidden.device)
        for t in range(max_new_tokens):
            token, logp = sample_top_p(head(hidden), uniforms[alive, t], temperature, top_p)
            completion[alive, t], logprobs[alive, t] = token, logp
            lengths[alive] = t + 1
            done = torch.isin(token, eos)
            for k in hashes[token].nonzero()[:, 0].tolist():  # only rows that just added a '#' can complete "###"
                row = int(alive[k])
                done[k] |= STOP_STRING in tok.decode(completion[row, : t + 1].tolist(), skip_special_tokens=True)
            stopped[alive[done]] = True
            if t == max_new_tokens - 1 or bool(done.all()):
                break
            if bool(done.any()):
                keep = (~done).nonzero()[:, 0]
                cache.batch_select_indices(keep)
                alive, token, mask, next_pos = alive[keep], token[keep], mask[keep], next_pos[keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            out = decoder(
                inputs_embeds=embedding(token[:, None]),
                attention_mask=mask,
                position_ids=next_pos[:, None],
                past_key_values=cache,
                use_cache=True,
            )
            hidden = out.last_hidden_state[:, -1]
            next_pos = next_pos + 1
    finally:
        model.train(was_training)
    width = int(lengths.max())
    completion, logprobs = completion[:, :width], logprobs[:, :width]
    completion_mask = torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]
    eos_set = set(eos_ids)
    texts = [_text(tok, row[:length], eos_set) for row, length in zip(completion.tolist(), lengths.tolist())]
    return Rollout(row_names, members, group_size, completion, completion_mask, logprobs, lengths, stopped, texts)


def logprobs_of(
    model: Any,
    batch: dict[str, Any],
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per-token log-probs [N, T] (0 where masked) of completions given the batch's B prompts, WITH gradient.

    Rows are prompt-major as in Rollout (N = B*G). The prompts are embedded once (heads run B times and
    receive the gradient of all G rows), each row is laid out right-padded as prompt ⧺ completion (the SFT
    layout), and the output layer is applied only at completion positions, chunked over the vocabulary
    when it is frozen (never [tokens, 151,936] logits). Same mode rules as training: call in eval mode, or
    with LoRA dropout 0, for ratios that equal 1 on the first pass.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    ids, prompt_mask = prompt_tokens(model, batch)
    b, width = ids.shape
    n_rows, t_max = completion_ids.shape
    if n_rows % b or completion_mask.shape != completion_ids.shape:
        raise ValueError(
            f"completions {tuple(completion_ids.shape)} / mask {tuple(completion_mask.shape)} do not "
            f"fit {b} prompts (rows must be prompts x group size)"
        )
    sel = completion_mask.to(ids.device).bool()
    if bool((sel[:, 1:] & ~sel[:, :-1]).any()):
        raise ValueError("completion_mask must mark a prefix of each row (tokens first, then padding)")
    group = n_rows // b
    lm = model.causal_lm
    prompt = model.embed(batch, ids).repeat_interleave(group, dim=0)  # [N, width, D]
    completion_ids = completion_ids.to(ids.device)
    tokens = lm.get_input_embeddings()(completion_ids).to(prompt.dtype)
    n_prompt = prompt_mask.sum(dim=1).repeat_interleave(group)  # [N]
    n_total = n_prompt + sel.sum(dim=1)
    pos = torch.arange(int(n_total.max()), device=ids.device)[None, :]
    in_prompt = pos < n_prompt[:, None]
    real = pos < n_total[:, None]
    dim = prompt.shape[-1]
    from_prompt = prompt.gather(1, (width - n_prompt[:, None] + pos).clamp(0, width - 1)[..., None].expand(-1, -1, dim))
    from_completion = tokens.gather(1, (pos - n_prompt[:, None]).clamp(0, t_max - 1)[..., None].expand(-1, -1, dim))
    embeds = torch.where(in_prompt[..., None], from_prompt, from_completion)
    hidden = lm.get_decoder()(
        inputs_embeds=embeds, attention_mask=real.long(), position_ids=pos.expand(n_rows, -1), use_cache=False
    ).last_hidden_state
    # the hidden state at position n_prompt + t - 1 predicts completion token t
    at = (n_prompt[:, None] - 1 + torch.arange(t_max, device=ids.device)[None, :]).clamp(max=hidden.shape[1] - 1)
    chosen = hidden.gather(1, at[..., None].expand(-1, -1, dim))[sel]
    logp = token_logprobs(chosen, lm.get_output_embeddings(), completion_ids[sel], temperature, model.loss_vocab_chunk)
    return torch.zeros(sel.shape, dtype=logp.dtype, device=logp.device).masked_scatter(sel, logp)


def token_logprobs(
    hidden: torch.Tensor, head: nn.Module, targets: torch.Tensor, temperature: float, chunk: int
) -> torch.Tensor:
    """log_softmax(head(hidden) / temperature)[targets] per row, fp32. A frozen nn.Linear head is processed
    `chunk` vocabulary rows at a time (online log-sum-exp, hidden gradient accumulated in the forward pass,
    as model/fused_loss.py does for the SFT loss); chunk <= 0 or a trainable head takes the plain path."""
    if chunk <= 0 or not can_fuse(head):
        return torch.log_softmax(head(hidden).float() / temperature, dim=-1).gather(1, targets[:, None])[:, 0]
    if not (hidden.requires_grad and torch.is_grad_enabled()):
        return _chunked_logprobs(hidden, head.weight, head.bias, targets, temperature, chunk, need_grad=False)[0]
    return _ChunkedLogProb.apply(hidden, head.weight, head.bias, targets, temperature, chunk)


def _chunked_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    targets: torch.Tensor,
    temperature: float,
    chunk: int,
    need_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs [n] and, if asked, d logp / d hidden [n, D] = (W[target] - E_softmax[W]) / temperature."""
    n = hidden.shape[0]
    running_max = hidden.new_full((n,), float("-inf"), dtype=torch.float32)
    running_sum = hidden.new_zeros((n,), dtype=torch.float32)
    grad = hidden.new_zeros(hidden.shape, dtype=torch.float32) if need_grad else None
    for start in range(0, weight.shape[0], chunk):
        w_chunk = weight[start : start + chunk]
        logits = F.linear(hidden, w_chunk, None if bias is None else bias[start : start + chunk]).float() / temperature
        new_max = torch.maximum(running_max, logits.amax(dim=1))
        rescale = torch.exp(running_max - new_max)
        probs = logits.sub_(new_max[:, None]).exp_()
        running_sum.mul_(rescale).add_(probs.sum(dim=1))
        if grad is not None:
            grad.mul_(rescale[:, None]).add_(probs.to(w_chunk.dtype) @ w_chunk)
        running_max = new_max
    target_rows = weight[targets]
    target_logits = (hidden.float() * target_rows.float()).sum(dim=1)
    if bias is not None:
        target_logits = target_logits + bias[targets].float()
    target_logits = target_logits.to(weight.dtype).float() / temperature  # rounded like the chunk logits
    logp = target_logits - running_max - running_sum.log()
    if grad is not None:
        grad = (target_rows.float() - grad / running_sum[:, None]) / temperature
    return logp, grad


class _ChunkedLogProb(torch.autograd.Function):
    """Per-token log-probs; each depends on its own hidden row only, so the saved [n, D] Jacobian rows are
    the whole backward (the head is frozen)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature, chunk):  # type: ignore[override]
        logp, grad = _chunked_logprobs(hidden, weight, bias, targets, temperature, chunk, need_grad=True)
        ctx.save_for_backward(grad)
        ctx.hidden_dtype = hidden.dtype
        return logp

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return (grad * grad_output[:, None]).to(ctx.hidden_dtype), None, None, None, None, None

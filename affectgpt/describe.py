"""`python -m affectgpt.describe CONFIG [--world-size N] [key=value ...]`: parameter counts and a
per-GPU memory estimate, without loading any weights (the model is built on the meta device).

Real folders contribute their config.json; folders that are not downloaded fall back to the
published architectures (Qwen2.5-7B-Instruct, CLIP ViT-L/14, chinese-hubert-large), so the official
numbers can be checked anywhere: lora_params 40370176, other_trainable_params 16798468. The alternative
backbones (model.visual_encoder / audio_encoder, an LLM folder named as in affectgpt.model.backbones.PUBLISHED_LLMS)
fall back to their published configs the same way.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from affectgpt.config import Config, load_config
from affectgpt.model.build import Skeleton, build_skeleton

GIB = 1024**3
# Per decoder layer and token, elements kept for backward (LoRA on all 7 projections, SDPA attention):
# ~10 hidden-size tensors (norm inputs, 7 LoRA dropout inputs over h, q/attention output),
# 2 kv-size tensors and ~4 intermediate-size tensors (gate, up, act, down's LoRA input).
ACT_HIDDEN_TENSORS = 10
ACT_KV_TENSORS = 2
ACT_INTERMEDIATE_TENSORS = 4
# Fraction of the sequence that is target tokens (lm_head runs only there): fp32 logits + their grad on
# the plain loss path; the chunked loss (model/fused_loss.py) keeps one [targets, chunk] block and an fp32
# hidden-state gradient instead. ZeRO-3 partitions lm_head, so it takes the plain path.
TARGET_FRACTION = 0.5


@dataclass
class ParamCounts:
    total: int
    frozen: int
    lora: int
    other_trainable: int


def count_params(sk: Skeleton) -> ParamCounts:
    lora = sum(p.numel() for n, p in sk.llm.named_parameters() if "lora_" in n)
    heads = sum(p.numel() for p in sk.heads.parameters())
    total = sum(p.numel() for m in (sk.llm, sk.heads, sk.clip, sk.hubert) for p in m.parameters())
    return ParamCounts(total=total, frozen=total - lora - heads, lora=lora, other_trainable=heads)


def estimate_memory(sk: Skeleton, cfg: Config, world_size: int) -> dict[str, dict[str, float]]:
    """Per-GPU bytes of weights / gradients / optimizer states / activations for DDP, ZeRO-2, ZeRO-3."""
    counts = count_params(sk)
    trainable = counts.lora + counts.other_trainable
    llm_frozen = sum(p.numel() * p.element_size() for n, p in sk.llm.named_parameters() if "lora_" not in n)
    encoders = sum(p.numel() * 4 for m in (sk.clip, sk.hubert) for p in m.parameters())  # fp32
    weights = llm_frozen + encoders + 4 * trainable  # trainable weights kept in fp32
    grads = 4 * trainable
    optim = 8 * trainable  # AdamW exp_avg + exp_avg_sq in fp32

    c = sk.llm.get_base_model().config
    act_dtype = 2 if cfg.train.mixed_precision in ("fp16", "bf16") or cfg.model.llm_dtype != "float32" else 4
    tokens = cfg.train.batch_size * cfg.model.max_length
    kv = c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    per_layer = act_dtype * (
        ACT_HIDDEN_TENSORS * c.hidden_size + ACT_KV_TENSORS * kv + ACT_INTERMEDIATE_TENSORS * c.intermediate_size
    )
    if cfg.model.gradient_checkpointing:  # layer inputs kept, one layer recomputed at a time
        layers = tokens * (c.num_hidden_layers * act_dtype * c.hidden_size + per_layer)
    else:
        layers = tokens * c.num_hidden_layers * per_layer
    targets = int(tokens * TARGET_FRACTION)
    plain_logits = targets * c.vocab_size * (4 + 4)
    chunk = cfg.model.loss_vocab_chunk
    chunked_logits = targets * (min(chunk, c.vocab_size) + c.hidden_size) * 4 if chunk > 0 else plain_logits

    n = max(1, world_size)
    plans = {  # (weights, grads, optimizer, loss-path activations)
        "ddp": (weights, 2 * grads, optim, chunked_logits),  # DDP keeps a gradient bucket copy
        "zero2": (weights, grads / n, optim / n, chunked_logits),
        "zero3": (weights / n, grads / n, optim / n, plain_logits),
    }
    return {
        name: {"weights": w, "grads": g, "optimizer": o, "activations": layers + a, "total": w + g + o + layers + a}
        for name, (w, g, o, a) in plans.items()
    }


def grpo_memory(sk: Skeleton, cfg: Config, world_size: int) -> list[str]:
    """The GRPO stage's per-GPU memory on paper (train/grpo.py): rollout KV cache for batch_size x G rows, the
    update forward over the same rows, the frozen reference copy of the trainable tensors (kl_beta > 0)."""
    c = sk.llm.get_base_model().config
    counts = count_params(sk)
    rows = cfg.train.batch_size * cfg.rl.group_size
    seq = cfg.model.max_length  # prompt + completion, bounded by the same budget as SFT
    dtype = 2 if cfg.model.llm_dtype != "float32" else 4
    act = 2 if cfg.train.mixed_precision in ("fp16", "bf16") or cfg.model.llm_dtype != "float32" else 4
    kv = c.num_key_value_heads * (c.hidden_size // c.num_attention_heads)
    kv_cache = 2 * c.num_hidden_layers * kv * dtype * rows * seq
    per_layer = act * (
        ACT_HIDDEN_TENSORS * c.hidden_size + ACT_KV_TENSORS * kv + ACT_INTERMEDIATE_TENSORS * c.intermediate_size
    )
    layers = c.num_hidden_layers * (act * c.hidden_size if cfg.model.gradient_checkpointing else per_layer)
    update = rows * seq * (layers + (per_layer if cfg.model.gradient_checkpointing else 0))
    reference = 4 * (counts.lora + counts.other_trainable) if cfg.rl.kl_beta > 0 else 0
    zero2 = estimate_memory(sk, cfg, world_size)["zero2"]
    static = zero2["weights"] + zero2["grads"] + zero2["optimizer"]
    total = static + max(kv_cache, update) + reference
    return [
        "",
        f"GRPO stage (rl.*): {cfg.train.batch_size} prompts x G={cfg.rl.group_size} = {rows} rows per micro-batch, "
        f"<= {seq} tokens each",
        f"  rollout KV cache {kv_cache / GIB:.2f} GiB; update activations {update / GIB:.2f} GiB "
        f"(gradient_checkpointing {cfg.model.gradient_checkpointing}); reference copy of the trainable tensors "
        f"{reference / GIB:.2f} GiB (kl_beta {cfg.rl.kl_beta:g})",
        f"  ZeRO-2 per GPU: {static / GIB:.2f} GiB weights/grads/optimizer + max(KV cache, update) + reference "
        f"= {total / GIB:.2f} GiB (rollout and update never overlap)",
    ]


def describe(cfg: Config, world_size: int = 1) -> str:
    sk = build_skeleton(cfg.model)
    counts = count_params(sk)
    lines = [
        f"llm: {cfg.model.llm} ({sk.sources['llm']}), {cfg.model.visual_encoder}: {cfg.model.clip} "
        f"({sk.sources['clip']}), {cfg.model.audio_encoder}: {cfg.model.hubert} ({sk.sources['hubert']})",
        f"encoder params: visual {sum(p.numel() for p in sk.clip.parameters())}, "
        f"audio {sum(p.numel() for p in sk.hubert.parameters())}; "
        f"head input widths: visual {sk.heads_in[0]}, audio {sk.heads_in[1]}",
        f"total_params: {counts.total}",
        f"frozen_params: {counts.frozen}",
        f"lora_params: {counts.lora}",
        f"other_trainable_params: {counts.other_trainable}",
        "",
        f"estimated memory per GPU (GiB): batch_size {cfg.train.batch_size}, seq_len {cfg.model.max_length}, "
        f"world_size {world_size}, llm_dtype {cfg.model.llm_dtype}, mixed_precision {cfg.train.mixed_precision}, "
        f"gradient_checkpointing {cfg.model.gradient_checkpointing}",
        f"  {'strategy':<9}{'weights':>9}{'grads':>9}{'optimizer':>11}{'activations':>13}{'total':>9}",
    ]
    for name, parts in estimate_memory(sk, cfg, world_size).items():
        lines.append(
            f"  {name:<9}{parts['weights'] / GIB:>9.2f}{parts['grads'] / GIB:>9.2f}{parts['optimizer'] / GIB:>11.2f}"
            f"{parts['activations'] / GIB:>13.2f}{parts['total'] / GIB:>9.2f}"
        )
    lines += [
        "assumptions: frozen LLM weights in llm_dtype, encoders and all trainable weights in fp32 (no extra master",
        "  copy); fp32 gradients for trainable weights only (DDP: x2 for its bucket copy); AdamW = 2 fp32 states;",
        "  ZeRO-2 shards gradients + optimizer states, ZeRO-3 also every weight, over world_size;",
        f"  activations: every sample at seq_len tokens, per layer and token "
        f"~{ACT_HIDDEN_TENSORS}h + {ACT_KV_TENSORS}kv"
        f" + {ACT_INTERMEDIATE_TENSORS}i elements",
        f"  (LoRA inputs, SDPA attention); the loss on the {TARGET_FRACTION:.0%} of tokens that are targets keeps one"
        f" [targets, {cfg.model.loss_vocab_chunk}]",
        "  fp32 block (chunked loss; ZeRO-3 or chunk 0: full fp32 logits + their grad); encoders run without",
        "  gradients (transient, not counted);",
        "  CUDA context, allocator fragmentation and ZeRO-3 prefetch buffers are not included (add 1-3 GiB).",
    ]
    if cfg.rl.init_from:
        lines += grpo_memory(sk, cfg, world_size)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affectgpt.describe", description=__doc__.split("\n")[0])
    parser.add_argument("config", nargs="?", help="YAML config (default: the built-in demo config)")
    parser.add_argument("--world-size", type=int, default=1, help="number of GPUs for the memory estimate")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    print(describe(cfg, args.world_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())

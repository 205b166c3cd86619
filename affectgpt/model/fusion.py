"""Trainable poolers, the audio-video pre-fusion (<Multi> token) and the projections to the LLM width.

`ModalityHeads` owns every trainable non-LoRA weight, under EXACTLY the official attribute names
(affectgpt_proj, video_attention_mlp, audio_llama_proj, ...), so its state_dict keys are the
official checkpoint keys 1:1 and `projectors.safetensors` stores them unchanged.

Official behaviour (reference §1.2-1.4):
- `attention` pooling: Linear(h, 1) gives a raw score per time step; the pooled vector is the
  score-weighted SUM over time. No softmax, no activation (weights are unnormalised).
- `mean` pooling: time average. Both are followed by Linear(h, llm) and repeated
  `num_*_query_token` times.
- `qformer`: transformers' Blip2QFormerModel (random init; the official one starts from
  bert-base-uncased) over the sequence + a learned position embedding, `num_*_query_token` queries.
- pre-fusion `attention`: time-mean of both sequences, map to max_h = max(audio, visual) dims,
  Linear(2*max_h, max_h) -> Linear(max_h, 2) = two raw weights, weighted sum, Linear(max_h, llm).
- Faces and frames share the video weights; `image_llama_proj` is created unconditionally (unused
  in video training, but trainable and saved, as official).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel

POOLERS = ("attention", "mean", "qformer")
MULTI_FUSIONS = ("attention", "qformer")
# Official Q-Former sizes (bert-base: 768 hidden, 12 heads; 2 layers) and position-embedding lengths.
QFORMER_HIDDEN = 768
QFORMER_HEADS = 12
QFORMER_LAYERS = 2
VIDEO_POSITIONS = 32
AUDIO_POSITIONS = 8
MULTI_POSITIONS = 264


def attention_pool(seq: torch.Tensor, scorer: nn.Linear) -> torch.Tensor:
    """[B, T, h] -> [B, h]: sum over time weighted by raw linear scores (official: no softmax)."""
    return (scorer(seq) * seq).sum(dim=1)


class QFormerPool(nn.Module):
    """Learned queries cross-attending to a position-embedded sequence: [B, T, d] -> [B, n, hidden]."""

    def __init__(self, input_dim: int, n_queries: int, max_positions: int, hidden: int, heads: int, layers: int):
        super().__init__()
        config = Blip2QFormerConfig(
            hidden_size=hidden,
            num_attention_heads=heads,
            num_hidden_layers=layers,
            intermediate_size=4 * hidden,
            encoder_hidden_size=input_dim,
            cross_attention_frequency=1,
        )
        self.position_embedding = nn.Embedding(max_positions, input_dim)
        self.query_tokens = nn.Parameter(torch.randn(1, n_queries, hidden) * config.initializer_range)
        self.qformer = Blip2QFormerModel(config)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        t = seq.shape[1]
        if t > self.position_embedding.num_embeddings:
            raise ValueError(
                f"Q-Former input has {t} steps, more than its {self.position_embedding.num_embeddings} positions"
            )
        seq = seq + self.position_embedding(torch.arange(t, device=seq.device))
        queries = self.query_tokens.expand(seq.shape[0], -1, -1)
        return self.qformer(query_embeds=queries, encoder_hidden_states=seq).last_hidden_state


class ModalityHeads(nn.Module):
    """All trainable non-LoRA weights; turns encoder sequences into LLM-width tokens."""

    def __init__(
        self,
        visual_dim: int,
        audio_dim: int,
        llm_dim: int,
        video_fusion: str = "attention",
        audio_fusion: str = "attention",
        multi_fusion: str = "attention",
        num_video_query_token: int = 1,
        num_audio_query_token: int = 1,
        num_multi_query_token: int = 1,
        qformer_hidden: int = QFORMER_HIDDEN,
        qformer_heads: int = QFORMER_HEADS,
        qformer_layers: int = QFORMER_LAYERS,
    ) -> None:
        super().__init__()
        for name, value, options in (
            ("model.video_fusion", video_fusion, POOLERS),
            ("model.audio_fusion", audio_fusion, POOLERS),
            ("model.multi_fusion", multi_fusion, MULTI_FUSIONS),
        ):
            if value not in options:
                raise ValueError(f"{name}={value!r}: must be one of {options}")
        self.video_fusion, self.audio_fusion, self.multi_fusion = video_fusion, audio_fusion, multi_fusion
        self.num_video, self.num_audio, self.num_multi = (
            num_video_query_token,
            num_audio_query_token,
            num_multi_query_token,
        )
        q = dict(hidden=qformer_hidden, heads=qformer_heads, layers=qformer_layers)
        max_h = max(audio_dim, visual_dim)

        if video_fusion == "qformer":
            self.video_qformer = QFormerPool(visual_dim, num_video_query_token, VIDEO_POSITIONS, **q)
        elif video_fusion == "attention":
            self.video_attention_mlp = nn.Linear(visual_dim, 1)
        self.affectgpt_proj = nn.Linear(qformer_hidden if video_fusion == "qformer" else visual_dim, llm_dim)

        if audio_fusion == "qformer":
            self.audio_qformer = QFormerPool(audio_dim, num_audio_query_token, AUDIO_POSITIONS, **q)
        elif audio_fusion == "attention":
            self.audio_attention_mlp = nn.Linear(audio_dim, 1)
        self.audio_llama_proj = nn.Linear(qformer_hidden if audio_fusion == "qformer" else audio_dim, llm_dim)

        self.multi_video_embs = nn.Linear(visual_dim, max_h)
        self.multi_audio_embs = nn.Linear(audio_dim, max_h)
        if multi_fusion == "attention":
            self.attention_mlp = nn.Linear(2 * max_h, max_h)
            self.fc_att = nn.Linear(max_h, 2)
            self.multi_llama_proj = nn.Linear(max_h, llm_dim)
        else:
            self.multi_qformer = QFormerPool(max_h, num_multi_query_token, MULTI_POSITIONS, **q)
            self.multi_llama_proj = nn.Linear(qformer_hidden, llm_dim)

        self.image_llama_proj = nn.Linear(visual_dim, llm_dim)

    def _pool(self, seq: torch.Tensor, fusion: str, n: int, scorer: nn.Module | None, qformer: nn.Module | None):
        if fusion == "qformer":
            return qformer(seq)  # [B, n, qformer_hidden]
        pooled = attention_pool(seq, scorer) if fusion == "attention" else seq.mean(dim=1)
        return pooled.unsqueeze(1).expand(-1, n, -1)

    def video_tokens(self, seq: torch.Tensor) -> torch.Tensor:
        """Faces or frames [B, T, visual_dim] -> [B, num_video_query_token, llm_dim]."""
        pooled = self._pool(
            seq,
            self.video_fusion,
            self.num_video,
            getattr(self, "video_attention_mlp", None),
            getattr(self, "video_qformer", None),
        )
        return self.affectgpt_proj(pooled)

    def audio_tokens(self, seq: torch.Tensor) -> torch.Tensor:
        """Audio clips [B, T, audio_dim] -> [B, num_audio_query_token, llm_dim]."""
        pooled = self._pool(
            seq,
            self.audio_fusion,
            self.num_audio,
            getattr(self, "audio_attention_mlp", None),
            getattr(self, "audio_qformer", None),
        )
        return self.audio_llama_proj(pooled)

    def multi_tokens(self, video_seq: torch.Tensor, audio_seq: torch.Tensor) -> torch.Tensor:
        """Pre-fusion of the two sequences -> [B, num_multi_query_token, llm_dim]."""
        if self.multi_fusion == "qformer":
            seq = torch.cat([self.multi_video_embs(video_seq), self.multi_audio_embs(audio_seq)], dim=1)
            return self.multi_llama_proj(self.multi_qformer(seq))
        video = self.multi_video_embs(video_seq.mean(dim=1))
        audio = self.multi_audio_embs(audio_seq.mean(dim=1))
        weights = self.fc_att(self.attention_mlp(torch.cat([video, audio], dim=-1)))  # [B, 2], raw
        fused = weights[:, 0:1] * video + weights[:, 1:2] * audio
        return self.multi_llama_proj(fused).unsqueeze(1).expand(-1, self.num_multi, -1)

    def image_tokens(self, image_feats: torch.Tensor) -> torch.Tensor:
        """One image [B, visual_dim] (or [B, T, visual_dim], time-averaged) -> [B, 1, llm_dim]."""
        if image_feats.ndim == 3:
            image_feats = image_feats.mean(dim=1)
        return self.image_llama_proj(image_feats).unsqueeze(1)

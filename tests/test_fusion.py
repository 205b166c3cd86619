"""The trainable heads against the official rules (reference §1.2-1.4), with expected values worked out by hand on
small known weights: attention pooling = raw linear score-weighted SUM over time (no softmax), mean pooling,
pre-fusion (time means -> max(h) -> Linear(2h, h) -> Linear(h, 2) raw weights -> w0 video + w1 audio -> projection),
num_*_query_token repetition, image_llama_proj always present, official parameter names and count."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from affectgpt.model.fusion import (
    AUDIO_POSITIONS,
    MULTI_POSITIONS,
    VIDEO_POSITIONS,
    ModalityHeads,
    QFormerPool,
    attention_pool,
)

OFFICIAL_HEADS = (  # §1.4: every trainable non-LoRA Linear of the headline config
    "affectgpt_proj",
    "video_attention_mlp",
    "audio_llama_proj",
    "audio_attention_mlp",
    "multi_video_embs",
    "multi_audio_embs",
    "attention_mlp",
    "fc_att",
    "multi_llama_proj",
    "image_llama_proj",
)


def set_linear(layer: nn.Linear, weight: list, bias: list) -> None:
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))


def small_heads(**kw) -> ModalityHeads:
    """visual 2, audio 3 (so max_h = 3), llm 2; projections with hand-picked weights."""
    heads = ModalityHeads(
        visual_dim=2, audio_dim=3, llm_dim=2, qformer_hidden=4, qformer_heads=2, qformer_layers=1, **kw
    )
    set_linear(heads.affectgpt_proj, [[1.0, 0.0], [1.0, -1.0]], [0.5, 0.0])
    set_linear(heads.audio_llama_proj, [[1.0, 1.0, 1.0], [0.0, 2.0, 0.0]], [0.0, -1.0])
    return heads


VIDEO = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])  # [B=1, T=3, 2]
AUDIO = torch.tensor([[[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]]])  # [B=1, T=2, 3]


def test_video_attention_pooling_is_a_raw_score_weighted_sum():
    heads = small_heads()
    set_linear(heads.video_attention_mlp, [[0.5, -1.0]], [0.25])
    # scores s_t = 0.5 x0 - x1 + 0.25 = -1.25, -2.25, -3.25 (negative: no softmax, no normalisation)
    # pooled = sum_t s_t x_t = (-1.25 - 6.75 - 16.25, -2.5 - 9 - 19.5) = (-24.25, -31)
    # token = affectgpt_proj(pooled) = (-24.25 + 0.5, -24.25 + 31) = (-23.75, 6.75)
    torch.testing.assert_close(attention_pool(VIDEO, heads.video_attention_mlp), torch.tensor([[-24.25, -31.0]]))
    torch.testing.assert_close(heads.video_tokens(VIDEO), torch.tensor([[[-23.75, 6.75]]]))


def test_audio_attention_pooling_and_mean_pooling():
    heads = small_heads()
    set_linear(heads.audio_attention_mlp, [[1.0, 2.0, 0.0]], [-1.0])
    # s = (1 + 0 + 0 - 1, 0 + 2 + 0 - 1) = (0, 1): pooled = 0 * a0 + 1 * a1 = (0, 1, -1)
    # token = (0 + 1 - 1, 2 * 1 - 1) = (0, 1)
    torch.testing.assert_close(heads.audio_tokens(AUDIO), torch.tensor([[[0.0, 1.0]]]))
    mean = small_heads(video_fusion="mean", audio_fusion="mean")
    assert not hasattr(mean, "video_attention_mlp") and not hasattr(mean, "audio_attention_mlp")
    # video time mean (3, 4) -> (3 + 0.5, 3 - 4) ; audio time mean (0.5, 0.5, 0.5) -> (1.5, 0)
    torch.testing.assert_close(mean.video_tokens(VIDEO), torch.tensor([[[3.5, -1.0]]]))
    torch.testing.assert_close(mean.audio_tokens(AUDIO), torch.tensor([[[1.5, 0.0]]]))


def test_prefusion_weights_are_two_raw_linear_outputs():
    heads = small_heads()
    assert heads.multi_video_embs.out_features == 3 and heads.multi_audio_embs.out_features == 3  # max(3, 2)
    set_linear(heads.multi_video_embs, [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0.0, 0.0, 0.0])
    set_linear(heads.multi_audio_embs, [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]], [0.0, 0.0, 1.0])
    eye3 = torch.eye(3).tolist()
    set_linear(heads.attention_mlp, [row + [0.0] * 3 for row in eye3], [0.0, 0.0, 0.0])  # keeps the video half
    set_linear(heads.fc_att, [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], [0.0, 0.5])
    set_linear(heads.multi_llama_proj, [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], [0.0, 10.0])
    # time means: video (3, 4), audio (0.5, 0.5, 0.5)
    # v = (3, 4, 7); a = (1, 1, 1 + 1) = (1, 1, 2); attention_mlp([v, a]) = v = (3, 4, 7)
    # w = (3, -4 + 0.5) = (3, -3.5): raw, one negative, not summing to 1
    # fused = 3 v - 3.5 a = (9 - 3.5, 12 - 3.5, 21 - 7) = (5.5, 8.5, 14); token = (5.5, 14 + 10)
    torch.testing.assert_close(heads.multi_tokens(VIDEO, AUDIO), torch.tensor([[[5.5, 24.0]]]))
    assert (
        heads.attention_mlp.in_features == 6
        and heads.fc_att.out_features == 2
        and heads.multi_llama_proj.in_features == 3
    )


def test_query_token_counts_repeat_the_pooled_token():
    torch.manual_seed(0)
    heads = ModalityHeads(6, 10, 5, num_video_query_token=3, num_audio_query_token=2, num_multi_query_token=4)
    v, a = torch.randn(2, 8, 6), torch.randn(2, 8, 10)
    for tokens, n in ((heads.video_tokens(v), 3), (heads.audio_tokens(a), 2), (heads.multi_tokens(v, a), 4)):
        assert tokens.shape == (2, n, 5)
        for i in range(1, n):  # one pooled row repeated, then projected: copies equal up to GEMM rounding (~1e-7)
            torch.testing.assert_close(tokens[:, i], tokens[:, 0], rtol=1e-6, atol=1e-6)
    one = ModalityHeads(6, 10, 5)
    one.load_state_dict(heads.state_dict())  # the counts add no weights
    torch.testing.assert_close(one.video_tokens(v)[:, 0], heads.video_tokens(v)[:, 0])
    assert one.video_tokens(v).shape == (2, 1, 5) and one.multi_tokens(v, a).shape == (2, 1, 5)


def test_image_projection_exists_for_every_fusion_and_time_averages():
    for video, audio, multi in (("attention", "attention", "attention"), ("mean", "qformer", "qformer")):
        heads = ModalityHeads(2, 3, 2, video, audio, multi, qformer_hidden=4, qformer_heads=2, qformer_layers=1)
        assert isinstance(heads.image_llama_proj, nn.Linear) and heads.image_llama_proj.in_features == 2
    heads = small_heads()
    set_linear(heads.image_llama_proj, [[1.0, 1.0], [2.0, 0.0]], [0.0, 1.0])
    torch.testing.assert_close(heads.image_tokens(torch.tensor([[1.0, 2.0]])), torch.tensor([[[3.0, 3.0]]]))
    torch.testing.assert_close(heads.image_tokens(VIDEO), torch.tensor([[[7.0, 7.0]]]))  # time mean (3, 4)


def test_official_parameter_names_and_count():
    with torch.device("meta"):
        heads = ModalityHeads(visual_dim=768, audio_dim=1024, llm_dim=3584)
    names = {n.rsplit(".", 1)[0] for n, _ in heads.named_parameters()}
    assert names == set(OFFICIAL_HEADS)
    assert {n for n, _ in heads.named_parameters()} == {f"{m}.{p}" for m in OFFICIAL_HEADS for p in ("weight", "bias")}
    assert sum(p.numel() for p in heads.parameters()) == 16_798_468  # reference E16
    shapes = {n: tuple(p.shape) for n, p in heads.named_parameters() if n.endswith("weight")}
    assert shapes == {
        "affectgpt_proj.weight": (3584, 768),
        "video_attention_mlp.weight": (1, 768),
        "audio_llama_proj.weight": (3584, 1024),
        "audio_attention_mlp.weight": (1, 1024),
        "multi_video_embs.weight": (1024, 768),
        "multi_audio_embs.weight": (1024, 1024),
        "attention_mlp.weight": (1024, 2048),
        "fc_att.weight": (2, 1024),
        "multi_llama_proj.weight": (3584, 1024),
        "image_llama_proj.weight": (3584, 768),
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"video_fusion": "softmax"}, "model.video_fusion='softmax'"),
        ({"audio_fusion": "max"}, "model.audio_fusion='max'"),
        ({"multi_fusion": "mean"}, "model.multi_fusion='mean'"),
    ],
)
def test_unknown_fusion_names_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModalityHeads(2, 3, 2, **kwargs)


def test_qformer_sizes_positions_and_forward():
    with torch.device("meta"):
        heads = ModalityHeads(768, 1024, 3584, "qformer", "qformer", "qformer", 32, 8, 1)
    for pool, positions, width, queries in (
        (heads.video_qformer, VIDEO_POSITIONS, 768, 32),
        (heads.audio_qformer, AUDIO_POSITIONS, 1024, 8),
        (heads.multi_qformer, MULTI_POSITIONS, 1024, 1),
    ):
        config = pool.qformer.config  # official: bert-base sizes, 2 layers, cross-attention in every layer
        assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (768, 12, 2)
        assert config.encoder_hidden_size == width and config.cross_attention_frequency == 1
        assert config.intermediate_size == 4 * 768
        assert pool.position_embedding.num_embeddings == positions and pool.position_embedding.embedding_dim == width
        assert pool.query_tokens.shape == (1, queries, 768)
    assert (VIDEO_POSITIONS, AUDIO_POSITIONS, MULTI_POSITIONS) == (32, 8, 264)
    assert (
        heads.affectgpt_proj.in_features
        == heads.audio_llama_proj.in_features
        == heads.multi_llama_proj.in_features
        == 768
    )

    torch.manual_seed(0)
    pool = QFormerPool(input_dim=6, n_queries=3, max_positions=5, hidden=8, heads=2, layers=1).eval()
    seq = torch.randn(2, 4, 6)
    with torch.no_grad():
        expected = pool.qformer(
            query_embeds=pool.query_tokens.expand(2, -1, -1),
            encoder_hidden_states=seq + pool.position_embedding.weight[:4],  # position t added to step t
        ).last_hidden_state
        torch.testing.assert_close(pool(seq), expected)
        assert pool(torch.randn(2, 5, 6)).shape == (2, 3, 8)  # exactly max_positions steps is fine
    with pytest.raises(ValueError, match="6 steps, more than its 5 positions"):
        pool(torch.randn(1, 6, 6))


def test_qformer_queries_start_small_as_blip2():
    """Learned queries ~ N(0, initializer_range = 0.02), the BLIP-2 / BERT initialisation."""
    torch.manual_seed(0)
    pool = QFormerPool(input_dim=6, n_queries=500, max_positions=5, hidden=64, heads=2, layers=1)
    assert pool.qformer.config.initializer_range == 0.02
    queries = pool.query_tokens.detach().double()
    # 32,000 draws: the std estimate is within ~0.4 % (1 / sqrt(2 n)), the mean within 0.02 / sqrt(n) ~ 1e-4
    assert abs(queries.std().item() - 0.02) < 0.001 and abs(queries.mean().item()) < 6e-4


def test_qformer_heads_pool_then_project():
    torch.manual_seed(0)
    heads = ModalityHeads(
        6, 10, 5, "qformer", "qformer", "qformer", 2, 3, 4, qformer_hidden=8, qformer_heads=2, qformer_layers=1
    ).eval()
    v, a = torch.randn(2, 8, 6), torch.randn(2, 8, 10)
    with torch.no_grad():
        torch.testing.assert_close(heads.video_tokens(v), heads.affectgpt_proj(heads.video_qformer(v)))
        torch.testing.assert_close(heads.audio_tokens(a), heads.audio_llama_proj(heads.audio_qformer(a)))
        joint = torch.cat([heads.multi_video_embs(v), heads.multi_audio_embs(a)], dim=1)  # along time: 16 steps
        torch.testing.assert_close(heads.multi_tokens(v, a), heads.multi_llama_proj(heads.multi_qformer(joint)))
    assert heads.multi_tokens(v, a).shape == (2, 4, 5) and heads.video_tokens(v).shape == (2, 2, 5)
    assert not hasattr(heads, "attention_mlp") and not hasattr(heads, "fc_att")

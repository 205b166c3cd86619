"""The backbone choices: which transformers class each `model.visual_encoder` / `model.audio_encoder` / LLM
is, its published architecture (for weight-free `describe` and the official-checkpoint importer) and the tiny
random config of the same class (CPU demo and tests).

Published values are copied from each model's config.json on the Hugging Face hub (repo named in the
comment); only the fields that change parameter shapes are given, the rest are the class defaults, which
match those files for the fields that matter here.
"""

from __future__ import annotations

from pathlib import Path

from transformers import (
    CLIPVisionConfig,
    Data2VecAudioConfig,
    Dinov2Config,
    HubertConfig,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    Qwen2Config,
    Qwen3Config,
    SiglipVisionConfig,
    WavLMConfig,
    WhisperConfig,
)

VISUAL_ENCODERS = ("clip", "siglip", "dinov2")
AUDIO_ENCODERS = ("hubert", "wavlm", "data2vec-audio", "whisper")
# The official backbones: the only ones a released AffectGPT checkpoint fits.
OFFICIAL = {"visual_encoder": "clip", "audio_encoder": "hubert"}
# choice -> (hub id of the published model, folder the docs suggest); model.clip / model.hubert hold the folder.
SOURCES = {
    "llm": ("Qwen/Qwen2.5-7B-Instruct", "models/Qwen2.5-7B-Instruct"),
    "clip": ("openai/clip-vit-large-patch14", "models/clip-vit-large-patch14"),
    "siglip": ("google/siglip-so400m-patch14-384", "models/siglip-so400m-patch14-384"),
    "dinov2": ("facebook/dinov2-large", "models/dinov2-large"),
    "hubert": ("TencentGameMate/chinese-hubert-large", "models/chinese-hubert-large"),
    "wavlm": ("microsoft/wavlm-large", "models/wavlm-large"),
    "data2vec-audio": ("facebook/data2vec-audio-base", "models/data2vec-audio-base"),
    "whisper": ("openai/whisper-large-v3", "models/whisper-large-v3"),
}


def published_encoder(choice: str) -> PretrainedConfig:
    """The published architecture of an encoder choice (describe / import when the folder is absent)."""
    if choice == "clip":  # openai/clip-vit-large-patch14, vision_config + projection_dim
        return CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=224,
            patch_size=14,
            projection_dim=768,
        )
    if choice == "siglip":  # google/siglip-so400m-patch14-384, vision_config
        return SiglipVisionConfig(
            hidden_size=1152,
            intermediate_size=4304,
            num_hidden_layers=27,
            num_attention_heads=16,
            image_size=384,
            patch_size=14,
        )
    if choice == "dinov2":  # facebook/dinov2-large
        return Dinov2Config(
            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4, image_size=518, patch_size=14
        )
    if choice == "hubert":  # TencentGameMate/chinese-hubert-large
        return HubertConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=True,
        )
    if choice == "wavlm":  # microsoft/wavlm-large
        return WavLMConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=False,
        )
    if choice == "data2vec-audio":  # facebook/data2vec-audio-base (the class defaults are this model)
        return Data2VecAudioConfig(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12
        )
    if choice == "whisper":  # openai/whisper-large-v3 (only the encoder is built)
        return WhisperConfig(
            d_model=1280,
            encoder_layers=32,
            encoder_attention_heads=20,
            encoder_ffn_dim=5120,
            decoder_layers=32,
            decoder_attention_heads=20,
            decoder_ffn_dim=5120,
            num_mel_bins=128,
            vocab_size=51866,
            max_source_positions=1500,
        )
    raise ValueError(f"unknown encoder {choice!r}")


# LLM folder name -> published config.json; describe uses it when model.llm names a folder that is not downloaded.
def _qwen25_7b() -> PretrainedConfig:  # Qwen/Qwen2.5-7B-Instruct
    return Qwen2Config(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=False,
    )


def _llama3_8b() -> PretrainedConfig:  # meta-llama/Meta-Llama-3-8B-Instruct
    return LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=False,
    )


def _mistral_7b() -> PretrainedConfig:  # mistralai/Mistral-7B-Instruct-v0.3
    return MistralConfig(
        vocab_size=32768,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=32768,
        rms_norm_eps=1e-5,
        rope_theta=1000000.0,
        sliding_window=None,
        tie_word_embeddings=False,
    )


def _qwen3_8b() -> PretrainedConfig:  # Qwen/Qwen3-8B
    return Qwen3Config(
        vocab_size=151936,
        hidden_size=4096,
        intermediate_size=12288,
        num_hidden_layers=36,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=False,
    )


PUBLISHED_LLMS = {
    "Qwen2.5-7B-Instruct": _qwen25_7b,
    "Meta-Llama-3-8B-Instruct": _llama3_8b,
    "Mistral-7B-Instruct-v0.3": _mistral_7b,
    "Qwen3-8B": _qwen3_8b,
}
DEFAULT_LLM = "Qwen2.5-7B-Instruct"


def published_llm(value: str) -> tuple[PretrainedConfig, str]:
    """(config, name) of the published LLM whose folder name `value` ends with; Qwen2.5-7B otherwise."""
    name = Path(value).name
    return PUBLISHED_LLMS.get(name, PUBLISHED_LLMS[DEFAULT_LLM])(), name if name in PUBLISHED_LLMS else DEFAULT_LLM


def tiny_encoder(choice: str, hidden: int, layers: int, projection: int) -> PretrainedConfig:
    """Small configs of the real classes (4 attention heads): a CPU forward well under a second."""
    common = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=4)
    if choice == "clip":
        return CLIPVisionConfig(**common, image_size=224, patch_size=32, projection_dim=projection)
    if choice == "siglip":
        return SiglipVisionConfig(**common, image_size=224, patch_size=32)
    if choice == "dinov2":
        return Dinov2Config(
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=4,
            mlp_ratio=2,
            image_size=224,
            patch_size=32,
        )
    wav2vec_like = dict(
        **common, conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, conv_bias=True
    )
    if choice == "hubert":
        return HubertConfig(**wav2vec_like, feat_extract_norm="layer", do_stable_layer_norm=True)
    if choice == "wavlm":
        return WavLMConfig(**wav2vec_like, feat_extract_norm="layer", do_stable_layer_norm=True, num_buckets=32)
    if choice == "data2vec-audio":
        return Data2VecAudioConfig(**wav2vec_like, conv_pos_kernel_size=15)
    if choice == "whisper":  # 80 mel bins, 30-s windows (1500 encoder frames) as every Whisper
        return WhisperConfig(
            d_model=hidden,
            encoder_layers=layers,
            encoder_attention_heads=4,
            encoder_ffn_dim=2 * hidden,
            decoder_layers=1,
            decoder_attention_heads=4,
            decoder_ffn_dim=2 * hidden,
            num_mel_bins=80,
            vocab_size=64,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=1,
            decoder_start_token_id=1,
            begin_suppress_tokens=None,
            suppress_tokens=None,
            max_source_positions=1500,
            max_target_positions=32,
        )
    raise ValueError(f"unknown encoder {choice!r}")

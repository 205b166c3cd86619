"""Build the AffectGPT model from a Config: tiny random models (demo/tests) or local HF folders (7B).

`model.llm/clip/hubert == "tiny"` builds random-initialised models of the real classes
(Qwen2ForCausalLM, CLIPVisionModelWithProjection, HubertModel) from the ModelConfig tiny_* sizes,
with a fixed seed, so every build is identical. Any other value is a local folder loaded with
`from_pretrained(..., local_files_only=True)`; nothing is ever downloaded.

`build_skeleton` builds the same modules on the meta device (no memory, no weights) for
`python -m affectgpt.describe` and the official-checkpoint importer: real folders contribute their
config.json, missing folders fall back to the published architecture configs below.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import init_empty_weights
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    HubertConfig,
    HubertModel,
    PretrainedConfig,
    Qwen2Config,
    Wav2Vec2FeatureExtractor,
)

from affectgpt.config import Config, ModelConfig
from affectgpt.model.affectgpt import AffectGPT
from affectgpt.model.encoders import AudioEncoder, VisualEncoder
from affectgpt.model.fusion import ModalityHeads
from affectgpt.model.tokenizer import load_tokenizer
from affectgpt.model.zero3 import built_whole, zero3_init_requested

logger = logging.getLogger(__name__)

TINY = "tiny"
# Qwen2.5's vocabulary size, so the real tokenizer's ids (placeholders 151665-151669) fit the tiny LLM.
TINY_VOCAB = 151936
SEED = 0
# Where to get each backbone and where the official layout expects it.
SOURCES = {
    "llm": ("Qwen/Qwen2.5-7B-Instruct", "models/Qwen2.5-7B-Instruct"),
    "clip": ("openai/clip-vit-large-patch14", "models/clip-vit-large-patch14"),
    "hubert": ("TencentGameMate/chinese-hubert-large", "models/chinese-hubert-large"),
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# --- configs -------------------------------------------------------------------------------------
def published_config(role: str) -> PretrainedConfig:
    """The published architectures (used by describe when the folders are not downloaded)."""
    if role == "llm":  # Qwen2.5-7B-Instruct config.json
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
    if role == "clip":  # CLIP ViT-L/14 vision tower
        return CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=224,
            patch_size=14,
            projection_dim=768,
        )
    if role == "hubert":  # chinese-hubert-large
        return HubertConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=True,
        )
    raise ValueError(role)


def tiny_config(role: str, m: ModelConfig) -> PretrainedConfig:
    """Small configs of the real classes: one CPU training step well under a second."""
    if role == "llm":
        return Qwen2Config(
            vocab_size=TINY_VOCAB,
            hidden_size=m.tiny_llm_hidden,
            intermediate_size=m.tiny_llm_intermediate,
            num_hidden_layers=m.tiny_llm_layers,
            num_attention_heads=m.tiny_llm_heads,
            num_key_value_heads=m.tiny_llm_kv_heads,
            max_position_embeddings=4096,
            tie_word_embeddings=False,
        )
    h, layers = m.tiny_encoder_hidden, m.tiny_encoder_layers
    if role == "clip":
        return CLIPVisionConfig(
            hidden_size=h,
            intermediate_size=2 * h,
            num_hidden_layers=layers,
            num_attention_heads=4,
            image_size=224,
            patch_size=32,
            projection_dim=m.tiny_clip_projection,
        )
    if role == "hubert":
        return HubertConfig(
            hidden_size=h,
            intermediate_size=2 * h,
            num_hidden_layers=layers,
            num_attention_heads=4,
            conv_dim=(8,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            conv_bias=True,
        )
    raise ValueError(role)


def model_folder(m: ModelConfig, role: str) -> Path:
    """The local folder of model.<role>; a clear error says what to download and where."""
    value = getattr(m, role)
    folder = Path(value).expanduser()
    if not (folder / "config.json").is_file():
        hub_id, default = SOURCES[role]
        raise FileNotFoundError(
            f"model.{role}={value!r}: no Hugging Face model folder there (config.json missing). Download "
            f"{hub_id} (e.g. `huggingface-cli download {hub_id} --local-dir {default}`) and point model.{role} "
            f"at it (official layout: {default}), or use model.{role}=tiny for the CPU demo."
        )
    return folder


def resolve_config(m: ModelConfig, role: str) -> PretrainedConfig:
    """tiny -> tiny config; folder -> its config.json; missing folder -> FileNotFoundError."""
    if getattr(m, role) == TINY:
        return tiny_config(role, m)
    config = AutoConfig.from_pretrained(str(model_folder(m, role)), local_files_only=True)
    if role == "clip" and config.model_type == "clip":  # a full CLIPModel folder: keep the vision side
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        return vision
    return config


# --- components ----------------------------------------------------------------------------------
def build_llm(m: ModelConfig, seed: int = SEED) -> nn.Module:
    """The frozen causal LM in `model.llm_dtype` (tiny: seeded random Qwen2ForCausalLM)."""
    dtype = DTYPES[m.llm_dtype]
    if m.llm == TINY:
        with torch.random.fork_rng(devices=[]), built_whole():
            torch.manual_seed(seed)
            llm = AutoModelForCausalLM.from_config(tiny_config("llm", m))
            if m.tiny_llm_head_std > 0:
                torch.nn.init.normal_(llm.get_output_embeddings().weight, std=m.tiny_llm_head_std)
        llm = llm.to(dtype)
    else:
        with built_whole(enabled=not zero3_init_requested()):
            llm = AutoModelForCausalLM.from_pretrained(str(model_folder(m, "llm")), local_files_only=True, dtype=dtype)
    return llm


def apply_lora(llm: nn.Module, m: ModelConfig) -> PeftModel:
    """Freeze the base LLM and add LoRA (official: r 16, alpha 32, dropout 0.05, q/k/v/o/gate/up/down)."""
    llm.requires_grad_(False)
    if m.gradient_checkpointing:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=m.lora_r,
        lora_alpha=m.lora_alpha,
        lora_dropout=m.lora_dropout,
        target_modules=list(m.lora_targets),
    )
    return get_peft_model(llm, lora)


# The encoders are frozen and also run outside the DeepSpeed engine (feature cache): never partitioned here.
@built_whole()
def build_visual_encoder(m: ModelConfig, seed: int = SEED) -> VisualEncoder:
    """Frozen CLIP vision tower + projection (tiny: seeded random)."""
    if m.clip == TINY:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            clip = CLIPVisionModelWithProjection(tiny_config("clip", m))
        return VisualEncoder(clip, CLIPImageProcessor())
    folder = model_folder(m, "clip")
    # Only the vision tower + projection of a CLIPModel folder is loaded (the text tower is unused).
    clip = CLIPVisionModelWithProjection.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    has_processor = (folder / "preprocessor_config.json").is_file()
    processor = (
        CLIPImageProcessor.from_pretrained(str(folder), local_files_only=True)
        if has_processor
        else CLIPImageProcessor()
    )
    return VisualEncoder(clip, processor)


@built_whole()  # as build_visual_encoder
def build_audio_encoder(m: ModelConfig, seed: int = SEED) -> AudioEncoder:
    """Frozen HuBERT (tiny: seeded random)."""
    if m.hubert == TINY:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 2)
            hubert = HubertModel(tiny_config("hubert", m))
        return AudioEncoder(hubert, Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True))
    folder = model_folder(m, "hubert")
    hubert = HubertModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    if (folder / "preprocessor_config.json").is_file():
        extractor = Wav2Vec2FeatureExtractor.from_pretrained(str(folder), local_files_only=True)
    else:  # HF defaults (do_normalize=True)
        extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000)
    return AudioEncoder(hubert, extractor)


def build_heads(m: ModelConfig, visual_dim: int, audio_dim: int, llm_dim: int, seed: int = SEED) -> ModalityHeads:
    """The trainable poolers/projections (fp32); the Q-Former is tiny when the encoders are."""
    qformer = {}
    if m.clip == TINY and m.hubert == TINY:
        qformer = dict(qformer_hidden=m.tiny_encoder_hidden, qformer_heads=4, qformer_layers=m.tiny_encoder_layers)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 3)
        return ModalityHeads(
            visual_dim,
            audio_dim,
            llm_dim,
            video_fusion=m.video_fusion,
            audio_fusion=m.audio_fusion,
            multi_fusion=m.multi_fusion,
            num_video_query_token=m.num_video_query_token,
            num_audio_query_token=m.num_audio_query_token,
            num_multi_query_token=m.num_multi_query_token,
            **qformer,
        )


def build_model(cfg: Config, seed: int = SEED, with_encoders: bool = True) -> tuple[AffectGPT, Any]:
    """Model (frozen encoders + heads + LoRA LLM) and tokenizer. `with_encoders=False` skips
    CLIP/HuBERT for runs that feed precomputed features (feature cache)."""
    m = cfg.model
    tokenizer = load_tokenizer(m)
    llm = apply_lora(build_llm(m, seed), m)
    visual = build_visual_encoder(m, seed) if with_encoders else None
    audio = build_audio_encoder(m, seed) if with_encoders else None
    visual_dim = visual.dim if visual else resolve_config(m, "clip").projection_dim
    audio_dim = audio.dim if audio else resolve_config(m, "hubert").hidden_size
    heads = build_heads(m, visual_dim, audio_dim, llm.get_base_model().config.hidden_size, seed)
    model = AffectGPT(
        llm, heads, tokenizer, visual, audio, face_or_frame=m.face_or_frame, loss_vocab_chunk=m.loss_vocab_chunk
    )
    logger.info("built AffectGPT: llm=%s clip=%s hubert=%s", m.llm, m.clip, m.hubert)
    return model, tokenizer


@dataclass
class Skeleton:
    """The parameter-bearing modules on the meta device (shapes and names, no memory)."""

    llm: PeftModel
    heads: ModalityHeads
    clip: nn.Module
    hubert: nn.Module
    sources: dict[str, str]  # role -> "tiny" | "config.json" | "published"


def build_skeleton(m: ModelConfig) -> Skeleton:
    """Every module of the model on the meta device, from tiny / config.json / published configs."""
    sources = {}
    configs = {}
    for role in ("llm", "clip", "hubert"):
        try:
            configs[role] = resolve_config(m, role)
            sources[role] = TINY if getattr(m, role) == TINY else "config.json"
        except FileNotFoundError:  # folder not downloaded: describe/import still work from the published shapes
            configs[role] = published_config(role)
            sources[role] = "published architecture, folder not found"
    dtype = DTYPES.get(m.llm_dtype, torch.float32)
    with init_empty_weights():
        llm = AutoModelForCausalLM.from_config(configs["llm"], dtype=dtype)
        clip = CLIPVisionModelWithProjection(configs["clip"])
        hubert = HubertModel(configs["hubert"])
    llm = apply_lora(llm, m)
    with torch.device("meta"):
        heads = build_heads(
            m, configs["clip"].projection_dim, configs["hubert"].hidden_size, configs["llm"].hidden_size
        )
    clip.requires_grad_(False)
    hubert.requires_grad_(False)
    return Skeleton(llm, heads, clip, hubert, sources)

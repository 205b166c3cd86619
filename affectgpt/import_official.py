"""`python -m affectgpt.import_official OFFICIAL.pth OUT_DIR [--config CFG]`: convert a released
AffectGPT checkpoint into our checkpoint format (peft adapter + projectors.safetensors + config).

The official file is a torch pickle with `model` (the trainable weights only), `optimizer`,
`config`, `scaler` and `epoch`. It is read with `torch.load(weights_only=True, mmap=True)`: plain
containers and tensors only, never arbitrary objects. The official runner stores `config` as a
plain dict, so this works; a file holding other objects (e.g. an OmegaConf config) is refused with a
message saying how to re-save just its `model` entry from a trusted environment.

Key mapping (1:1, see ModalityHeads):
  llama_model.base_model.model.<path>.lora_{A|B}.default.weight -> base_model.model.<path>.lora_{A|B}.weight
  affectgpt_proj.*, video_attention_mlp.*, ..., image_llama_proj.*  -> same name in projectors.safetensors
The expected keys and shapes come from the config's model built on the meta device; unknown,
missing and mis-shaped keys are reported by name and nothing is written.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
from pathlib import Path

import torch
from peft import get_peft_model_state_dict

from affectgpt.config import Config, load_config
from affectgpt.model.backbones import OFFICIAL
from affectgpt.model.build import build_skeleton
from affectgpt.model.checkpoint import CheckpointError, compare_state, write_checkpoint

DEFAULT_CONFIG = "configs/affectgpt_qwen2.5_7b.yaml"
LLM_PREFIX = "llama_model."
_ADAPTER_NAME = re.compile(r"\.(lora_[AB])\.default\.weight$")


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The `model` entry of an official checkpoint, loaded without unpickling arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # legacy (non-zip) torch files cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: holds objects that a weights-only load refuses ({str(err).splitlines()[0]}). If you trust the "
            f"file, re-save its weights in an environment with the official code: "
            f"torch.save({{'model': torch.load(p, weights_only=False)['model']}}, 'model_only.pth')"
        ) from err
    except (RuntimeError, OSError, EOFError) as err:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({err})") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        keys = list(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: no 'model' state dict in the file (found {keys})")
    bad = [k for k, v in ckpt["model"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: 'model' entries that are not tensors: {bad[:10]}")
    return ckpt["model"]


def convert(official: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Split the official keys into (peft adapter state, projector state), renaming LoRA keys."""
    lora, projectors = {}, {}
    for key, value in official.items():
        value = value.float().contiguous()
        if key.startswith(LLM_PREFIX):
            lora[_ADAPTER_NAME.sub(r".\1.weight", key[len(LLM_PREFIX) :])] = value
        else:
            projectors[key] = value
    return lora, projectors


def import_official(path: str | Path, out_dir: str | Path, cfg: Config) -> dict[str, int]:
    """Convert and write; raises CheckpointError naming every unknown, missing or mis-shaped key."""
    lora, projectors = convert(read_official(path))
    skeleton = build_skeleton(cfg.model)
    expected_lora = get_peft_model_state_dict(skeleton.llm)
    expected_projectors = dict(skeleton.heads.state_dict())
    # Report under the official names, so a user can find the key in the released file.
    official_lora = {LLM_PREFIX + _lora_official(k): v for k, v in lora.items()}
    official_expected = {LLM_PREFIX + _lora_official(k): v for k, v in expected_lora.items()}
    try:
        compare_state({**official_lora, **projectors}, {**official_expected, **expected_projectors}, f"{path}")
    except CheckpointError as err:
        raise CheckpointError(f"{err}{_backbone_reason(cfg, skeleton)}") from err
    peft_config = skeleton.llm.peft_config["default"]
    peft_config.base_model_name_or_path = cfg.model.llm
    write_checkpoint(out_dir, lora, peft_config, projectors, cfg)
    return {"lora_tensors": len(lora), "projector_tensors": len(projectors), "missing": 0, "unexpected": 0}


def _backbone_reason(cfg: Config, skeleton) -> str:
    """Why shapes differ when the config swaps a backbone: the released heads are sized for CLIP/HuBERT/Qwen2.5."""
    m = cfg.model
    chosen = {"visual_encoder": m.visual_encoder, "audio_encoder": m.audio_encoder}
    swapped = [f"model.{k}={v!r}" for k, v in chosen.items() if v != OFFICIAL[k]]
    if not swapped:
        return ""
    visual, audio = skeleton.heads_in
    return (
        f". Reason: the released checkpoint was trained on CLIP ViT-L/14 (768-d) and chinese-hubert-large (1024-d) "
        f"features; {', '.join(swapped)} feed the heads {visual}-d visual / {audio}-d audio vectors, so its heads "
        f"cannot be used: import it with the official backbones (model.visual_encoder=clip model.audio_encoder=hubert)"
    )


def _lora_official(key: str) -> str:
    return re.sub(r"\.(lora_[AB])\.weight$", r".\1.default.weight", key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affectgpt.import_official", description=__doc__.split("\n")[0])
    parser.add_argument("official", help="released checkpoint, e.g. checkpoint_000060_loss_0.480.pth")
    parser.add_argument("out_dir", help="folder to write (our checkpoint format)")
    parser.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"model config the weights belong to ({DEFAULT_CONFIG})"
    )
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    try:
        report = import_official(args.official, args.out_dir, cfg)
    except CheckpointError as err:
        print(f"import failed: {err}", file=sys.stderr)
        return 1
    print(
        f"imported {report['lora_tensors']} LoRA + {report['projector_tensors']} projector tensors "
        f"(missing 0, unexpected 0) -> {args.out_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

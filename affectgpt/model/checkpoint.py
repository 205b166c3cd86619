"""Checkpoints of the trainable weights only: safetensors, atomic, verified, never unpickled.

Layout of a checkpoint folder:
  adapter_config.json + adapter_model.safetensors   LoRA in peft's standard adapter format
                                                    (PeftModel.from_pretrained(base_llm, folder) reads it)
  projectors.safetensors                            the ModalityHeads weights under the official names
  config.yaml                                       the resolved Config the model was built from
  COMPLETE                                          JSON manifest {file: {sha256, bytes}}, written last

The folder is written under a temporary name and renamed into place, so a reader sees either the
old checkpoint or the complete new one; the manifest catches truncation and corruption later.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from peft import PeftConfig, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from affectgpt.config import Config, load_config
from affectgpt.files import ManifestError, verify_manifest, write_manifest

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PROJECTORS = "projectors.safetensors"
CONFIG = "config.yaml"
MANIFEST = "COMPLETE"
FORMAT = "affectgpt-checkpoint-v1"


class CheckpointError(RuntimeError):
    """A checkpoint that is incomplete, corrupted or does not fit the model; names the file/keys."""


def _tensors_for_saving(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def trainable_state(model: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(LoRA state in peft adapter naming, ModalityHeads state under the official names)."""
    return get_peft_model_state_dict(model.llama_model), dict(model.heads.state_dict())


def write_weights(
    folder: str | Path,
    lora_state: dict[str, torch.Tensor],
    peft_config: PeftConfig,
    projector_state: dict[str, torch.Tensor],
    cfg: Config | None = None,
) -> None:
    """The weight files (and config) into `folder`, an unfinished checkpoint: its writer adds the manifest last
    and renames it into place (write_checkpoint here; the training loop for a full training checkpoint)."""
    folder = Path(folder)
    peft_config.save_pretrained(str(folder))
    save_file(_tensors_for_saving(lora_state), str(folder / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    save_file(_tensors_for_saving(projector_state), str(folder / PROJECTORS), metadata={"format": "pt"})
    if cfg is not None:
        cfg.save(folder / CONFIG)


def save_weights(model: Any, cfg: Config | None, folder: str | Path) -> None:
    """write_weights of an AffectGPT model's trainable weights (LoRA + heads)."""
    lora, projectors = trainable_state(model)
    write_weights(folder, lora, model.llama_model.peft_config["default"], projectors, cfg)


def write_checkpoint(
    out_dir: str | Path,
    lora_state: dict[str, torch.Tensor],
    peft_config: PeftConfig,
    projector_state: dict[str, torch.Tensor],
    cfg: Config | None = None,
) -> Path:
    """A standalone weights checkpoint: the files into a temporary sibling folder, the manifest last, then
    renamed into place (an existing checkpoint of that name is replaced only once the new one is complete)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write_weights(tmp, lora_state, peft_config, projector_state, cfg)
        write_manifest(tmp, MANIFEST, format=FORMAT)
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        if out_dir.exists():
            os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def save_checkpoint(model: Any, cfg: Config | None, out_dir: str | Path) -> Path:
    """Save the trainable weights of an AffectGPT model (LoRA + heads) and its config."""
    lora, projectors = trainable_state(model)
    return write_checkpoint(out_dir, lora, model.llama_model.peft_config["default"], projectors, cfg)


def verify_checkpoint(ckpt_dir: str | Path) -> dict[str, Any]:
    """Check the manifest: every listed file present, of the right size and sha256."""
    try:
        return verify_manifest(ckpt_dir, MANIFEST, "checkpoint")
    except ManifestError as err:
        raise CheckpointError(str(err)) from None


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """A safetensors file as a dict; any read error names the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err


def compare_state(found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str) -> None:
    """Raise naming every missing, unexpected and shape-mismatched key."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = [
        f"{k} (file {tuple(found[k].shape)}, model {tuple(expected[k].shape)})"
        for k in sorted(set(found) & set(expected))
        if tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
        if keys:
            shown = ", ".join(keys[:10]) + (f", ... ({len(keys)} in all)" if len(keys) > 10 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{source} does not fit the model: " + "; ".join(problems))


def load_checkpoint(model: Any, ckpt_dir: str | Path) -> None:
    """Verify, check every key and shape, then load the LoRA and head weights into `model`."""
    ckpt_dir = Path(ckpt_dir)
    verify_checkpoint(ckpt_dir)
    lora = read_tensors(ckpt_dir / ADAPTER_WEIGHTS)
    projectors = read_tensors(ckpt_dir / PROJECTORS)
    expected_lora, expected_projectors = trainable_state(model)
    compare_state(lora, expected_lora, str(ckpt_dir / ADAPTER_WEIGHTS))
    compare_state(projectors, expected_projectors, str(ckpt_dir / PROJECTORS))
    result = set_peft_model_state_dict(model.llama_model, lora)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise CheckpointError(f"{ckpt_dir / ADAPTER_WEIGHTS}: peft did not use {unexpected[:10]}")
    model.heads.load_state_dict(projectors, strict=True)


def load_checkpoint_config(ckpt_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The resolved Config saved with a checkpoint (to rebuild the same model for inference)."""
    path = Path(ckpt_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; this checkpoint was saved without its config")
    return load_config(path, overrides)

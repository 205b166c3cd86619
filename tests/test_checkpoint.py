"""Trainable-weight checkpoints: exact round trip, peft-readable LoRA, clear errors on damage."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel

from affectgpt.config import Config
from affectgpt.model.build import build_llm, build_model
from affectgpt.model.checkpoint import (
    ADAPTER_WEIGHTS,
    MANIFEST,
    PROJECTORS,
    CheckpointError,
    load_checkpoint,
    load_checkpoint_config,
    read_tensors,
    save_checkpoint,
)

PROMPT = (
    "###Human: The audio and video merged info is: <Multi><MultiHere></Multi>. The audio content is as follows: "
    "<Audio><AudioHere></Audio>. Meanwhile, we uniformly sample raw frames from the video and extract faces from "
    "these frames: <Video><FaceHere></Video>. The subtitle of this video is: <Subtitle>{}</Subtitle>. Now, please "
    "answer my question based on all the provided information. Please recognize all possible emotional states of "
    "the character. ###Assistant: "
)


def feature_batch(tok, model, subtitles=("I am fine.", "Leave me alone, please!")):
    """A text batch (official prompt) with precomputed encoder features of the model's sizes."""
    rows = [tok(PROMPT.format(s), add_special_tokens=False).input_ids for s in subtitles]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    g = torch.Generator().manual_seed(1)
    visual_dim, audio_dim = model.heads.image_llama_proj.in_features, model.heads.audio_llama_proj.in_features
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "names": [f"s{i}" for i in range(len(rows))],
        "face_feats": torch.randn(len(rows), 8, visual_dim, generator=g),
        "audio_feats": torch.randn(len(rows), 8, audio_dim, generator=g),
    }


def randomize_trainable(model, seed=123):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model.causal_lm(inputs_embeds=model.embed(batch), attention_mask=batch["attention_mask"]).logits


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    cfg = Config()
    model, tok = build_model(cfg, with_encoders=False)
    randomize_trainable(model)
    batch = feature_batch(tok, model)
    ckpt = save_checkpoint(model, cfg, tmp_path_factory.mktemp("ckpt") / "epoch_1")
    return cfg, model, tok, batch, ckpt


def test_save_load_reproduces_logits_exactly(saved):
    cfg, model, _, batch, ckpt = saved
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(
        ["COMPLETE", "adapter_config.json", ADAPTER_WEIGHTS, PROJECTORS, "config.yaml"]
    )
    assert not list(ckpt.parent.glob(".*tmp*"))  # the temporary folder was renamed away
    fresh, _ = build_model(load_checkpoint_config(ckpt), with_encoders=False)
    before = logits(fresh, batch)
    load_checkpoint(fresh, ckpt)
    after, reference = logits(fresh, batch), logits(model, batch)
    assert not torch.equal(before, reference)
    assert torch.equal(after, reference)
    # the projector file holds the official names, unprefixed
    assert "affectgpt_proj.weight" in read_tensors(ckpt / PROJECTORS)
    manifest = json.loads((ckpt / MANIFEST).read_text())
    assert set(manifest["files"]) == {"adapter_config.json", ADAPTER_WEIGHTS, PROJECTORS, "config.yaml"}


def test_saved_lora_loads_with_peft(saved):
    cfg, model, _, _, ckpt = saved
    peft_model = PeftModel.from_pretrained(build_llm(cfg.model), str(ckpt))
    ours = dict(model.llama_model.named_parameters())
    theirs = dict(peft_model.named_parameters())
    lora_names = [n for n in ours if "lora_" in n]
    assert len(lora_names) == 28  # 2 layers x 7 modules x (A, B)
    for name in lora_names:
        assert torch.equal(ours[name], theirs[name]), name


def test_overwrite_is_atomic_and_complete(saved, tmp_path):
    cfg, model, _, _, _ = saved
    out = tmp_path / "ckpt"
    save_checkpoint(model, cfg, out)
    (out / "stale.txt").write_text("from an older save")
    save_checkpoint(model, cfg, out)
    assert not (out / "stale.txt").exists() and (out / MANIFEST).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "no_manifest"])
def test_damaged_checkpoint_names_the_file(saved, tmp_path, damage):
    cfg, model, _, _, _ = saved
    ckpt = save_checkpoint(model, cfg, tmp_path / "ckpt")
    target = ckpt / (PROJECTORS if damage == "truncate" else ADAPTER_WEIGHTS)
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
        pattern = rf"{PROJECTORS}: truncated"
    elif damage == "flip_byte":
        data[-5] ^= 0xFF
        target.write_bytes(bytes(data))
        pattern = rf"{ADAPTER_WEIGHTS}: corrupted"
    else:
        (ckpt / MANIFEST).unlink()
        pattern = "COMPLETE: missing; the checkpoint was not completely written"
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(model, ckpt)


def test_truncated_safetensors_read_names_the_file(saved, tmp_path):
    *_, ckpt = saved
    broken = tmp_path / PROJECTORS
    broken.write_bytes((ckpt / PROJECTORS).read_bytes()[:100])
    with pytest.raises(CheckpointError, match=rf"{broken}: not a readable safetensors file"):
        read_tensors(broken)


def test_mismatched_model_names_keys_and_shapes(saved):
    cfg, _, _, _, ckpt = saved
    other = Config()
    other.model.lora_r = 8
    other.model.video_fusion = "mean"
    model, _ = build_model(other, with_encoders=False)
    with pytest.raises(CheckpointError, match=r"shape mismatch: .*lora_A.weight \(file \(16, 64\), model \(8, 64\)\)"):
        load_checkpoint(model, ckpt)
    other.model.lora_r = 16
    model, _ = build_model(other, with_encoders=False)
    with pytest.raises(
        CheckpointError, match=r"projectors.safetensors does not fit the model: unexpected: video_attention_mlp.bias"
    ):
        load_checkpoint(model, ckpt)

"""Importing a released AffectGPT checkpoint (official key names, torch file) into our format."""

from __future__ import annotations

import pytest
import torch
from test_checkpoint import feature_batch, logits, randomize_trainable

from affectgpt.config import Config
from affectgpt.import_official import main, read_official
from affectgpt.model.build import build_model, build_skeleton
from affectgpt.model.checkpoint import CheckpointError, load_checkpoint

LORA_MODULES = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)
HEADS = (
    "affectgpt_proj",
    "video_attention_mlp",
    "audio_llama_proj",
    "audio_attention_mlp",
    "multi_audio_embs",
    "multi_video_embs",
    "attention_mlp",
    "fc_att",
    "multi_llama_proj",
    "image_llama_proj",
)


class NotAWeight:
    """Stands for a non-container config object (e.g. OmegaConf) that weights_only refuses."""


def official_state(model, n_layers: int) -> dict[str, torch.Tensor]:
    """The released file's `model` dict, named as the official code names it (reference §2, §1.4)."""
    state = {}
    for i in range(n_layers):
        for module in LORA_MODULES:
            for ab in ("A", "B"):
                name = f"llama_model.base_model.model.model.layers.{i}.{module}.lora_{ab}.default.weight"
                path = f"base_model.model.model.layers.{i}.{module}.lora_{ab}.default"
                state[name] = model.llama_model.get_submodule(path).weight.detach().clone()
    for head in HEADS:
        layer = getattr(model.heads, head)
        state[f"{head}.weight"], state[f"{head}.bias"] = layer.weight.detach().clone(), layer.bias.detach().clone()
    return state


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("official")
    cfg = Config()
    cfg_path = tmp / "tiny.yaml"
    cfg.save(cfg_path)
    reference, tok = build_model(cfg, with_encoders=False)
    randomize_trainable(reference, seed=7)
    state = official_state(reference, cfg.model.tiny_llm_layers)
    path = tmp / "checkpoint_000060_loss_0.480.pth"
    extras = {
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-5}]},
        "config": {"run": {"seed": 42}},
        "scaler": {"scale": 65536.0},
        "epoch": 60,
    }
    torch.save({"model": state, **extras}, path)
    return tmp, cfg_path, path, state, reference, tok


def test_import_round_trip_matches_directly_set_weights(official, capsys):
    tmp, cfg_path, path, state, reference, tok = official
    assert main([str(path), str(tmp / "imported"), "--config", str(cfg_path)]) == 0
    out = capsys.readouterr().out
    assert f"imported 28 LoRA + {2 * len(HEADS)} projector tensors (missing 0, unexpected 0)" in out
    model, _ = build_model(Config(), with_encoders=False)
    load_checkpoint(model, tmp / "imported")
    batch = feature_batch(tok, model)
    assert torch.equal(logits(model, batch), logits(reference, batch))
    assert (tmp / "imported" / "config.yaml").read_text() == Config().to_yaml().replace(
        "run_name: ''", "run_name: tiny"
    )


def test_unknown_missing_and_misshaped_keys_are_named(official, capsys):
    tmp, cfg_path, _, state, _, _ = official
    bad = dict(state)
    bad["video_Qformer.bert.weight"] = torch.zeros(2)
    del bad["fc_att.bias"]
    bad["multi_llama_proj.weight"] = torch.zeros(3, 3)
    path = tmp / "bad.pth"
    torch.save({"model": bad}, path)
    assert main([str(path), str(tmp / "bad_out"), "--config", str(cfg_path)]) == 1
    err = capsys.readouterr().err
    assert "missing: fc_att.bias" in err and "unexpected: video_Qformer.bert.weight" in err
    assert "shape mismatch: multi_llama_proj.weight (file (3, 3), model (64, 48))" in err
    assert not (tmp / "bad_out").exists()


def test_non_weight_objects_are_refused_with_a_clear_message(tmp_path, official):
    *_, state, _, _ = official
    path = tmp_path / "pickled.pth"
    torch.save({"model": state, "config": NotAWeight()}, path)
    with pytest.raises(CheckpointError, match=rf"{path}: holds objects that a weights-only load refuses"):
        read_official(path)
    with pytest.raises(CheckpointError, match="no 'model' state dict"):
        torch.save({"weights": state}, tmp_path / "nomodel.pth")
        read_official(tmp_path / "nomodel.pth")


def test_official_7b_config_expects_the_released_key_set():
    cfg = Config()
    cfg.model.llm, cfg.model.clip, cfg.model.hubert = "models/Qwen2.5-7B-Instruct", "models/clip", "models/hubert"
    sk = build_skeleton(cfg.model)
    lora = {n: p.shape for n, p in sk.llm.named_parameters() if "lora_" in n}
    assert len(lora) == 28 * 7 * 2
    assert lora["base_model.model.model.layers.27.self_attn.k_proj.lora_B.default.weight"] == (512, 16)
    assert lora["base_model.model.model.layers.0.mlp.down_proj.lora_A.default.weight"] == (16, 18944)
    heads = {n: tuple(p.shape) for n, p in sk.heads.state_dict().items()}
    assert sorted({n.rsplit(".", 1)[0] for n in heads}) == sorted(HEADS)
    assert heads["affectgpt_proj.weight"] == (3584, 768) and heads["fc_att.weight"] == (2, 1024)

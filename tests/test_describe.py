"""`python -m affectgpt.describe`: parameter counts (official E16 numbers) and memory estimates."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest

from affectgpt.config import Config, load_config
from affectgpt.describe import count_params, estimate_memory
from affectgpt.model.build import build_model, build_skeleton

REPO = Path(__file__).resolve().parents[1]
OFFICIAL_YAML = REPO / "configs" / "affectgpt_qwen2.5_7b.yaml"


def run_describe(*args: str) -> dict[str, int]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, "-m", "affectgpt.describe", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,  # safety net for a loaded machine, not a speed target
    )
    assert out.returncode == 0, out.stderr
    counts = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(": ")
        if key.endswith("_params"):
            counts[key] = int(value)
    assert "zero3" in out.stdout and "assumptions:" in out.stdout
    return counts


def check_official(counts: dict[str, int]) -> None:
    assert counts["lora_params"] == 40370176
    assert counts["other_trainable_params"] == 16798468
    assert counts["total_params"] == counts["frozen_params"] + counts["lora_params"] + counts["other_trainable_params"]
    # Qwen2.5-7B (7,615,616,512) + CLIP ViT-L/14 vision tower with projection + HuBERT-large, all frozen
    assert counts["frozen_params"] > 7_615_616_512 + 300_000_000


def test_repo_official_config_prints_e16_numbers():
    check_official(run_describe(str(OFFICIAL_YAML), "--world-size", "3"))


def test_official_model_fields_in_a_tmp_yaml(tmp_path):
    path = tmp_path / "official.yaml"
    path.write_text(
        "model:\n  llm: models/Qwen2.5-7B-Instruct\n  clip: models/clip-vit-large-patch14\n"
        "  hubert: models/chinese-hubert-large\n  llm_dtype: float16\n"
    )
    counts = count_params(build_skeleton(load_config(path).model))
    check_official({f"{k}_params": v for k, v in vars(counts).items()})


def test_tiny_counts_equal_the_built_model():
    cfg = Config()
    counts = count_params(build_skeleton(cfg.model))
    model, _ = build_model(cfg)
    params = list(model.parameters())
    assert counts.total == sum(p.numel() for p in params)
    assert counts.lora + counts.other_trainable == sum(p.numel() for p in params if p.requires_grad)
    assert counts.lora == sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)


@pytest.fixture(scope="module")
def official_skeleton():
    cfg = load_config(OFFICIAL_YAML)
    return cfg, build_skeleton(cfg.model)


def test_memory_estimate_shards_as_the_strategies_do(official_skeleton):
    cfg, sk = official_skeleton
    cfg = copy.deepcopy(cfg)  # edited below; the fixture is shared
    one, four = estimate_memory(sk, cfg, 1), estimate_memory(sk, cfg, 4)
    for mem in (one, four):
        assert mem["ddp"]["weights"] == mem["zero2"]["weights"]
        assert mem["ddp"]["total"] > mem["zero2"]["total"]
    assert four["zero2"]["total"] > four["zero3"]["total"]
    assert four["zero3"]["weights"] == pytest.approx(one["ddp"]["weights"] / 4)
    assert four["zero2"]["optimizer"] == pytest.approx(one["ddp"]["optimizer"] / 4)
    assert four["ddp"]["total"] == one["ddp"]["total"]
    assert 14 * 1024**3 < one["ddp"]["weights"] < 18 * 1024**3  # fp16 7B + fp32 encoders and heads
    # the chunked loss never holds the [targets, 152k] logits; ZeRO-3 partitions lm_head and takes the plain path
    targets = cfg.train.batch_size * cfg.model.max_length // 2
    full_logits = targets * sk.llm.get_base_model().config.vocab_size * 8
    saved = one["zero3"]["activations"] - one["ddp"]["activations"]
    assert 0.95 * full_logits < saved < full_logits
    cfg.model.loss_vocab_chunk = 0
    plain = estimate_memory(sk, cfg, 1)
    assert plain["ddp"]["activations"] == plain["zero3"]["activations"] == one["zero3"]["activations"]
    cfg.model.gradient_checkpointing = True
    assert estimate_memory(sk, cfg, 1)["ddp"]["activations"] < one["ddp"]["activations"] / 3

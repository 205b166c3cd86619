"""Under a registered DeepSpeed ZeRO-3 config, encoders and the tiny LLM are built whole; a real LLM folder is
loaded partitioned only when zero3 init is asked for. Run in a subprocess: it initialises torch.distributed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from transformers import Qwen2ForCausalLM

from affectgpt.config import ModelConfig
from affectgpt.model.build import tiny_config

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, os, sys
import deepspeed
deepspeed.init_distributed(dist_backend="gloo")
from transformers.integrations import HfDeepSpeedConfig, is_deepspeed_zero3_enabled
registered = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1})
from affectgpt.config import ModelConfig
from affectgpt.model.build import build_audio_encoder, build_llm, build_visual_encoder

def state(weight):
    return "partitioned" if hasattr(weight, "ds_id") else list(weight.shape)

out = {
    "clip": state(build_visual_encoder(ModelConfig()).clip.vision_model.embeddings.patch_embedding.weight),
    "hubert": state(build_audio_encoder(ModelConfig()).hubert.feature_extractor.conv_layers[0].conv.weight),
    "tiny_llm": state(build_llm(ModelConfig()).get_output_embeddings().weight),
    "folder_llm": state(build_llm(ModelConfig(llm=sys.argv[1])).get_output_embeddings().weight),
    "still_registered": is_deepspeed_zero3_enabled(),
}
print("RESULT " + json.dumps(out))
"""


def probe(folder: Path, zero3_init: str, port: int) -> dict:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "ACCELERATE_DEEPSPEED_ZERO3_INIT": zero3_init,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder)], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_models_are_built_whole_under_zero3_unless_zero3_init_is_asked(tmp_path):
    m = ModelConfig()
    folder = tmp_path / "llm"
    Qwen2ForCausalLM(tiny_config("llm", m)).save_pretrained(folder)
    vocab = tiny_config("llm", m).vocab_size

    default = probe(folder, "false", 29611)
    assert default["clip"][0] == m.tiny_encoder_hidden and default["hubert"][1] == 1  # full conv weights
    assert default["tiny_llm"] == default["folder_llm"] == [vocab, m.tiny_llm_hidden]
    assert default["still_registered"]  # the DeepSpeed config is restored for the engine and generate()

    asked = probe(folder, "true", 29612)
    assert asked["folder_llm"] == "partitioned"  # zero3_init_flag: true -> loaded as shards (host memory)
    assert asked["clip"] == default["clip"] and asked["tiny_llm"] == default["tiny_llm"]

"""The issue-15 contract as a user runs it: tiny backbone folders from `python -m affectgpt.model.tiny_folders`,
then `accelerate launch train.py model.visual_encoder=siglip model.audio_encoder=wavlm model.llm=<tiny llama>`
trains and validates on demo data through the feature cache, and infer.py / evaluate.py work on the result."""

import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from affectgpt.data import synthetic

REPO = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "TOKENIZERS_PARALLELISM": "false",
}


def run(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{args}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    return proc


def test_siglip_wavlm_llama_train_infer_evaluate(tmp_path):
    tiny = tmp_path / "tiny"
    made = run("-m", "affectgpt.model.tiny_folders", str(tiny)).stdout
    assert f"llama: {tiny / 'llama'}" in made and f"siglip: {tiny / 'siglip'}" in made
    root = synthetic.generate(tmp_path / "demo", n=30, seed=0, unibench=False)
    out = tmp_path / "runs"
    train = run(
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        str(REPO / "train.py"),
        "model.visual_encoder=siglip",
        f"model.clip={tiny / 'siglip'}",
        "model.audio_encoder=wavlm",
        f"model.hubert={tiny / 'wavlm'}",
        f"model.llm={tiny / 'llama'}",
        "model.tokenizer=",
        f"data.root={root}",
        "data.val_fraction=0.2",
        "data.label_type=ovlabel",
        "data.val_max_samples=3",
        f"data.feature_cache={tmp_path / 'cache'}",
        f"train.output_dir={out}",
        "train.run_name=bb",
        "train.epochs=2",
        "train.iters_per_epoch=3",
        "train.batch_size=2",
        "train.lr=1e-3",
        "train.log_every=1",
        "train.val_batch_size=4",
        "train.val_max_new_tokens=6",
    )
    assert "best checkpoint:" in train.stdout
    assert "built AffectGPT: llm=" in train.stderr and f"siglip={tiny / 'siglip'}" in train.stderr
    metrics = [json.loads(line) for line in (out / "bb" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and all("val/avg-L1/f1" in m for m in metrics)
    log = [json.loads(line)["train/loss"] for line in (out / "bb" / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 6 and log[-1] < log[0]  # 6 steps on 24 samples at lr 1e-3: the loss falls
    ckpt = out / "bb" / "epoch_0002"
    # heads sized for the alternative widths: tiny SigLIP / WavLM 48-d in, tiny LLaMA 64-d out
    heads = load_file(ckpt / "projectors.safetensors")
    assert tuple(heads["video_attention_mlp.weight"].shape) == (1, 48)
    assert "visual_encoder: siglip" in (ckpt / "config.yaml").read_text()
    results = tmp_path / "results"
    infer = run("infer.py", "--ckpt", str(ckpt), "--split", "val", "--out-dir", str(results), "--max-new-tokens", "6")
    assert "3 generated, 0 failed" in infer.stdout + infer.stderr
    rows = [json.loads(line) for line in (results / "val.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    run("evaluate.py", "run", "--results-dir", str(results))
    assert (results / "eval-parser" / "unibench.json").is_file()

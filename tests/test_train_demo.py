"""The demo contract: `accelerate launch train.py` (no config) learns the synthetic task from audio and
video, and a control run with media shuffled across samples does not.

Slow by design (two full demo runs, about 4-5 minutes each on 2 CPU cores); it is the test that
shows the whole pipeline (data -> encoders -> fusion -> LoRA LLM -> generation -> parser -> EW
metric) actually learns. Margins: the learned run must reach avg-L1 F1 >= 0.6 (seeds give ~0.7+),
the control must stay <= 0.4.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}


def demo_run(out: Path, *extra: str) -> list[dict]:
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "1",
        str(REPO / "train.py"),
        f"train.output_dir={out}",
        *extra,
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=1800)  # safety net
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert "best checkpoint:" in proc.stdout and "python infer.py --ckpt" in proc.stdout
    return [json.loads(line) for line in (out / "demo" / "metrics.jsonl").read_text().splitlines()]


def test_demo_learns_from_media_and_control_does_not(tmp_path: Path) -> None:
    learned = demo_run(tmp_path / "learned")
    first, last = learned[0]["val/avg-L1/f1"], learned[-1]["val/avg-L1/f1"]
    assert last >= 0.6, learned
    assert last > first, learned
    control = demo_run(tmp_path / "control", "data.shuffle_media=true")
    assert control[-1]["val/avg-L1/f1"] <= 0.4, control
    assert max(r["val/avg-L1/f1"] for r in control) <= 0.4, control

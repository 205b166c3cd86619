"""Does RL help? GRPO vs continued SFT from the same early SFT checkpoint, for the same wall-clock budget.

  python benchmarks/grpo_vs_sft.py [--budget 150] [--out checkpoints/grpo_vs_sft] [--png results/grpo_vs_sft.png]

Both arms are the real CLI (`train.py`, one process each, one after the other on the same machine):
  GRPO     train.py --config configs/demo_grpo.yaml        (rl.init_from = the early SFT checkpoint)
  SFT      train.py --config <start run>/config.yaml train.resume=<the same checkpoint>   (continues its epochs)
Each arm is stopped with SIGTERM once `--budget` seconds have passed since its start (startup, training and
per-epoch validation all count); its curve is val avg-L1 F1 (metrics.jsonl, greedy answers on the held-out split)
against the seconds at which each epoch row appeared. The start point is the checkpoint's own validation row.
When the checkpoint does not exist it is trained first (grpo.ensure_demo_init: configs/demo.yaml, 6 epochs).
Summary line last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from affectgpt.config import load_config  # noqa: E402
from affectgpt.train.grpo import ensure_demo_init  # noqa: E402

KEY = "val/avg-L1/f1"
GRPO_CONFIG = REPO / "configs" / "demo_grpo.yaml"


def rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_arm(name: str, args: list[str], run_dir: Path, budget: float, log: Path) -> list[tuple[float, int, float]]:
    """Run train.py with `args` until it finishes or `budget` seconds pass; [(seconds, epoch, F1)] as rows appeared."""
    shutil.rmtree(run_dir, ignore_errors=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    curve: list[tuple[float, int, float]] = []
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=env, stdout=out, stderr=out
        )
        stopped = False
        while proc.poll() is None:
            time.sleep(0.5)
            for row in rows(run_dir / "metrics.jsonl")[len(curve) :]:
                curve.append((time.perf_counter() - start, int(row["epoch"]), float(row[KEY])))
                print(f"  {name:<5} {curve[-1][0]:6.1f} s  epoch {row['epoch']:>3}  {KEY} {row[KEY]:.4f}", flush=True)
            if not stopped and time.perf_counter() - start > budget:
                proc.send_signal(signal.SIGTERM)  # saves a resumable state and exits 3
                stopped = True
        if proc.returncode not in (0, 3):
            raise RuntimeError(f"{name} arm failed (exit {proc.returncode}); see {log}:\n{log.read_text()[-3000:]}")
    return [c for c in curve if c[0] <= budget + 1e-9] or curve[:1]


def plot(curves: dict[str, list[tuple[float, int, float]]], start: float, path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no PNG (pip install matplotlib)"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot([0.0] + [c[0] for c in curve], [start] + [c[2] for c in curve], marker="o", label=name)
    ax.set_xlabel("wall-clock seconds from the same SFT checkpoint")
    ax.set_ylabel(KEY + " (validation)")
    ax.set_title("GRPO vs continued SFT, demo model (CPU)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return f"wrote {path}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=150.0, help="wall-clock seconds per arm")
    parser.add_argument("--out", default="checkpoints/grpo_vs_sft", help="run folders of both arms")
    parser.add_argument("--png", default="results/grpo_vs_sft.png")
    parser.add_argument("--arms", default="GRPO,SFT", help="arms to (re)run; the other's curve is read from --out")
    parser.add_argument("overrides", nargs="*", help="extra section.key=value overrides for the GRPO arm")
    args = parser.parse_args()
    os.chdir(REPO)
    cfg = load_config(GRPO_CONFIG, args.overrides)
    ensure_demo_init(cfg)
    init = Path(cfg.rl.init_from)
    manifest = json.loads((init / "trainer.json").read_text())  # the trainer state and metrics row
    start_epoch = int(manifest.get("epoch", 0))
    start = float((manifest.get("metrics") or {}).get(KEY, float("nan")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"start: {init} (epoch {start_epoch}, {KEY} {start:.4f}); budget {args.budget:g} s per arm", flush=True)
    common = [f"train.output_dir={out}", "train.epochs=1000"]
    grpo = [
        "--config",
        str(GRPO_CONFIG),
        *common,
        "train.run_name=grpo",
        "train.resume=never",
        f"rl.init_from={init}",
        *args.overrides,
    ]
    # The SFT arm continues the start run itself: its own saved config (data, world, validation set) and state.
    sft = ["--config", str(init.parent / "config.yaml"), *common, "train.run_name=sft", f"train.resume={init}"]
    saved = out / "curves.json"  # each arm's curve, so one arm can be rerun (--arms GRPO) against the other's
    curves = json.loads(saved.read_text()) if saved.is_file() else {}
    for name, arm_args in (("GRPO", grpo), ("SFT", sft)):
        if name in args.arms.split(",") or name not in curves:
            curves[name] = run_arm(name, arm_args, out / name.lower(), args.budget, out / f"{name.lower()}.log")
            saved.write_text(json.dumps(curves))
    print(plot(curves, start, Path(args.png)), flush=True)
    best = {name: max((c[2] for c in curve), default=float("nan")) for name, curve in curves.items()}
    final = {name: curve[-1][2] if curve else float("nan") for name, curve in curves.items()}
    for name, curve in curves.items():
        print(f"{name:<5} {len(curve)} epochs in budget: final {final[name]:.4f}, best {best[name]:.4f}", flush=True)
    print(
        f"grpo_vs_sft: start {start:.4f} -> GRPO {final['GRPO']:.4f} (best {best['GRPO']:.4f}) vs continued SFT "
        f"{final['SFT']:.4f} (best {best['SFT']:.4f}) {KEY} in {args.budget:g} s each"
    )


if __name__ == "__main__":
    main()

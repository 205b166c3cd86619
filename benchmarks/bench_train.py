"""Training throughput: optimizer steps/s with on-the-fly encoders vs the feature cache. Target: cached >= 3x.

  python benchmarks/bench_train.py [--n 32] [--steps 3] [--rounds 5] [--configs demo,small]

One step is what the training loop does per batch: fetch a batch from the DataLoader (decode media
+ tokenise + collate, or read cached features), forward, backward, AdamW step, zero_grad. Two
model sizes: "demo" (configs/demo.yaml as it is) and "small" (the demo with a 256-wide, 4-layer
LLM and 2x wider encoders). "on the fly" decodes the faces and audio and runs the frozen CLIP and
HuBERT every step; "cached" reads their outputs from a feature cache built beforehand (its one-off
build time is shown). Data: a synthetic MER2025-layout set in a temporary folder, read in a fixed
order with data.num_workers from the config (0 in the demo). Each mode runs `--rounds` timed
stretches of `--steps` steps, interleaved, and keeps its best (robust to a busy machine).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from affectgpt.cache import ensure_cache
from affectgpt.config import Config, apply_overrides, load_config
from affectgpt.data import synthetic
from affectgpt.data.dataset import AffectDataset, Collator
from affectgpt.data.mer2025 import read_mer2025
from affectgpt.model.build import build_model
from affectgpt.train.optim import build_optimizer

TARGET_RATIO = 3.0
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
SMALL = [
    "model.tiny_llm_hidden=256",
    "model.tiny_llm_layers=4",
    "model.tiny_llm_heads=8",
    "model.tiny_llm_kv_heads=4",
    "model.tiny_llm_intermediate=768",
    "model.tiny_encoder_hidden=96",
    "model.tiny_clip_projection=64",
]


def make_config(name: str, root: Path) -> Config:
    cfg = load_config(DEMO_CONFIG, [f"data.root={root}", "data.feature_cache="])
    return apply_overrides(cfg, SMALL) if name == "small" else cfg


class Run:
    """A model, its optimizer and an endless stream of training batches for one (config, mode)."""

    def __init__(self, cfg: Config, records: list, cached: bool) -> None:
        torch.manual_seed(cfg.train.seed)
        self.model, tok = build_model(cfg, with_encoders=not cached)
        self.model.train()
        self.optimizer = build_optimizer(self.model, cfg.train)
        dataset = AffectDataset(records, cfg.data, cfg.model, tok, seed=cfg.train.seed)
        self.loader = DataLoader(
            dataset,
            batch_size=cfg.train.batch_size,
            num_workers=cfg.data.num_workers,
            collate_fn=Collator(tok, prompt_style=cfg.data.prompt_style),
            drop_last=True,
        )
        self.batches = self._forever()

    def _forever(self) -> Iterator[dict[str, Any]]:
        while True:
            yield from self.loader

    def step(self) -> float:
        loss = self.model(next(self.batches))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def timed(self, steps: int) -> float:
        """Steps per second over `steps` consecutive steps."""
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        return steps / (time.perf_counter() - start)


def bench_config(name: str, root: Path, records: list, cache_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    cfg = make_config(name, root)
    cached_cfg = copy.deepcopy(cfg)
    cached_cfg.data.feature_cache = str(cache_dir / name)
    start = time.perf_counter()
    ensure_cache(cached_cfg, records, progress=False)
    build_s = time.perf_counter() - start
    runs = {"on the fly": Run(cfg, records, cached=False), "cached": Run(cached_cfg, records, cached=True)}
    for run in runs.values():  # warm-up: first-call allocations, lazy imports, shard handles
        run.step()
    best = dict.fromkeys(runs, 0.0)
    for _ in range(args.rounds):
        for mode, run in runs.items():
            best[mode] = max(best[mode], run.timed(args.steps))
    m = cfg.model
    return {
        "on the fly": best["on the fly"],
        "cached": best["cached"],
        "build_s": build_s,
        "batch": cfg.train.batch_size,
        "llm": f"{m.tiny_llm_hidden}x{m.tiny_llm_layers}",
        "enc": f"{m.tiny_encoder_hidden}x{m.tiny_encoder_layers}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=32, help="synthetic samples to generate")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed stretch")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed stretches per mode; the best is kept")
    parser.add_argument("--configs", default="demo,small", help="comma-separated: demo, small")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    if not names or set(names) - {"demo", "small"}:
        parser.error(f"--configs: choose from demo, small (got {args.configs!r})")

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = synthetic.generate(Path(tmp) / "data", n=args.n, seed=0, unibench=False)
        records = read_mer2025(root, "mercaptionplus")
        for name in names:
            results[name] = bench_config(name, root, records, Path(tmp) / "cache", args)

    print(
        f"{len(records)} synthetic samples, {args.rounds} x {args.steps} steps per mode (best kept), "
        f"{torch.get_num_threads()} torch threads"
    )
    print(
        f"{'config':<7} {'LLM hxL':>8} {'enc hxL':>8} {'batch':>5} {'on the fly':>11} {'cached':>8} "
        f"{'ratio':>6} {'cache build':>12}"
    )
    for name, r in results.items():
        ratio = r["cached"] / r["on the fly"]
        print(
            f"{name:<7} {r['llm']:>8} {r['enc']:>8} {r['batch']:>5} {r['on the fly']:>9.2f}/s {r['cached']:>6.2f}/s "
            f"{ratio:6.2f} {r['build_s']:>10.1f} s"
        )
    head = results[names[0]]
    ratio = head["cached"] / head["on the fly"]
    verdict = "meets" if ratio >= TARGET_RATIO else "below"
    print(f"(target on {names[0]}: cached >= {TARGET_RATIO:g}x on the fly: {verdict})")
    print(f"bench_train: {head['cached']:.2f} steps/s ({ratio:.2f}x on-the-fly encoding, {names[0]} config)")


if __name__ == "__main__":
    main()

"""Throughput of the 12 EW metrics: N random (GT, prediction) pairs, target >= 10,000 pairs/s.

  python benchmarks/bench_metrics.py [--pairs 100000] [--wheel-dir DIR]

The wheel is --wheel-dir, else $AFFECTGPT_WHEEL_DIR, else ../shared/emotion_wheel next to the repo,
else the demo wheel. Labels are drawn from the wheel's vocabulary of word forms plus a few unknown
words, as official-style list strings with random case and spacing, so parsing is measured too.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from affectgpt.metrics.ew import ew_scores
from affectgpt.metrics.wheel import get_wheel, load_wheel

TARGET_PAIRS_PER_S = 10_000
SHARED_WHEEL = Path(__file__).resolve().parents[2] / "shared" / "emotion_wheel"


def make_pairs(vocabulary: list[str], n: int, seed: int = 0) -> tuple[dict[str, str], dict[str, str]]:
    rng = random.Random(seed)
    words = vocabulary + ["neutral", "xyzzy", "humorous"]

    def one() -> str:
        labels = [rng.choice(words) for _ in range(rng.randint(0, 6))]
        labels = [w.upper() if rng.random() < 0.1 else w for w in labels]
        return "[" + ", ".join(f" {w} " if rng.random() < 0.1 else w for w in labels) + "]"

    gt = {f"sample_{i:08d}": one() for i in range(n)}
    pred = {name: one() for name in gt}
    return gt, pred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--wheel-dir", default=None)
    args = parser.parse_args()
    wheel_dir = args.wheel_dir or (SHARED_WHEEL if SHARED_WHEEL.is_dir() else None)

    start = time.perf_counter()
    wheel = load_wheel(wheel_dir, allow_demo=True)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    get_wheel(wheel.directory, wheel.is_demo)
    cached_s = time.perf_counter() - start

    gt, pred = make_pairs(sorted(wheel.format_mapping), args.pairs)
    start = time.perf_counter()
    result = ew_scores(gt, pred, wheel)
    score_s = time.perf_counter() - start
    rate = args.pairs / score_s

    print(f"wheel: {wheel.label}")
    print(f"{'step':<34} {'seconds':>9}")
    print(f"{'build mapping tables (cold)':<34} {build_s:9.3f}")
    print(f"{'get tables again (cached)':<34} {cached_s:9.3f}")
    print(f"{f'12 EW metrics, {args.pairs} pairs':<34} {score_s:9.3f}")
    print(
        f"M-avg {result.m_avg * 100:.2f}, avg-L1 F {result.wheel_average('L1').f1 * 100:.2f}, "
        f"skipped {result.n_skipped}/{result.n_samples}"
    )
    ratio = rate / TARGET_PAIRS_PER_S
    print(f"bench_metrics: {rate:,.0f} pairs/s ({ratio:.1f}x the {TARGET_PAIRS_PER_S:,} pairs/s target)")


if __name__ == "__main__":
    main()

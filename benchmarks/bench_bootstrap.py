"""Speed of the bootstrap intervals at the official MER-UniBench test-set sizes, target a few seconds.

  python benchmarks/bench_bootstrap.py [--resamples 1000] [--wheel-dir DIR]

Synthetic GT / predictions of the official sizes (OV-MERD+ 532, MER2023 411, MER2024 1169, MELD 2610,
IEMOCAP 1241, MOSI 686, MOSEI 4659, SIMS 457, SIMSv2 1034) are reduced to per-sample arrays with the real
wheel tables, then timed: each set's interval, the nine-set mean interval (every set resampled again) and a
paired comparison of two runs on all nine sets. Column n is the number of samples resampled (sentiment
sets: GT != 0 only, about 20 % of the synthetic GT is 0). The wheel is --wheel-dir, else $AFFECTGPT_WHEEL_DIR, else
../shared/emotion_wheel next to the repo, else the demo wheel. The summary line is printed last.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from affectgpt.metrics import bootstrap as bs
from affectgpt.metrics.wheel import load_wheel

TARGET_S = 5.0  # all nine intervals + the nine-set mean + the paired comparison, 1,000 resamples
SHARED_WHEEL = Path(__file__).resolve().parents[2] / "shared" / "emotion_wheel"
SIZES = {
    "OVMERDPlus": 532,
    "MER2023": 411,
    "MER2024": 1169,
    "MELD": 2610,
    "IEMOCAPFour": 1241,
    "CMUMOSI": 686,
    "CMUMOSEI": 4659,
    "SIMS": 457,
    "SIMSv2": 1034,
}
TASKS = {
    "OVMERDPlus": "ovlabel",
    "MER2023": "discrete",
    "MER2024": "discrete",
    "MELD": "discrete",
    "IEMOCAPFour": "discrete",
}  # fmt: skip  (the four sentiment sets are "dimension")
BASIC = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
SENTIMENTS = ["positive", "negative", "neutral", "mixed"]


def make_set(name: str, words: list[str], rng: random.Random) -> tuple[str, dict, dict, dict]:
    """(task, gt, run A, run B) of the official size; B agrees with A on ~80 % of the samples."""
    task, n = TASKS.get(name, "dimension"), SIZES[name]
    names = [f"{name}_{i:05d}" for i in range(n)]

    def answer() -> str:
        return "[" + ", ".join(rng.choice(words) for _ in range(rng.randint(0, 5))) + "]"

    if task == "dimension":
        gt = {x: rng.choice([-2.0, -0.6, 0.0, 0.4, 1.8]) for x in names}
        a = {x: rng.choice(SENTIMENTS) for x in names}
        b = {x: a[x] if rng.random() < 0.8 else rng.choice(SENTIMENTS) for x in names}
    else:
        gt = {x: rng.choice(BASIC) if task == "discrete" else answer() for x in names}
        a = {x: answer() for x in names}
        b = {x: a[x] if rng.random() < 0.8 else answer() for x in names}
    return task, gt, a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--wheel-dir", default=None)
    args = parser.parse_args()
    wheel = load_wheel(args.wheel_dir or (SHARED_WHEEL if SHARED_WHEEL.is_dir() else None), allow_demo=True)
    words = sorted(wheel.format_mapping)[::7] + BASIC + ["xyzzy"]
    rng = random.Random(0)
    sets = {name: make_set(name, words, rng) for name in SIZES}

    start = time.perf_counter()
    run_a = {name: bs.per_sample(task, gt, a, wheel, name) for name, (task, gt, a, _) in sets.items()}
    run_b = {name: bs.per_sample(task, gt, b, wheel, name) for name, (task, gt, _, b) in sets.items()}
    reduce_s = time.perf_counter() - start

    print(f"wheel: {wheel.label}")
    print(f"resamples: {args.resamples}")
    print(f"{'dataset':<12} {'task':<10} {'n':>5} {'score x100 [95% interval]':>27} {'seconds':>8}")
    total = 0.0
    for name, ps in run_a.items():
        start = time.perf_counter()
        iv = bs.bootstrap(ps, n_resamples=args.resamples)
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{name:<12} {ps.task:<10} {len(ps.names):5d} {bs.format_interval(iv):>27} {seconds:8.3f}")
    start = time.perf_counter()
    mean = bs.nine_set_mean_interval(run_a, n_resamples=args.resamples).mean
    mean_s = time.perf_counter() - start
    start = time.perf_counter()
    paired = bs.paired_difference(run_a, run_b, n_resamples=args.resamples).mean
    paired_s = time.perf_counter() - start
    print(f"{'nine-set mean':<29} {bs.format_interval(mean):>27} {mean_s:8.3f}")
    print(f"{'paired B - A (mean)':<29} {bs.format_interval(paired, signed=True):>27} {paired_s:8.3f}")
    print(f"reduce 2 x 9 sets to per-sample arrays (wheel tables): {reduce_s:.3f} s (not in the total)")
    workload = total + mean_s + paired_s
    verdict = "OK" if workload <= TARGET_S else "SLOW"
    print(
        f"bootstrap: 9 set intervals {total:.2f} s + nine-set mean {mean_s:.2f} s + paired {paired_s:.2f} s = "
        f"{workload:.2f} s for {args.resamples} resamples (target <= {TARGET_S:.0f} s) {verdict}"
    )


if __name__ == "__main__":
    main()

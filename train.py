"""Train AffectGPT: `accelerate launch train.py [--config configs/X.yaml] [section.key=value ...]`.

With no arguments it trains the embedded demo (configs/demo.yaml: tiny models, synthetic data,
CPU, minutes). The same command runs one process, DDP (CPU/GPU) or DeepSpeed ZeRO-2/3, whatever
`accelerate launch --config_file configs/accelerate/...` chose; `python train.py` works too.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config", default=None, help=f"YAML config (default: {DEMO_CONFIG.relative_to(DEMO_CONFIG.parents[1])})"
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error (else: in the run's log)")
    parser.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.epochs=3 train.lr=1e-4")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from affectgpt.config import ConfigError, load_config
    from affectgpt.train.loop import train
    from affectgpt.user_errors import report

    try:
        cfg = load_config(args.config or DEMO_CONFIG, args.overrides)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
    try:
        if cfg.rl.init_from:  # the stage rule (affectgpt/config_rl.py): rl.init_from names the SFT start point
            from affectgpt.model.checkpoint import CheckpointError
            from affectgpt.train.grpo import train_grpo

            try:
                best = train_grpo(cfg)
            except CheckpointError as err:  # a missing / incomplete / mismatched SFT start point: one line
                print(f"error: rl.init_from: {err}", file=sys.stderr)
                return 2
        else:
            best = train(cfg)
    except KeyboardInterrupt:  # a second Ctrl-C aborts at once (the first one saves and stops)
        print("error: interrupted (aborted without a save; resume continues from the last checkpoint)", file=sys.stderr)
        return 130
    except ConfigError as err:  # a setting a stage does not support (e.g. GRPO under ZeRO-3)
        print(f"config error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # one line naming the file and the cause; the traceback in the run's log
        report(err, Path(cfg.train.output_dir) / cfg.train.run_name / ERROR_LOG, args.debug)
        return 2 if _expected(err) else 1
    return 0 if best is not None else 3


ERROR_LOG = "train_errors.log"


def _expected(err: Exception) -> bool:
    """Errors a user causes and can fix (exit 2: stale cache, lock, resume mismatch, divergence, disk, ...);
    anything else is a bug (exit 1), reported the same way."""
    from affectgpt.data.feature_cache import CacheMismatchError
    from affectgpt.model.checkpoint import CheckpointError
    from affectgpt.train.guards import NonFiniteError, ResumeMismatchError
    from affectgpt.train.lock import RunLockedError

    expected = (CacheMismatchError, CheckpointError, NonFiniteError, ResumeMismatchError, RunLockedError, OSError)
    return isinstance(err, expected)


if __name__ == "__main__":
    sys.exit(main())

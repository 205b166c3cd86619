"""Shared test setup: never touch a hub, keep wandb offline, locate ../shared."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under `make test`'s pytest-xdist workers, each worker's torch gets its share of the cores: two workers with two
# threads each on a 2-core machine spend their time waiting on each other's OpenMP spin locks.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def official_wheel_dir() -> Path:
    """The official emotion-wheel files, read from ../shared (never copied into the repo)."""
    path = SHARED / "emotion_wheel"
    assert (path / "format.csv").is_file(), f"official emotion wheel not found at {path}"
    return path


# The end-to-end files, slowest first (seconds on a quiet 2-core machine, from `pytest --durations=0`). Running
# them first lets `make test`'s workers (pytest-xdist, one file per worker) finish together instead of one worker
# starting a three-minute file after the other has run out of work. Order only: every test still runs.
SLOW_FIRST = (
    "test_train_loop.py",  # ~200 s: SFT runs, resume, SIGTERM, DDP / ZeRO-2 world-size invariance
    "test_grpo_train.py",  # ~165 s
    "test_train_faults.py",  # ~145 s
    "test_train_demo.py",  # ~125 s: two full demo trainings
    "test_backbones_e2e.py",
    "test_infer.py",
    "test_evaluate_run.py",
    "test_ablation.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file and test order kept otherwise

"""Shared test setup: never touch a hub, keep wandb offline, locate ../shared."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def official_wheel_dir() -> Path:
    """The official emotion-wheel files, read from ../shared (never copied into the repo)."""
    path = SHARED / "emotion_wheel"
    assert (path / "format.csv").is_file(), f"official emotion wheel not found at {path}"
    return path

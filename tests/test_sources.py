"""Which samples a command reads (data/sources.py): the splits of the feature-cache command and inference."""

from pathlib import Path

import pytest

from affectgpt.config import Config
from affectgpt.data import synthetic
from affectgpt.data.sources import split_records


def _config(root: Path, cache: Path) -> Config:
    cfg = Config()
    cfg.data.root = str(root)
    cfg.data.feature_cache = str(cache)
    cfg.data.val_fraction = 0.3
    return cfg


@pytest.mark.parametrize("language", ["english", "chinese"])
def test_test_and_all_splits_read_every_unibench_set(tmp_path, language):
    """`python -m affectgpt.cache --split test|all` lists the MER-UniBench sets (any subtitle_language)."""
    from affectgpt.data.synthetic import UNIBENCH, write_unibench
    from affectgpt.data.unibench import read_unibench

    root = synthetic.generate(tmp_path / "data", n=12, seed=0, unibench=False)
    cfg = _config(root, tmp_path / "cache")
    cfg.data.subtitle_language = language
    cfg.data.unibench_roots = {}
    for name in UNIBENCH[:2]:
        write_unibench(tmp_path / "unibench" / name, name, seed=0)
        cfg.data.unibench_roots[name] = str(tmp_path / "unibench" / name)
    expected = [r.name for name, folder in cfg.data.unibench_roots.items() for r in read_unibench(name, folder)]
    assert expected and [r.name for r in split_records(cfg.data, "test")] == expected
    everything = [r.name for r in split_records(cfg.data, "all")]
    assert everything == [r.name for r in split_records(cfg.data, "train") + split_records(cfg.data, "val")] + expected

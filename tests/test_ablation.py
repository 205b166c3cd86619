"""Modality ablation: --drop / --shuffle-media change exactly the intended inputs of the batch the real tiny
model receives, and infer.py writes the variant into its own result folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_infer import ckpt, data_root, infer  # noqa: F401  (module fixtures: a tiny random checkpoint)

from affectgpt.config import load_config
from affectgpt.data.unibench import read_unibench
from affectgpt.infer.ablation import Ablation
from affectgpt.infer.generate import GenerationSettings, generate_responses
from affectgpt.infer.runner import load_model


class Recording:
    """The real model, with every batch passed to generate() kept (what the model receives)."""

    def __init__(self, model):
        self.model, self.batches = model, []

    def generate(self, batch, **kwargs):
        self.batches.append(batch)
        return self.model.generate(batch, **kwargs)

    def __getattr__(self, name):
        return getattr(self.model, name)


def _batches(ckpt: Path, data_root: Path, ablation: Ablation | None):  # noqa: F811
    cfg = load_config(ckpt / "config.yaml")
    records = read_unibench("OVMERDPlus", data_root / "unibench" / "OVMERDPlus")[:4]
    model, tokenizer = load_model(cfg, ckpt, torch.device("cpu"))
    rec = Recording(model)
    settings = GenerationSettings(batch_size=4, max_new_tokens=2)
    generate_responses(rec, records, cfg, tokenizer, settings, ablation=ablation)
    return rec.batches[0], records, tokenizer


@pytest.fixture(scope="module")
def full(ckpt: Path, data_root: Path):  # noqa: F811
    return _batches(ckpt, data_root, None)


def _media_keys(batch) -> list[str]:
    return [k for k, v in batch.items() if isinstance(v, torch.Tensor) and k not in ("input_ids", "attention_mask")]


@pytest.mark.parametrize("drop", ["audio", "frame", "face"])
def test_drop_zeroes_only_that_stream(drop, full, ckpt: Path, data_root: Path) -> None:  # noqa: F811
    base, _, _ = full
    got, _, _ = _batches(ckpt, data_root, Ablation((drop,)))
    streams = {"audio": {"audio", "audio_feats"}, "face": {"faces", "face_feats"}, "frame": {"frames", "frame_feats"}}
    assert torch.equal(got["input_ids"], base["input_ids"]) and got["names"] == base["names"]
    for key in _media_keys(base):
        if key in streams[drop] or key in ("image",) and drop == "frame":
            assert got[key].shape == base[key].shape and not got[key].any() and base[key].any(), key
        else:
            assert torch.equal(got[key], base[key]), key


def test_drop_text_empties_subtitle_only(full, ckpt: Path, data_root: Path) -> None:  # noqa: F811
    base, records, tokenizer = full
    got, _, _ = _batches(ckpt, data_root, Ablation(("text",)))
    for key in _media_keys(base):
        assert torch.equal(got[key], base[key]), key
    before = tokenizer.batch_decode(base["input_ids"], skip_special_tokens=True)
    after = tokenizer.batch_decode(got["input_ids"], skip_special_tokens=True)
    for record, b, a in zip(records, before, after):
        assert record.subtitle and record.subtitle in b and record.subtitle not in a


def test_shuffle_media_is_a_seeded_derangement(full, ckpt: Path, data_root: Path) -> None:  # noqa: F811
    base, records, _ = full
    ablation = Ablation(shuffle_media=True, seed=3)
    shuffled = ablation.records(records)
    assert [r.name for r in shuffled] == [r.name for r in records]
    assert [r.subtitle for r in shuffled] == [r.subtitle for r in records]
    assert all(s.video != r.video for s, r in zip(shuffled, records))
    assert sorted(str(s.video) for s in shuffled) == sorted(str(r.video) for r in records)
    assert ablation.records(records) == shuffled  # seeded
    got, _, _ = _batches(ckpt, data_root, ablation)
    assert torch.equal(got["input_ids"], base["input_ids"])
    donor = {str(r.video): i for i, r in enumerate(records)}
    for key in _media_keys(base):
        for i, s in enumerate(shuffled):
            assert torch.equal(got[key][i], base[key][donor[str(s.video)]]), (key, i)


def test_infer_cli_writes_the_variant_folder(ckpt: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    out = tmp_path / "res"
    argv = ["--ckpt", ckpt, "--dataset", "ovmerdplus", "--out-dir", out, "--drop", "audio,text", "--no-progress"]
    assert infer.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    meta = json.loads((tmp_path / "res-drop-audio+text" / "OVMERDPlus.meta.json").read_text())
    assert meta["ablation"] == {"drop": ["audio", "text"], "shuffle_media": False, "seed": meta["ablation"]["seed"]}
    assert infer.main([str(a) for a in argv[:-3] + ["--drop", "smell", "--no-progress"]]) == 2
    assert "--drop smell" in capsys.readouterr().err

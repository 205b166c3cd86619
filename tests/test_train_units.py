"""Fast unit tests of the training building blocks: optimizer groups, LR schedule, data stream,
validation sharding, checkpoint integrity / resume discovery / rotation, metrics files and plot."""

import json
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from affectgpt.config import TrainConfig
from affectgpt.data.records import Record
from affectgpt.data.sources import split_by_name
from affectgpt.files import append_jsonl, read_jsonl
from affectgpt.infer.generate import shard
from affectgpt.labels.sentence import parse_label_sentence
from affectgpt.metrics.ew import score_predictions
from affectgpt.metrics.wheel import DEMO_WHEEL_DIR, get_wheel
from affectgpt.train import checkpoints as ckpt
from affectgpt.train import tracking
from affectgpt.train.optim import (
    build_optimizer,
    build_scheduler,
    lr_factor,
    param_groups,
)
from affectgpt.train.stream import BatchStream


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.ln_post = nn.LayerNorm(4)
        self.scale = nn.Parameter(torch.ones(1, 4))  # 2-D, no bias/ln/bn in its name -> decayed
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def test_param_groups_official_rule_and_trainable_only() -> None:
    model = Toy()
    groups = param_groups(model, 0.05)
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    decay = next(g for g in groups if g["weight_decay"] == 0.05)
    no_decay = next(g for g in groups if g["weight_decay"] == 0.0)
    assert ids(decay["params"]) == ids([model.proj.weight, model.scale])
    assert ids(no_decay["params"]) == ids([model.proj.bias, model.ln_post.weight, model.ln_post.bias])
    every = ids(decay["params"]) | ids(no_decay["params"])
    assert not every & ids(model.frozen.parameters())
    opt = build_optimizer(model, TrainConfig(lr=1e-5, betas=[0.9, 0.95]))
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["lr"] == 1e-5


def test_optimizer_is_fused_adamw_with_plain_adamw_updates() -> None:
    cfg = TrainConfig(lr=1e-2, betas=[0.9, 0.95], weight_decay=0.05)
    torch.manual_seed(0)
    fused_model = Toy()
    plain_model = Toy()
    plain_model.load_state_dict(fused_model.state_dict())
    initial = fused_model.proj.weight.detach().clone()
    fused = build_optimizer(fused_model, cfg)
    plain = torch.optim.AdamW(param_groups(plain_model, 0.05), lr=1e-2, betas=(0.9, 0.95), foreach=False)
    assert fused.defaults["fused"] is True
    for step in range(5):
        for model, opt in ((fused_model, fused), (plain_model, plain)):
            torch.manual_seed(step)
            (model.ln_post(model.proj(torch.randn(3, 4))) * model.scale).pow(2).sum().backward()
            opt.step()
            opt.zero_grad()
    for (name, a), b in zip(fused_model.named_parameters(), plain_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert (fused_model.proj.weight - initial).abs().max() > 1e-3  # the steps did move the weights


def test_param_groups_refuse_fully_frozen_model() -> None:
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        param_groups(model, 0.05)


def test_lr_schedules() -> None:
    assert all(lr_factor(s, "constant", 100, 10, 1e-5, 1e-5) == 1.0 for s in range(0, 200, 7))
    f = [lr_factor(s, "cosine", 100, 10, 1e-3, 1e-5) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # monotone decay after warmup
    assert lr_factor(100, "cosine", 100, 10, 1e-3, 1e-5) == pytest.approx(1e-2)  # ends at min_lr
    model = Toy()
    cfg = TrainConfig(lr=1e-3, lr_schedule="cosine", warmup_steps=2, min_lr=0.0)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3) and lrs[-1] < 1e-4
    with pytest.raises(ValueError, match="lr_schedule"):
        build_scheduler(opt, TrainConfig(lr_schedule="linear"), 10)


def test_stream_global_batches_do_not_depend_on_world_size() -> None:
    one = BatchStream(n_samples=37, batch_size=4, world_size=1, rank=0, seed=3)
    two = [BatchStream(n_samples=37, batch_size=2, world_size=2, rank=r, seed=3) for r in range(2)]
    assert one.micro_per_epoch == two[0].micro_per_epoch == 9
    single = [idx for _, idx in one.rank_batches(0, 9)]
    split = [list(zip(*[list(s.rank_batches(0, 9)) for s in two]))]
    pairs = split[0]
    for batch, (a, b) in zip(single, pairs):
        assert batch == a[1] + b[1]
    assert len({i for b in single for i in b}) == 36  # a pass: no repeats, ragged tail dropped


def test_stream_fixed_iterations_cross_passes_and_resume_anywhere() -> None:
    s = BatchStream(n_samples=10, batch_size=3, world_size=1, rank=0, seed=1, grad_accum=2, iters_per_epoch=2)
    assert s.batches_per_pass == 3 and s.micro_per_epoch == 4
    full = list(s.rank_batches(0, 12))
    assert [p for p, _ in full] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert full[3][1] != full[0][1]  # each pass is a new permutation
    assert list(s.rank_batches(5, 12)) == full[5:]  # the position is one integer
    with pytest.raises(ValueError, match="no full step"):
        BatchStream(n_samples=3, batch_size=2, world_size=2, rank=0, seed=0).check()


def test_split_by_name_is_deterministic_and_order_free() -> None:
    records = [Record(name=f"sample_{i:08d}", dataset="x") for i in range(200)]
    train, val = split_by_name(records, 0.1)
    train2, val2 = split_by_name(list(reversed(records)), 0.1)
    assert {r.name for r in val} == {r.name for r in val2}
    assert not {r.name for r in val} & {r.name for r in train}
    assert 5 < len(val) < 40 and len(train) + len(val) == 200


def test_validation_shards_cover_everything_in_lockstep() -> None:
    items = list(range(11))
    shards = [shard(items, r, 3, batch_size=2) for r in range(3)]
    assert len({len(s) for s, _ in shards}) == 1 and len(shards[0][0]) % 2 == 0
    real = [x for s, n in shards for x in s[:n]]
    assert sorted(real) == items


def test_score_predictions_counts_empty_and_missing() -> None:
    wheel = get_wheel(DEMO_WHEEL_DIR)
    gt = {"a": ["happy"], "b": ["sad", "lonely"], "c": ["angry"]}
    responses = {"a": "The character's emotional state is happy.", "b": "no idea"}
    parsed = {name: parse_label_sentence(text) for name, text in responses.items()}
    scores = score_predictions(gt, parsed, wheel)
    assert scores["n_samples"] == 3 and scores["n_empty"] == 2 and scores["n_missing"] == 1
    perfect = score_predictions(gt, {k: list(v) for k, v in gt.items()}, wheel)
    assert perfect["avg-L1/f1"] == pytest.approx(1.0)
    assert 0.0 < scores["avg-L1/f1"] < perfect["avg-L1/f1"]


def _fake_checkpoint(run_dir: Path, name: str, step: int) -> Path:
    tmp = ckpt.begin(run_dir, name)
    (tmp / ckpt.STATE_DIR).mkdir()
    (tmp / ckpt.STATE_DIR / "optimizer.bin").write_bytes(b"x" * 100)
    (tmp / "adapter_model.safetensors").write_bytes(b"w" * 50)
    return ckpt.commit(tmp, {"global_step": step, "epoch": step // 10})


def test_commit_is_atomic_and_verify_detects_corruption(tmp_path: Path) -> None:
    good = _fake_checkpoint(tmp_path, "epoch_0001", 10)
    assert ckpt.verify(good)["global_step"] == 10
    assert not list(tmp_path.glob(".tmp-*"))
    # An unfinished save (no manifest yet) never looks complete.
    unfinished = ckpt.begin(tmp_path, "epoch_0002")
    (unfinished / "trainer.json").write_text("{}")
    assert ckpt.find_resumable(tmp_path).path == good
    data = good / ckpt.STATE_DIR / "optimizer.bin"
    data.write_bytes(b"y" * 100)  # same size, different bytes
    with pytest.raises(ckpt.CheckpointError, match="checksum"):
        ckpt.verify(good)
    data.write_bytes(b"x" * 99)
    with pytest.raises(ckpt.CheckpointError, match="bytes"):
        ckpt.verify(good)


def test_resume_falls_back_to_previous_complete_checkpoint(tmp_path: Path, caplog) -> None:
    first = _fake_checkpoint(tmp_path, "epoch_0001", 10)
    second = _fake_checkpoint(tmp_path, "epoch_0002", 20)
    assert ckpt.find_resumable(tmp_path).path == second
    (second / ckpt.MANIFEST).unlink()  # a crash between the data and the marker
    with caplog.at_level(logging.WARNING):
        found = ckpt.resolve_resume(tmp_path, "auto")
    assert found.path == first and found.state["global_step"] == 10
    assert "epoch_0002" in caplog.text and "incomplete or corrupt" in caplog.text
    assert ckpt.resolve_resume(tmp_path, "never") is None
    assert ckpt.resolve_resume(tmp_path, str(first)).path == first
    with pytest.raises(ckpt.CheckpointError):
        ckpt.resolve_resume(tmp_path, str(second))


def test_rotation_keeps_last_k_and_best_and_pointers(tmp_path: Path) -> None:
    for epoch in range(1, 6):
        _fake_checkpoint(tmp_path, ckpt.epoch_name(epoch), epoch * 10)
    _fake_checkpoint(tmp_path, ckpt.interrupt_name(25), 25)
    removed = ckpt.rotate(tmp_path, keep_last=2, protect={"epoch_0002"})
    left = sorted(p.name for p in ckpt.checkpoint_dirs(tmp_path))
    assert left == ["epoch_0002", "epoch_0004", "epoch_0005"]
    assert {p.name for p in removed} == {"epoch_0001", "epoch_0003", "interrupt_00000025"}
    ckpt.point(tmp_path, "best", tmp_path / "epoch_0002", {"score": 0.5})
    ckpt.point(tmp_path, "best", tmp_path / "epoch_0004", {"score": 0.7})
    assert json.loads((tmp_path / "best.json").read_text())["checkpoint"] == "epoch_0004"
    assert (tmp_path / "best").resolve() == (tmp_path / "epoch_0004").resolve()


def test_metrics_truncation_and_plot(tmp_path: Path) -> None:
    metrics = tmp_path / tracking.METRICS_FILE
    for epoch in (1, 2, 3):
        append_jsonl(
            metrics,
            {
                "epoch": epoch,
                "step": epoch * 5,
                "train/loss": 3.0 / epoch,
                "val/avg-L1/f1": 0.2 * epoch,
                "val/M-avg": 0.1 * epoch,
            },
        )
        append_jsonl(tmp_path / tracking.TRAIN_LOG_FILE, {"step": epoch * 5, "epoch_float": epoch, "train/loss": 1.0})
    tracking.truncate_jsonl(metrics, "epoch", 2)
    assert [r["epoch"] for r in read_jsonl(metrics)] == [1, 2]
    png = tracking.plot_curves(tmp_path)
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

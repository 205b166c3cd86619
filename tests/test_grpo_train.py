"""End-to-end GRPO runs through train.py (tiny models, synthetic data): outputs and infer.py on the checkpoint,
resume after SIGTERM == uninterrupted, 1 process x batch 4 == 2 processes x batch 2, and the config rules."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_train_loop import ACCELERATE, ENV, REPO, assert_same_weights, metrics, run_train, weights

from affectgpt.config import ConfigError, load_config
from affectgpt.train import checkpoints as ckpt

SFT_STEPS = 40  # enough for the label-sentence form, so rewards differ within groups and gradients are not all 0


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from affectgpt.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "demo30", n=30, seed=0, unibench=False)


def common(data_root: Path, out: Path, run: str, **extra) -> list[str]:
    base = {
        "data.root": data_root,
        "data.val_fraction": 0.2,
        "data.label_type": "ovlabel",
        "data.val_max_samples": 3,
        "data.feature_cache": data_root / "feature_cache",
        "train.output_dir": out,
        "train.run_name": run,
        "train.log_every": 1,
        "train.val_batch_size": 4,
        "train.val_max_new_tokens": 12,
        "train.keep_last": 2,
        "model.lora_dropout": 0.0,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture(scope="module")
def sft_ckpt(data_root: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sft")
    run_train(
        common(
            data_root,
            out,
            "sft",
            **{"train.epochs": 1, "train.iters_per_epoch": SFT_STEPS, "train.batch_size": 4, "train.lr": 2e-3},
        )
    )
    return out / "sft" / "epoch_0001"


def grpo_args(data_root: Path, out: Path, run: str, init: Path, **extra) -> list[str]:
    rl = {
        "rl.init_from": init,
        "rl.group_size": 4,
        "rl.max_new_tokens": 12,
        "rl.log_completions": 2,
        "train.epochs": 2,
        "train.iters_per_epoch": 2,
        "train.batch_size": 2,
        "train.lr": 1e-3,
    }
    rl.update(extra)
    return common(data_root, out, run, **rl)


def log_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def grpo_run(data_root: Path, sft_ckpt: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("grpo")
    proc = run_train(grpo_args(data_root, out, "ref", sft_ckpt, **{"rl.kl_beta": 0.05, "rl.inner_passes": 2}))
    assert "GRPO from" in proc.stderr and "sampled completions" in proc.stdout
    return out / "ref"


def test_grpo_run_outputs_and_infer_loads_checkpoint(grpo_run: Path, sft_ckpt: Path, tmp_path: Path) -> None:
    rows = metrics(grpo_run)
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        assert 0.0 <= r["val/avg-L1/f1"] <= 1.0 and r["val/n_samples"] == 3
        assert "train/reward" in r and "train/loss" in r
    logged = log_rows(grpo_run)
    assert [r["step"] for r in logged] == [1, 2, 3, 4]
    for r in logged:
        for key in (
            "rl/ew_mean",
            "rl/format_std",
            "rl/pred_labels",
            "rl/gt_labels",
            "rl/completion_length",
            "rl/zero_var_fraction",
            "rl/clip_fraction",
            "rl/kl",
            "rl/rollouts_per_s",
            "time/rollout_s",
        ):
            assert key in r, key
        assert 1.0 <= r["rl/gt_labels"] <= 3.0  # the synthetic world has 1-3 labels per sample
        assert 1.0 <= r["rl/completion_length"] <= 12.0
    # mu = 2 and beta > 0: the second pass moves off the rollout policy (KL > 0 to the frozen SFT copy)
    assert any(r["rl/kl"] > 0 for r in logged)
    assert any(r["rl/reward_std"] > 0 for r in logged), "no reward variance: the test exercises no gradient"
    completions = [json.loads(line) for line in (grpo_run / "completions.jsonl").read_text().splitlines()]
    assert [c["epoch"] for c in completions] == [1, 1, 2, 2]
    # the policy moved away from the SFT start
    start, end = weights(sft_ckpt), weights(grpo_run / "epoch_0002")
    assert start.keys() == end.keys()
    assert max(float((start[k] - end[k]).abs().max()) for k in start) > 0
    ckpt.verify(grpo_run / "epoch_0002")
    # infer.py on the GRPO run folder (its best checkpoint) reproduces the logged validation answers
    out_dir = tmp_path / "answers"
    proc = subprocess.run(
        [sys.executable, str(REPO / "infer.py"), "--ckpt", str(grpo_run), "--split", "val", "--out-dir", str(out_dir)],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = json.loads((grpo_run / "best.json").read_text())["checkpoint"]
    logged_answers = {
        json.loads(line)["name"]: json.loads(line)["response"]
        for line in (grpo_run / best / "val_predictions.jsonl").read_text().splitlines()
    }
    answers = {}
    for path in out_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if "name" in row:
                answers[row["name"]] = row.get("response")
    assert answers == logged_answers


def test_sigterm_resume_equals_uninterrupted(grpo_run: Path, data_root: Path, sft_ckpt: Path, tmp_path: Path) -> None:
    args = grpo_args(data_root, tmp_path, "killed", sft_ckpt, **{"rl.kl_beta": 0.05, "rl.inner_passes": 2})
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = tmp_path / "killed" / "train_log.jsonl"
    deadline = time.time() + 1800  # safety net; the loop ends at the first log line
    while not (log.is_file() and log.read_text().strip()) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=1800)
    assert proc.returncode == 3, output[-3000:]
    found = ckpt.find_resumable(tmp_path / "killed")
    assert found is not None and found.state["global_step"] < 4
    run_train(args)
    assert_same_weights(grpo_run / "epoch_0002", tmp_path / "killed" / "epoch_0002")
    ref, resumed = metrics(grpo_run), metrics(tmp_path / "killed")
    for a, b in zip(ref, resumed, strict=True):
        assert a["val/avg-L1/f1"] == b["val/avg-L1/f1"] and a["step"] == b["step"]
        assert a["train/reward"] == pytest.approx(b["train/reward"], abs=1e-9)
    assert [r["rl/reward_mean"] for r in log_rows(grpo_run)] == [
        r["rl/reward_mean"] for r in log_rows(tmp_path / "killed")
    ]


def test_world_size_invariance_ddp_and_zero2(data_root: Path, sft_ckpt: Path, tmp_path: Path) -> None:
    """1 process x 4 prompts == 2 processes x 2 prompts (DDP over gloo, DeepSpeed ZeRO-2): same rollouts (per-row
    seeds), same update. scale_rewards=batch: the std is reduced over every rank."""
    extra = {"train.epochs": 1, "train.iters_per_epoch": 2, "data.val_max_samples": 2, "rl.scale_rewards": "batch"}
    run_train(grpo_args(data_root, tmp_path, "one", sft_ckpt, **{**extra, "train.batch_size": 4}))
    one = log_rows(tmp_path / "one")
    assert len(one) == 2 and any(r["rl/reward_std"] > 0 for r in one), "no reward variance: no gradient to compare"
    launchers = {
        "ddp": ("configs/accelerate/cpu_ddp_2proc.yaml", "MULTI_CPU | 2 processes"),
        "zero2": ("configs/accelerate/deepspeed_zero2.yaml", "DEEPSPEED | 2 processes"),
    }
    for run, (config, banner) in launchers.items():
        launcher = ACCELERATE + ["--config_file", str(REPO / config)]
        proc = run_train(grpo_args(data_root, tmp_path, run, sft_ckpt, **extra), launcher=launcher)
        assert banner in proc.stderr
        two = log_rows(tmp_path / run)
        assert len(two) == 2
        for a, b in zip(one, two):
            for key in ("rl/reward_mean", "rl/ew_mean", "rl/pred_labels", "rl/completion_length", "train/loss"):
                assert a[key] == pytest.approx(b[key], abs=1e-5), (run, key)
        assert_same_weights(tmp_path / "one" / "epoch_0001", tmp_path / run / "epoch_0001", tol=1e-4)
    sft, one_w = weights(sft_ckpt), weights(tmp_path / "one" / "epoch_0001")
    assert max(float((sft[k] - one_w[k]).abs().max()) for k in sft) > 1e-4  # the update is not trivially 0


def test_rl_config_is_checked_at_load() -> None:
    cfg = load_config(REPO / "configs" / "demo_grpo.yaml")
    assert cfg.rl.init_from and cfg.rl.group_size == 8 and cfg.rl.length_penalty in ("inverse", "ratio", "log")
    with pytest.raises(ConfigError, match=r"rl\.scale_rewards: 'grup' is not one of group, batch, none"):
        load_config(None, ["rl.scale_rewards=grup"])
    with pytest.raises(ConfigError) as err:
        load_config(None, ["rl.top_p=1.5", "rl.clip_eps=1", "rl.inner_passes=0", "rl.init_from=x", "rl.group_size=1"])
    for key in ("rl.top_p", "rl.clip_eps", "rl.inner_passes", "rl.group_size"):
        assert key in str(err.value), key
    with pytest.raises(ConfigError, match="rl.ew_weight"):
        load_config(None, ["rl.ew_weight=0", "rl.format_weight=0"])


def test_describe_grpo_memory_lines() -> None:
    """describe's GRPO lines for the 7B recipe: the KV cache of batch_size x G rows from the published Qwen2.5-7B
    shape (28 layers, 4 KV heads x 128, fp16): 2 (k, v) x 28 x 512 x 2 bytes x 16 rows x 1024 tokens = 0.875 GiB;
    the reference copy is 4 bytes per trainable parameter (LoRA 40,370,176 + heads 16,798,468) only when kl_beta > 0."""
    from affectgpt.describe import describe

    path = REPO / "configs" / "grpo_qwen2.5_7b.yaml"
    text = describe(load_config(path, ["rl.init_from=x"]), world_size=8)
    assert "16 rows per micro-batch" in text and "rollout KV cache 0.88 GiB" in text
    assert "reference copy of the trainable tensors 0.00 GiB (kl_beta 0)" in text
    with_kl = describe(load_config(path, ["rl.init_from=x", "rl.kl_beta=0.04"]), world_size=8)
    assert f"{4 * (40370176 + 16798468) / 1024**3:.2f} GiB (kl_beta 0.04)" in with_kl
    assert "GRPO stage" not in describe(load_config(path), world_size=8)  # SFT (no rl.init_from): no GRPO lines


def test_missing_init_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_run" / "epoch_0003"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "train.py"),
            "--config",
            str(REPO / "configs" / "demo_grpo.yaml"),
            f"rl.init_from={missing}",
            f"train.output_dir={tmp_path}",
            "data.root=/nonexistent/real_data",
        ],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == f"error: rl.init_from: {missing}: checkpoint folder not found"


def test_diverging_grpo_run_skips_nonfinite_updates_and_never_saves_them(
    data_root: Path, sft_ckpt: Path, tmp_path: Path
) -> None:
    """The SFT NaN guard covers GRPO updates: with lr 1e12 the first update makes the weights huge, later losses or
    gradients are NaN/inf, those updates are skipped and counted, and 2 in a row stop the run in one line. Before,
    GRPO stepped on NaN gradients and saved the weights."""
    args = grpo_args(data_root, tmp_path, "nan", sft_ckpt, **{"train.lr": 1e12, "train.max_nonfinite_steps": 2})
    cmd = [sys.executable, str(REPO / "train.py"), *args]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "training diverged: 2 steps in a row" in proc.stderr.strip().splitlines()[-1]
    assert "non-finite loss or gradient, update skipped (1 in a row, limit 2)" in proc.stderr
    run = tmp_path / "nan"
    for saved in ckpt.checkpoint_dirs(run):  # whatever was saved before the divergence is finite
        for name, tensor in weights(saved).items():
            assert torch.isfinite(tensor).all(), (saved.name, name)
    assert log_rows(run)[-1]["train/nonfinite_steps"] >= 1

"""End-to-end runs of train.py on a tiny synthetic dataset: outputs, resume equivalence,
graceful SIGTERM, checkpoint fallback, 2-process DDP / DeepSpeed ZeRO-2 / ZeRO-3 and world-size invariance."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from affectgpt.train import checkpoints as ckpt

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A port of our own (not accelerate's default 29500), so two suites or trainings on one machine do not collide.
ACCELERATE = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", str(_free_port())]
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from affectgpt.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "demo30", n=30, seed=0, unibench=False)


def overrides(data_root: Path, out: Path, run: str, **extra) -> list[str]:
    base = {
        "data.root": data_root,
        "data.val_fraction": 0.2,
        "data.label_type": "ovlabel",
        "data.val_max_samples": 3,
        "train.output_dir": out,
        "train.run_name": run,
        "train.epochs": 2,
        "train.iters_per_epoch": 2,
        "train.batch_size": 2,
        "train.lr": 1e-3,
        "train.log_every": 1,
        "train.val_batch_size": 4,
        "train.val_max_new_tokens": 6,
        "train.keep_last": 2,
        "data.feature_cache": data_root / "feature_cache",  # decode + encode once for every run of the module
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def run_train(args: list[str], launcher: list[str] | None = None, timeout: int = 1800) -> subprocess.CompletedProcess:
    """train.py in a subprocess; `timeout` is a safety net for a loaded machine (a hang shows the run's progress)."""
    cmd = (launcher or [sys.executable]) + [str(REPO / "train.py"), *args]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise AssertionError(
            f"{cmd} still running after the {timeout}-s safety limit\n--- stdout so far\n{_text(err.stdout)[-3000:]}"
            f"\n--- stderr so far\n{_text(err.stderr)[-5000:]}"
        ) from err
    assert proc.returncode == 0, f"{cmd}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"
    return proc


def weights(ckpt_dir: Path) -> dict:
    return {**load_file(ckpt_dir / "adapter_model.safetensors"), **load_file(ckpt_dir / "projectors.safetensors")}


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["train/loss"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


def assert_same_weights(a: Path, b: Path, tol: float = 1e-6) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert worst <= tol, f"max weight difference {worst}"


def assert_same_metrics(a: list[dict], b: list[dict]) -> None:
    assert [m["epoch"] for m in a] == [m["epoch"] for m in b]
    for ma, mb in zip(a, b):
        for key in ("step", "val/avg-L1/f1", "val/M-avg", "val/n_empty"):
            assert ma[key] == mb[key], key
        assert ma["train/loss"] == pytest.approx(mb["train/loss"], abs=1e-6)


@pytest.fixture(scope="module")
def reference_run(data_root: Path, tmp_path_factory) -> Path:
    """Two epochs in one go (the baseline several tests compare with)."""
    out = tmp_path_factory.mktemp("runs")
    proc = run_train(overrides(data_root, out, "ref"))
    run_dir = out / "ref"
    assert "best checkpoint:" in proc.stdout and "infer.py --ckpt" in proc.stdout
    return run_dir


def test_run_outputs(reference_run: Path) -> None:
    from affectgpt.config import load_config
    from affectgpt.model.build import build_model
    from affectgpt.model.checkpoint import load_checkpoint

    run_dir = reference_run
    rows = metrics(run_dir)
    assert [r["epoch"] for r in rows] == [1, 2]
    required = {
        "epoch",
        "step",
        "train/loss",
        "val/avg-L1/f1",
        "val/avg-L1/precision",
        "val/avg-L1/recall",
        "val/M-avg",
        "val/n_samples",
        "val/n_empty",
    }
    assert required <= rows[-1].keys() and rows[-1]["step"] == 4 and rows[-1]["val/n_samples"] == 3
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert all(r["train/lr"] == 1e-3 and r["train/samples_per_s"] > 0 and r["train/tokens_per_s"] > 0 for r in log)
    assert (run_dir / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "config.yaml").is_file()
    last = json.loads((run_dir / "last.json").read_text())
    best = json.loads((run_dir / "best.json").read_text())
    assert last["checkpoint"] == "epoch_0002" and best["checkpoint"] in ("epoch_0001", "epoch_0002")
    for name in ("epoch_0001", "epoch_0002"):
        state = ckpt.verify(run_dir / name)
        assert state["epoch"] == int(name[-1])
        preds = [json.loads(line) for line in (run_dir / name / "val_predictions.jsonl").read_text().splitlines()]
        assert len(preds) == 3 and all({"name", "response", "labels"} <= p.keys() for p in preds)
    # The epoch directory is a model checkpoint the model issue's loader (and infer.py --ckpt) accepts.
    cfg = load_config(run_dir / "config.yaml")
    model, _ = build_model(cfg)
    load_checkpoint(model, run_dir / "epoch_0002")
    # Full-state files hold trainable weights only, never the frozen LLM / encoders.
    state_weights = load_file(run_dir / "epoch_0002" / "state" / "model.safetensors")
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(t.numel() for t in state_weights.values()) == n_trainable


def test_resume_matches_uninterrupted_run(reference_run: Path, data_root: Path, tmp_path: Path) -> None:
    run_train(overrides(data_root, tmp_path, "split", **{"train.epochs": 1}))
    proc = run_train(overrides(data_root, tmp_path, "split"))
    assert "resuming from" in proc.stderr
    assert_same_weights(reference_run / "epoch_0002", tmp_path / "split" / "epoch_0002")
    assert_same_metrics(metrics(reference_run), metrics(tmp_path / "split"))


def test_corrupt_latest_checkpoint_falls_back_with_warning(
    reference_run: Path, data_root: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "corrupt"
    shutil.copytree(reference_run, run_dir, symlinks=True)  # epoch_0001 and epoch_0002 exist
    victim = run_dir / "epoch_0002" / "state" / "optimizer.bin"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    proc = run_train(overrides(data_root, tmp_path, "corrupt", **{"train.epochs": 3}))
    assert "ignoring incomplete or corrupt checkpoint" in proc.stderr and "epoch_0002" in proc.stderr
    assert f"resuming from {run_dir / 'epoch_0001'}" in proc.stderr
    # Epoch 2 was redone from epoch 1's state: identical to the uninterrupted run.
    assert_same_metrics(metrics(reference_run), metrics(run_dir)[:2])
    assert [m["epoch"] for m in metrics(run_dir)] == [1, 2, 3]


def test_sigterm_mid_epoch_leaves_resumable_state(reference_run: Path, data_root: Path, tmp_path: Path) -> None:
    args = overrides(data_root, tmp_path, "killed")
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
    assert "received SIGTERM" in output
    found = ckpt.find_resumable(tmp_path / "killed")
    assert found is not None and found.state["global_step"] < 4
    run_train(args)  # resume and finish
    assert_same_weights(reference_run / "epoch_0002", tmp_path / "killed" / "epoch_0002")
    assert_same_metrics(metrics(reference_run), metrics(tmp_path / "killed"))


def test_world_size_invariance_ddp_and_deepspeed(data_root: Path, tmp_path: Path) -> None:
    """1 process x batch 4 == 2 processes x batch 2 (DDP over gloo, DeepSpeed ZeRO-2 and ZeRO-3), step by step."""
    common = {
        "train.epochs": 1,
        "train.iters_per_epoch": 3,
        "model.lora_dropout": 0.0,
        "data.val_max_samples": 2,
        "train.val_max_new_tokens": 2,
    }
    run_train(overrides(data_root, tmp_path, "one", **common, **{"train.batch_size": 4}))
    ddp = ACCELERATE + ["--config_file", str(REPO / "configs/accelerate/cpu_ddp_2proc.yaml")]
    proc = run_train(overrides(data_root, tmp_path, "ddp", **common), launcher=ddp)
    assert "MULTI_CPU | 2 processes" in proc.stderr
    for stage in ("zero2", "zero3"):  # ZeRO-3 partitions every weight; the encoders and tiny LLM are built whole first
        launcher = ACCELERATE + ["--config_file", str(REPO / f"configs/accelerate/deepspeed_{stage}.yaml")]
        proc = run_train(overrides(data_root, tmp_path, stage, **common), launcher=launcher, timeout=1800)
        assert "DEEPSPEED | 2 processes" in proc.stderr
    reference = losses(tmp_path / "one")
    assert len(reference) == 3
    for run in ("ddp", "zero2", "zero3"):
        assert losses(tmp_path / run) == pytest.approx(reference, abs=1e-4), run
        assert metrics(tmp_path / run)[0]["val/n_samples"] == 2
        ckpt.verify(tmp_path / run / "epoch_0001")
        assert_same_weights(
            tmp_path / "one" / "epoch_0001", tmp_path / run / "epoch_0001", tol=1e-4
        )  # gathered on save


def test_skipped_samples_are_counted_per_epoch(data_root: Path, tmp_path: Path) -> None:
    """A training sample with a corrupt face file is skipped, counted in metrics.jsonl with its reason, and the
    epoch line says so (the collator's drops and the trainer's SkipLog used to be counted nowhere)."""
    from affectgpt.config import load_config
    from affectgpt.data.records import SkipLog
    from affectgpt.data.sources import training_records

    root = tmp_path / "data"
    shutil.copytree(data_root, root, ignore=shutil.ignore_patterns("feature_cache"))
    cfg = load_config(overrides=[f"data.root={root}", "data.val_fraction=0.2", "data.label_type=ovlabel"])
    victim = training_records(cfg.data, SkipLog())[0][0].name  # a training (not validation) sample
    (root / "openface_face" / victim / f"{victim}.npy").write_bytes(b"not an npy file")
    proc = run_train(
        overrides(root, tmp_path, "skips", **{"train.epochs": 1, "train.iters_per_epoch": 0, "data.feature_cache": ""})
    )
    (row,) = metrics(tmp_path / "skips")
    assert row["train/n_skipped"] == 1 and row["data/n_skipped_reading"] == 0
    (reason,) = row["train/skipped_reasons"]
    assert "cannot read face array" in reason and row["train/skipped_reasons"][reason] == 1
    assert "skipped 1 training samples" in proc.stdout

"""Training faults through the real train.py (issues 16 and 17): a diverging LR, a resume with another batch layout,
two trainings in one run folder, a write that fails half way through a checkpoint save, one-line errors."""

from __future__ import annotations

import errno
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_loop import overrides as args

from affectgpt.train import checkpoints as ckpt
from affectgpt.train.guards import (
    NonFiniteError,
    NonFiniteGuard,
    ResumeMismatchError,
    all_finite,
    check_resume_fits,
)
from affectgpt.train.lock import LOCK_FILE, RunLock, RunLockedError
from affectgpt.train.run import TrainerState
from affectgpt.user_errors import describe

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
SAFETY_S = 1800  # a safety net for a loaded machine, never a speed target


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from affectgpt.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("data") / "demo30", n=30, seed=0, unibench=False)


def train(argv: list[str], preexec=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "train.py"), *argv]
    try:
        return subprocess.run(
            cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=SAFETY_S, preexec_fn=preexec
        )
    except subprocess.TimeoutExpired as err:
        raise AssertionError(f"{cmd} still running after {SAFETY_S} s\n{err.stdout}\n{err.stderr}") from err


def tail(proc: subprocess.CompletedProcess) -> str:
    return f"rc={proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-5000:]}"


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one `error:` line train.py ends with; the test fails if there is a traceback on stderr instead."""
    assert "Traceback" not in proc.stderr, tail(proc)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, tail(proc)
    return lines[0]


def trainable(ckpt_dir: Path) -> dict[str, torch.Tensor]:
    return {**load_file(ckpt_dir / "adapter_model.safetensors"), **load_file(ckpt_dir / "projectors.safetensors")}


# ------------------------------------------------------------------ 17.1: non-finite loss / gradients


def test_guard_skips_counts_and_stops_after_the_limit_in_a_row() -> None:
    state, guard = TrainerState(), NonFiniteGuard(3)
    assert guard.update(state, True, 1) is False
    assert guard.update(state, False, 2) is True and guard.update(state, False, 3) is True
    assert (state.nonfinite_steps, state.nonfinite_in_a_row) == (2, 2)
    assert guard.update(state, True, 4) is False  # a finite step resets the run of bad ones, not the total
    assert (state.nonfinite_steps, state.nonfinite_in_a_row) == (2, 0)
    guard.update(state, False, 5), guard.update(state, False, 6)
    with pytest.raises(NonFiniteError, match=r"3 steps in a row \(up to step 7\).*max_nonfinite_steps=3"):
        guard.update(state, False, 7)
    assert state.nonfinite_steps == 5


def test_all_finite_sees_nan_and_inf_in_any_tensor() -> None:
    ok = torch.ones(3)
    assert all_finite([ok, None, torch.zeros(2, 2)]) and all_finite([None]) and all_finite([])
    assert not all_finite([ok, torch.tensor([1.0, float("nan")])])
    assert not all_finite([torch.tensor([[float("-inf")]]), ok])


def test_diverging_lr_stops_with_one_line_and_never_saves_nan(data_root: Path, tmp_path: Path) -> None:
    """lr 1e6 blows the weights up after step 2 (every later loss is NaN). Before the guard the run trained on,
    wrote NaN weights as epoch_0002 / last and exited 0. Now steps 3 and 4 are skipped and the run stops."""
    proc = train(args(data_root, tmp_path, "nan", **{"train.lr": 1e6, "train.max_nonfinite_steps": 2}))
    assert proc.returncode == 2, tail(proc)
    line = error_line(proc)
    assert "training diverged: 2 steps in a row (up to step 4)" in line and "train_errors.log" in line
    assert "step 3: non-finite loss or gradient, update skipped (1 in a row, limit 2)" in proc.stderr
    run = tmp_path / "nan"
    assert "NonFiniteError" in (run / "train_errors.log").read_text()  # the traceback went to the log
    saved = ckpt.checkpoint_dirs(run)
    assert [p.name for p in saved] == ["epoch_0001"]  # epoch 2 (all non-finite) is never saved
    for name, tensor in trainable(saved[0]).items():
        assert torch.isfinite(tensor).all(), name
    assert json.loads((run / "best.json").read_text())["checkpoint"] == "epoch_0001"
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [math.isfinite(r["train/loss"]) for r in log] == [True, True, False]  # step 3 counted no loss
    assert log[-1]["train/nonfinite_steps"] == 1


# ------------------------------------------------------------------ 16: one training per run folder


def dead_pid() -> int:
    """The pid of a process of this host that has exited (reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(run_dir: Path, pid: int, host: str) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    path.write_text(json.dumps({"pid": pid, "host": host, "started": None, "since": time.time()}))
    return path


def test_lock_refuses_a_live_owner_and_another_host_and_takes_over_a_dead_one(tmp_path: Path, caplog) -> None:
    write_lock(tmp_path / "live", os.getpid(), socket.gethostname())  # this test process is alive
    with pytest.raises(RunLockedError, match=rf"in use by another training \(pid {os.getpid()} on"):
        RunLock(tmp_path / "live").acquire()
    write_lock(tmp_path / "remote", dead_pid(), "another-host")  # a pid of another host is never judged here
    with pytest.raises(RunLockedError, match="on host another-host"):
        RunLock(tmp_path / "remote").acquire()
    path = write_lock(tmp_path / "stale", dead_pid(), socket.gethostname())
    lock = RunLock(tmp_path / "stale")
    lock.acquire()
    assert "taking over the stale lock" in caplog.text
    assert json.loads(path.read_text())["pid"] == os.getpid()
    with pytest.raises(RunLockedError):  # held now: a second acquire (another Run) is refused
        RunLock(tmp_path / "stale").acquire()
    lock.release()
    assert not path.exists()
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / LOCK_FILE).write_text('{"pid": 12')  # killed while writing it: stale
    RunLock(tmp_path / "torn").acquire()


def test_second_training_into_the_same_run_folder_is_refused(data_root: Path, tmp_path: Path) -> None:
    argv = args(data_root, tmp_path, "shared", **{"train.epochs": 50})
    first = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *argv],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = tmp_path / "shared" / "train_log.jsonl"
    try:
        deadline = time.time() + SAFETY_S
        while not (log.is_file() and log.read_text().strip()) and time.time() < deadline and first.poll() is None:
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()[0][-3000:]
        second = train(argv)
        assert second.returncode == 2, tail(second)
        line = error_line(second)
        assert f"is in use by another training (pid {first.pid} on {socket.gethostname()}" in line, line
        assert "another train.run_name" in line
        assert first.poll() is None  # the refused start did not disturb the first training
    finally:
        first.terminate()  # SIGTERM: the first saves a resumable state and releases the lock
        output, _ = first.communicate(timeout=SAFETY_S)
    assert first.returncode == 3, output[-3000:]
    assert not (tmp_path / "shared" / LOCK_FILE).exists()


def test_stale_lock_of_a_killed_training_is_taken_over(data_root: Path, tmp_path: Path) -> None:
    write_lock(tmp_path / "stale", dead_pid(), socket.gethostname())
    proc = train(args(data_root, tmp_path, "stale", **{"train.epochs": 1, "train.iters_per_epoch": 1}))
    assert proc.returncode == 0, tail(proc)
    assert "taking over the stale lock" in proc.stderr
    assert not (tmp_path / "stale" / LOCK_FILE).exists()


# ------------------------------------------------------------------ 17.4: resume with another batch layout

SAVED = {"batch_size": 2, "grad_accum": 1, "world_size": 2, "iters_per_epoch": 5000, "n_samples": 100, "seed": 42}


def test_resume_check_names_every_changed_key_and_the_way_out() -> None:
    check_resume_fits(SAVED, dict(SAVED), "run/epoch_0001")  # unchanged: fine
    check_resume_fits(None, {**SAVED, "batch_size": 8}, "old/epoch_0001")  # saved before the record existed
    with pytest.raises(ResumeMismatchError) as err:
        check_resume_fits(SAVED, {**SAVED, "world_size": 4, "grad_accum": 2}, "run/epoch_0001")
    line = str(err.value)
    assert "\n" not in line and line.startswith("cannot resume run/epoch_0001: ")
    assert "train.grad_accum 1 -> 2, number of processes 2 -> 4 since it was saved" in line
    assert "resume with the old values (train.grad_accum=1), launch 2 process(es) again" in line
    assert "start a new run (another train.run_name, or train.resume=never)" in line
    with pytest.raises(ResumeMismatchError, match="number of training samples 100 -> 99.*use the same training data"):
        check_resume_fits(SAVED, {**SAVED, "n_samples": 99}, "r")


def test_resume_with_another_batch_size_is_refused_in_one_line(data_root: Path, tmp_path: Path) -> None:
    """Before: the resumed run silently re-cut the data stream (or died on an assertion with full passes)."""
    first = train(args(data_root, tmp_path, "drift", **{"train.epochs": 1}))
    assert first.returncode == 0, tail(first)
    changed = train(args(data_root, tmp_path, "drift", **{"train.batch_size": 4, "train.grad_accum": 2}))
    assert changed.returncode == 2, tail(changed)
    line = error_line(changed)
    assert f"cannot resume {tmp_path / 'drift' / 'epoch_0001'}: " in line
    assert "train.batch_size 2 -> 4, train.grad_accum 1 -> 2" in line
    assert "resume with the old values (train.batch_size=2 train.grad_accum=1)" in line
    assert [p.name for p in ckpt.checkpoint_dirs(tmp_path / "drift")] == ["epoch_0001"]  # nothing was trained
    again = train(args(data_root, tmp_path, "drift"))  # the old values, as the message says: resumes
    assert again.returncode == 0, tail(again)
    assert "resuming from" in again.stderr and (tmp_path / "drift" / "epoch_0002").is_dir()


# ------------------------------------------------------------------ 16 / 17.8: a write that fails during a save


def limit_file_size(limit: int):
    """preexec_fn: files over `limit` bytes cannot be written (EFBIG instead of the default SIGXFSZ kill)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_save_that_fails_half_way_keeps_the_previous_checkpoint(data_root: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the real writers fail half way through a file, like a disk that fills during the save:
    torch.save then said `unexpected pos 576 vs 534` and left a partial .tmp folder; now one line names the cause and
    the file, the partial folder is gone and epoch_0001 (still `last`) resumes."""
    run = tmp_path / "full"
    first = train(args(data_root, tmp_path, "full", **{"train.epochs": 1}))
    assert first.returncode == 0, tail(first)
    sizes = {p.name: p.stat().st_size for p in (run / "epoch_0001").rglob("*") if p.is_file()}
    limit = (sizes["optimizer.bin"] + sizes["model.safetensors"]) // 2  # between the two largest checkpoint files
    assert sizes["optimizer.bin"] > limit > max(v for k, v in sizes.items() if k != "optimizer.bin")
    failed = train(args(data_root, tmp_path, "full"), preexec=limit_file_size(limit))
    assert failed.returncode == 2, tail(failed)
    line = error_line(failed)
    assert f"file-size limit (ulimit -f: {limit} bytes) reached while writing {run}/.tmp-epoch_0002/state/" in line
    assert "optimizer.bin; checkpoint epoch_0002 was not saved, epoch_0001 is the last complete checkpoint" in line
    assert [p.name for p in ckpt.checkpoint_dirs(run)] == ["epoch_0001"] and not list(run.glob(".tmp-*"))
    ckpt.verify(run / "epoch_0001")
    assert json.loads((run / "last.json").read_text())["checkpoint"] == "epoch_0001"
    again = train(args(data_root, tmp_path, "full"))  # room again: resumes from epoch_0001 and finishes
    assert again.returncode == 0, tail(again)
    assert f"resuming from {run / 'epoch_0001'}" in again.stderr
    ckpt.verify(run / "epoch_0002")


# ------------------------------------------------------------------ 17.8: one line, the traceback behind --debug


def test_errors_are_one_line_with_the_traceback_in_the_log_or_behind_debug(data_root: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no_such_checkpoint"
    argv = args(data_root, tmp_path, "bad", **{"train.resume": missing})
    proc = train(argv)
    assert proc.returncode == 2, tail(proc)
    line = error_line(proc)
    assert str(missing) in line and f"traceback in {tmp_path / 'bad' / 'train_errors.log'}" in line
    assert "Traceback (most recent call last)" in (tmp_path / "bad" / "train_errors.log").read_text()
    assert not (tmp_path / "bad" / LOCK_FILE).exists()  # released on the error
    debug = train(["--debug", *argv])
    assert debug.returncode == 2, tail(debug)
    assert "Traceback (most recent call last)" in debug.stderr and "CheckpointError" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1].startswith("error: ") and str(missing) in debug.stderr


def test_describe_gives_one_line_for_os_errors_and_foreign_exceptions() -> None:
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/x.csv")
    assert describe(missing) == "no such file or directory: /data/x.csv"
    assert describe(OSError(errno.ENOSPC, "No space left on device")) == "OSError: [Errno 28] No space left on device"
    assert describe(ValueError("bad\n  value")) == "ValueError: bad value"  # one line, whatever the message
    assert describe(NonFiniteError("training diverged: x")) == "training diverged: x"  # ours: the message names it

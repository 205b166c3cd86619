"""Checkpoint faults: the one line a failed save ends with (issues 16 and 17.8), and old checkpoints that cannot
be deleted (rotation warns and trains on; clearing a run for train.resume=never refuses to leave one behind).

write_failure's rule (its docstring): the cause is from the error's errno, else from an `os error N` in a Rust writer's
message (safetensors), else from the disk's free space (under LOW_SPACE = 1 MiB: full) or the file-size limit
(torch's writer reports neither); the file is the error's own file name, else the file written last in the
temporary folder, else the folder; the line ends with which checkpoint is still good. Real folders in tmp_path;
the full disk is simulated by the free-space figure only, the file-size limit by the real rlimit of this process.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from affectgpt.train import checkpoints as ckpt
from affectgpt.user_errors import describe, mount_of

KEPT = "epoch_0001 is the last complete checkpoint (resume=auto continues from it)"
NONE_KEPT = "and there is no earlier checkpoint"


def partial_save(tmp_path: Path) -> tuple[Path, Path]:
    """A half-written `.tmp-epoch_0002`: (the folder, the file written last, given the newest mtime on purpose)."""
    tmp = tmp_path / ".tmp-epoch_0002"
    (tmp / "state").mkdir(parents=True)
    older, newest = tmp / "adapter_model.safetensors", tmp / "state" / "optimizer.bin"
    older.write_bytes(b"w")
    newest.write_bytes(b"half")
    os.utime(older, ns=(1_000_000_000, 1_000_000_000))
    os.utime(newest, ns=(2_000_000_000, 2_000_000_000))
    return tmp, newest


def test_errno_of_an_os_error_names_its_own_file(tmp_path: Path) -> None:
    tmp, _ = partial_save(tmp_path)
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp / "trainer.json"))
    line = str(ckpt.write_failure(full, tmp, "epoch_0001"))
    assert line == (
        f"no space left on {mount_of(tmp)} while writing {tmp / 'trainer.json'}; checkpoint epoch_0002 was not saved, "
        + KEPT
    )
    assert isinstance(ckpt.write_failure(full, tmp, None), ckpt.CheckpointWriteError)


def test_an_os_error_without_a_file_name_points_at_the_file_written_last(tmp_path: Path) -> None:
    tmp, newest = partial_save(tmp_path)
    quota = OSError(errno.EDQUOT, "Disk quota exceeded")
    line = str(ckpt.write_failure(quota, tmp, None))
    assert line == f"{describe(OSError(errno.EDQUOT, 'x'), writing=newest)}; checkpoint epoch_0002 was not saved, " + (
        NONE_KEPT
    )
    assert line.startswith(f"disk quota exceeded on {mount_of(tmp)} while writing {newest};")


def test_a_rust_writer_errno_is_read_from_its_message(tmp_path: Path) -> None:
    tmp, newest = partial_save(tmp_path)
    rust = RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert str(ckpt.write_failure(rust, tmp, None)) == (
        f"no space left on {mount_of(tmp)} while writing {newest}; checkpoint epoch_0002 was not saved, " + NONE_KEPT
    )
    other = RuntimeError("I/O error: Input/output error (os error 5)")  # the errno is read, not assumed to be 28
    assert str(ckpt.write_failure(other, tmp, None)).startswith(
        describe(OSError(errno.EIO, os.strerror(errno.EIO)), writing=newest) + ";"
    )


def test_without_an_errno_and_with_room_the_error_itself_is_named_on_one_line(tmp_path: Path) -> None:
    tmp, newest = partial_save(tmp_path)
    torch_style = RuntimeError("[enforce fail at inline_container.cc:778]\n  unexpected pos 576 vs 534")
    line = str(ckpt.write_failure(torch_style, tmp, "epoch_0001"))
    assert line == (
        "RuntimeError ([enforce fail at inline_container.cc:778] unexpected pos 576 vs 534) while writing "
        f"{newest}; checkpoint epoch_0002 was not saved, " + KEPT
    )


def fake_free_space(monkeypatch, free: int) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * free + 1, 9 * free + 1, free))


def test_low_free_space_means_a_full_disk_strictly_under_one_mebibyte(tmp_path: Path, monkeypatch) -> None:
    tmp, newest = partial_save(tmp_path)
    torch_style = RuntimeError("unexpected pos 576 vs 534")
    fake_free_space(monkeypatch, ckpt.LOW_SPACE - 1)
    assert str(ckpt.write_failure(torch_style, tmp, "epoch_0001")) == (
        f"no space left on {mount_of(tmp)} while writing {newest} ({ckpt.LOW_SPACE - 1} bytes free); "
        "checkpoint epoch_0002 was not saved, " + KEPT
    )
    fake_free_space(monkeypatch, ckpt.LOW_SPACE)  # exactly 1 MiB free is not "full": the error is named as it is
    assert str(ckpt.write_failure(torch_style, tmp, None)).startswith("RuntimeError (unexpected pos 576 vs 534)")
    assert ckpt.LOW_SPACE == 1 << 20


@pytest.fixture
def file_size_limit():
    """This process's soft RLIMIT_FSIZE lowered to 1e9 bytes (nothing here writes that much), restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    limit = 1_000_000_000 if hard == resource.RLIM_INFINITY else min(hard, 1_000_000_000)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield limit
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_file_size_limit_is_named_with_its_value(tmp_path: Path, file_size_limit: int) -> None:
    tmp, newest = partial_save(tmp_path)
    line = str(ckpt.write_failure(RuntimeError("unexpected pos 576 vs 534"), tmp, "epoch_0001"))
    assert line == (
        f"file-size limit (ulimit -f: {file_size_limit} bytes) reached while writing {newest}; "
        "checkpoint epoch_0002 was not saved, " + KEPT
    )


def test_an_empty_temporary_folder_is_itself_the_file_named(tmp_path: Path) -> None:
    tmp = tmp_path / ".tmp-interrupt_00000042"
    tmp.mkdir()
    line = str(ckpt.write_failure(OSError(errno.ENOSPC, "full"), tmp, None))
    assert line == (
        f"no space left on {mount_of(tmp)} while writing {tmp}; checkpoint interrupt_00000042 was not saved, "
        + NONE_KEPT
    )


def test_newest_file_is_the_last_modified_file_anywhere_below(tmp_path: Path) -> None:
    assert ckpt.newest_file(tmp_path / "missing") is None
    assert ckpt.newest_file(tmp_path) is None  # an empty folder
    tmp, newest = partial_save(tmp_path)
    assert ckpt.newest_file(tmp) == newest
    os.utime(tmp / "adapter_model.safetensors", ns=(3_000_000_000, 3_000_000_000))
    assert ckpt.newest_file(tmp) == tmp / "adapter_model.safetensors"


# ---------------------------------------------------------------- deleting old checkpoints


def make(run_dir: Path, name: str, step: int) -> Path:
    tmp = ckpt.begin(run_dir, name)
    (tmp / ckpt.STATE_DIR).mkdir()
    (tmp / ckpt.STATE_DIR / "optimizer.bin").write_bytes(b"x")
    return ckpt.commit(tmp, {"global_step": step, "epoch": step // 10})


def test_rotation_deletes_only_the_link_of_a_checkpoint_moved_elsewhere(tmp_path: Path) -> None:
    run = tmp_path / "run"
    moved = make(tmp_path / "other_disk", "epoch_0001", 10)
    run.mkdir()
    (run / "epoch_0001").symlink_to(moved, target_is_directory=True)
    for epoch in (2, 3):
        make(run, f"epoch_{epoch:04d}", 10 * epoch)
    assert [p.name for p in ckpt.rotate(run, keep_last=2, protect=set())] == ["epoch_0001"]
    assert not (run / "epoch_0001").is_symlink() and ckpt.verify(moved)["global_step"] == 10  # target untouched


def test_rotation_keeps_a_folder_it_cannot_delete_and_says_so(tmp_path: Path, monkeypatch, caplog) -> None:
    for epoch in (1, 2, 3, 4):
        make(tmp_path, f"epoch_{epoch:04d}", 10 * epoch)
    real_rmtree = shutil.rmtree

    def refuse_epoch_1(path, *args, **kwargs):  # e.g. a file held by another user's process on a shared disk
        if Path(path).name == "epoch_0001":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", refuse_epoch_1)
    with caplog.at_level(logging.WARNING):
        deleted = ckpt.rotate(tmp_path, keep_last=2, protect=set())
    assert [p.name for p in deleted] == ["epoch_0002"]  # the next one is still deleted
    assert [p.name for p in ckpt.checkpoint_dirs(tmp_path)] == ["epoch_0001", "epoch_0003", "epoch_0004"]
    assert f"could not delete the old checkpoint {tmp_path / 'epoch_0001'} (permission denied" in caplog.text


def test_clearing_a_run_removes_links_and_refuses_to_leave_a_checkpoint_behind(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    moved = make(tmp_path / "other_disk", "epoch_0001", 10)
    make(run, "epoch_0002", 20)
    (run / "epoch_0001").symlink_to(moved, target_is_directory=True)
    ckpt.clear_run(run)
    assert ckpt.checkpoint_dirs(run) == [] and ckpt.verify(moved)["global_step"] == 10
    make(run, "epoch_0003", 30)

    def refuse(path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(shutil, "rmtree", refuse)
    with pytest.raises(PermissionError):  # resume=auto would later continue from the checkpoint left behind
        ckpt.clear_run(run)

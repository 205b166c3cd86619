"""Every rule of affectgpt/train/checkpoints.py on real run folders in tmp_path (no mocks).

The rules (module docstring and DESIGN.md): a checkpoint is built in `.tmp-<name>/` and renamed into place after
its manifest (every file with size and sha256) is written last; resume verifies that manifest and falls back,
with a warning, to the newest checkpoint that verifies; "never"-like values start fresh; rotation keeps the newest
`keep_last` epoch checkpoints plus protected ones and drops interrupt checkpoints not newer than the newest epoch;
best/last are a relative symlink plus a JSON pointer; clear_run removes a previous run's checkpoints and logs only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from affectgpt.files import write_manifest
from affectgpt.train import checkpoints as ckpt

WEIGHTS = b"w" * 50
OPTIMIZER = b"x" * 100


def make(run_dir: Path, name: str, step: int, **state) -> Path:
    """A checkpoint as the trainer writes one: weights, accelerate state/, then commit."""
    tmp = ckpt.begin(run_dir, name)
    (tmp / ckpt.STATE_DIR).mkdir()
    (tmp / ckpt.STATE_DIR / "optimizer.bin").write_bytes(OPTIMIZER)
    (tmp / "adapter_model.safetensors").write_bytes(WEIGHTS)
    return ckpt.commit(tmp, {"global_step": step, "epoch": step // 10, **state})


def names(paths) -> list[str]:
    return sorted(p.name for p in paths)


# ---------------------------------------------------------------- names, begin, commit


def test_names_are_zero_padded() -> None:
    assert ckpt.epoch_name(3) == "epoch_0003" and ckpt.epoch_name(12345) == "epoch_12345"
    assert ckpt.interrupt_name(123) == "interrupt_00000123"
    assert ckpt.tmp_dir(Path("/runs/a"), "epoch_0001") == Path("/runs/a/.tmp-epoch_0001")


def test_begin_gives_a_fresh_temp_dir(tmp_path: Path) -> None:
    tmp = ckpt.begin(tmp_path / "run", "epoch_0001")  # creates the run dir too
    assert tmp == tmp_path / "run" / ".tmp-epoch_0001" and tmp.is_dir() and not any(tmp.iterdir())
    (tmp / "stale.bin").write_bytes(b"old")  # left by a crash mid-save
    again = ckpt.begin(tmp_path / "run", "epoch_0001")
    assert again == tmp and not any(again.iterdir())


def test_commit_writes_state_and_manifest_then_renames(tmp_path: Path) -> None:
    final = make(tmp_path, "epoch_0001", 10, kind="epoch")
    assert final == tmp_path / "epoch_0001" and not (tmp_path / ".tmp-epoch_0001").exists()
    assert json.loads((final / ckpt.TRAINER_STATE).read_text()) == {"global_step": 10, "epoch": 1, "kind": "epoch"}
    manifest = json.loads((final / ckpt.MANIFEST).read_text())
    trainer_bytes = (final / ckpt.TRAINER_STATE).read_bytes()
    expected = {
        rel: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for rel, data in {
            "adapter_model.safetensors": WEIGHTS,
            "state/optimizer.bin": OPTIMIZER,
            ckpt.TRAINER_STATE: trainer_bytes,
        }.items()
    }
    assert manifest == {"format": ckpt.TRAINING_FORMAT, "files": expected}  # every file but the manifest itself
    assert ckpt.verify(final) == {"global_step": 10, "epoch": 1, "kind": "epoch"}


def test_commit_replaces_an_existing_checkpoint_of_the_same_name(tmp_path: Path) -> None:
    first = make(tmp_path, "interrupt_00000005", 5)
    (first / "only_in_the_old_one.txt").write_text("old")
    second = make(tmp_path, "interrupt_00000005", 5, note="new")
    assert second == first and not (second / "only_in_the_old_one.txt").exists()
    assert ckpt.verify(second)["note"] == "new"


# ---------------------------------------------------------------- verify


def test_verify_names_each_problem(tmp_path: Path) -> None:
    with pytest.raises(ckpt.CheckpointError, match="checkpoint folder not found"):
        ckpt.verify(tmp_path / "epoch_0009")
    good = make(tmp_path, "epoch_0001", 10)
    (good / "state" / "optimizer.bin").write_bytes(b"y" * 100)  # same size, other bytes
    with pytest.raises(ckpt.CheckpointError, match=r"optimizer.bin: corrupted \(sha256"):
        ckpt.verify(good)
    (good / "state" / "optimizer.bin").write_bytes(b"x" * 99)
    with pytest.raises(ckpt.CheckpointError, match=r"truncated or altered \(99 bytes, expected 100\)"):
        ckpt.verify(good)
    (good / "state" / "optimizer.bin").unlink()
    with pytest.raises(ckpt.CheckpointError, match="optimizer.bin: listed in COMPLETE but missing"):
        ckpt.verify(good)
    (good / ckpt.MANIFEST).write_text("{not json")
    with pytest.raises(ckpt.CheckpointError, match="unreadable manifest"):
        ckpt.verify(good)
    (good / ckpt.MANIFEST).unlink()
    with pytest.raises(ckpt.CheckpointError, match="COMPLETE: missing; the checkpoint was not completely"):
        ckpt.verify(good)


def test_verify_refuses_folders_that_are_not_training_checkpoints(tmp_path: Path) -> None:
    weights_only = tmp_path / "weights_only"  # e.g. an infer.py weights folder: intact, but nothing to resume
    weights_only.mkdir()
    (weights_only / ckpt.TRAINER_STATE).write_text('{"global_step": 1}')
    (weights_only / "adapter_model.safetensors").write_bytes(WEIGHTS)
    write_manifest(weights_only, ckpt.MANIFEST)
    with pytest.raises(ckpt.CheckpointError, match=r"not a training checkpoint \(no trainer.json or state/\)"):
        ckpt.verify(weights_only)
    no_trainer = tmp_path / "no_trainer"
    (no_trainer / ckpt.STATE_DIR).mkdir(parents=True)
    (no_trainer / ckpt.STATE_DIR / "optimizer.bin").write_bytes(OPTIMIZER)
    write_manifest(no_trainer, ckpt.MANIFEST)
    with pytest.raises(ckpt.CheckpointError, match="not a training checkpoint"):
        ckpt.verify(no_trainer)
    # a file merely named like the state folder does not count as accelerate state
    lookalike = tmp_path / "lookalike"
    lookalike.mkdir()
    (lookalike / ckpt.TRAINER_STATE).write_text('{"global_step": 1}')
    (lookalike / "state.bin").write_bytes(OPTIMIZER)
    write_manifest(lookalike, ckpt.MANIFEST)
    with pytest.raises(ckpt.CheckpointError, match="not a training checkpoint"):
        ckpt.verify(lookalike)


# ---------------------------------------------------------------- discovery and resume


def test_checkpoint_dirs_lists_only_checkpoint_named_folders(tmp_path: Path) -> None:
    assert ckpt.checkpoint_dirs(tmp_path / "absent") == []
    for name in (
        "epoch_0010",
        "epoch_0002",
        "interrupt_00000007",
        "epoch_",
        "epoch_12a",
        "epochs_0001",
        "xepoch_0001",
        "interrupt_x",
        ".tmp-epoch_0003",
        "best_0001",
    ):
        (tmp_path / name).mkdir()
    (tmp_path / "epoch_0004").write_text("a file, not a folder")
    (tmp_path / "last").symlink_to("epoch_0010", target_is_directory=True)
    found = ckpt.checkpoint_dirs(tmp_path)
    assert [p.name for p in found] == ["epoch_0002", "epoch_0010", "interrupt_00000007"]  # sorted by name


def test_find_resumable_picks_the_highest_step_that_verifies(tmp_path: Path, caplog) -> None:
    assert ckpt.find_resumable(tmp_path / "absent") is None
    assert ckpt.find_resumable(tmp_path) is None
    make(tmp_path, "epoch_0001", 10)
    make(tmp_path, "epoch_0002", 20)
    late_interrupt = make(tmp_path, "interrupt_00000025", 25)
    assert ckpt.find_resumable(tmp_path).path == late_interrupt  # by global step, not by kind or name
    (late_interrupt / "adapter_model.safetensors").write_bytes(b"z" * 50)  # bit rot
    ckpt.begin(tmp_path, "epoch_0003")  # a save that never finished
    with caplog.at_level(logging.WARNING, logger="affectgpt.train.checkpoints"):
        found = ckpt.find_resumable(tmp_path)
    assert found.path == tmp_path / "epoch_0002" and found.state == {"global_step": 20, "epoch": 2}
    assert "interrupt_00000025" in caplog.text and "corrupted" in caplog.text
    assert ".tmp-epoch_0003" in caplog.text and "unfinished save" in caplog.text


def test_an_epoch_checkpoint_wins_a_tie_with_an_interrupt(tmp_path: Path) -> None:
    # an interrupt at the very step an epoch ends carries the same state; the epoch one also has validation results
    make(tmp_path, "interrupt_00000020", 20)
    make(tmp_path, "epoch_0002", 20)
    make(tmp_path, "epoch_0001", 10)
    assert ckpt.find_resumable(tmp_path).path.name == "epoch_0002"


def test_every_checkpoint_broken_means_none(tmp_path: Path, caplog) -> None:
    broken = make(tmp_path, "epoch_0001", 10)
    (broken / ckpt.MANIFEST).unlink()
    with caplog.at_level(logging.WARNING, logger="affectgpt.train.checkpoints"):
        assert ckpt.find_resumable(tmp_path) is None
        assert ckpt.resolve_resume(tmp_path, "auto") is None
    assert "ignoring incomplete or corrupt checkpoint" in caplog.text


@pytest.mark.parametrize("value", ["never", "", "no", "false"])
def test_never_values_start_fresh_even_with_good_checkpoints(tmp_path: Path, value: str) -> None:
    make(tmp_path, "epoch_0001", 10)
    assert ckpt.resolve_resume(tmp_path, value) is None


def test_resume_from_a_path(tmp_path: Path) -> None:
    run, other = tmp_path / "run", tmp_path / "other_run"
    make(run, "epoch_0001", 10)
    first_other = make(other, "epoch_0001", 10)
    newest_other = make(other, "epoch_0002", 20)
    assert ckpt.resolve_resume(run, "auto").path == run / "epoch_0001"
    # a checkpoint folder: exactly that one
    found = ckpt.resolve_resume(run, str(first_other))
    assert found.path == first_other and found.state["global_step"] == 10
    # a run folder: its newest good checkpoint
    assert ckpt.resolve_resume(run, str(other)).path == newest_other
    # a broken checkpoint given explicitly is an error, never a silent fallback
    (newest_other / ckpt.MANIFEST).unlink()
    with pytest.raises(ckpt.CheckpointError, match="not completely written"):
        ckpt.resolve_resume(run, str(newest_other))
    with pytest.raises(ckpt.CheckpointError, match="folder not found"):
        ckpt.resolve_resume(run, str(tmp_path / "typo"))
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(ckpt.CheckpointError, match="missing"):  # neither a checkpoint nor a run with one
        ckpt.resolve_resume(run, str(empty))


# ---------------------------------------------------------------- pointers


def test_point_writes_json_and_a_relative_symlink(tmp_path: Path) -> None:
    a, b = make(tmp_path, "epoch_0001", 10), make(tmp_path, "epoch_0002", 20)
    ckpt.point(tmp_path, "best", a, {"score": 0.5, "epoch": 1})
    assert json.loads((tmp_path / "best.json").read_text()) == {
        "checkpoint": "epoch_0001",
        "path": str(a),
        "score": 0.5,
        "epoch": 1,
    }
    assert os.readlink(tmp_path / "best") == "epoch_0001"  # relative: the run folder can be moved
    ckpt.point(tmp_path, "best", b, {"score": 0.7})
    assert os.readlink(tmp_path / "best") == "epoch_0002"
    assert json.loads((tmp_path / "best.json").read_text()) == {"checkpoint": b.name, "path": str(b), "score": 0.7}
    ckpt.point(tmp_path, "last", b, {})
    assert (tmp_path / "last").resolve() == b.resolve() and (tmp_path / "best").resolve() == b.resolve()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_point_replaces_a_stale_temp_link_and_survives_one_it_cannot_remove(tmp_path: Path, caplog) -> None:
    a, b = make(tmp_path, "epoch_0001", 10), make(tmp_path, "epoch_0002", 20)
    (tmp_path / ".tmp-last").symlink_to("nowhere")  # dangling, left by a crash between symlink and rename
    ckpt.point(tmp_path, "last", a, {})
    assert os.readlink(tmp_path / "last") == "epoch_0001" and not (tmp_path / ".tmp-last").is_symlink()
    (tmp_path / ".tmp-last").write_text("stale file")
    ckpt.point(tmp_path, "last", b, {})
    assert os.readlink(tmp_path / "last") == "epoch_0002"
    # a folder in the temp link's place cannot be unlinked: the JSON pointer is still written, nothing raises
    (tmp_path / ".tmp-last").mkdir()
    (tmp_path / ".tmp-last" / "x").write_text("x")
    with caplog.at_level(logging.DEBUG, logger="affectgpt.train.checkpoints"):
        ckpt.point(tmp_path, "last", a, {"step": 10})
    assert "no last symlink" in caplog.text
    assert json.loads((tmp_path / "last.json").read_text())["checkpoint"] == "epoch_0001"
    assert os.readlink(tmp_path / "last") == "epoch_0002"  # the link could not move; last.json is authoritative


# ---------------------------------------------------------------- rotation


def test_rotate_keeps_the_newest_k_epochs_and_protected_ones(tmp_path: Path) -> None:
    for epoch in range(1, 6):
        make(tmp_path, ckpt.epoch_name(epoch), epoch * 10)
    removed = ckpt.rotate(tmp_path, keep_last=2, protect={"epoch_0001", ""})
    assert names(removed) == ["epoch_0002", "epoch_0003"]
    assert [p.name for p in ckpt.checkpoint_dirs(tmp_path)] == ["epoch_0001", "epoch_0004", "epoch_0005"]
    assert ckpt.rotate(tmp_path, keep_last=2, protect={"epoch_0001"}) == []  # nothing more to do
    assert names(ckpt.rotate(tmp_path, keep_last=1, protect=set())) == ["epoch_0001", "epoch_0004"]


def test_rotate_keep_last_zero_keeps_every_epoch(tmp_path: Path) -> None:
    for epoch in range(1, 4):
        make(tmp_path, ckpt.epoch_name(epoch), epoch * 10)
    assert ckpt.rotate(tmp_path, keep_last=0, protect=set()) == []
    assert len(ckpt.checkpoint_dirs(tmp_path)) == 3


def test_rotate_drops_interrupts_not_newer_than_the_newest_epoch(tmp_path: Path) -> None:
    make(tmp_path, "interrupt_00000015", 15)
    make(tmp_path, "epoch_0002", 20)
    make(tmp_path, "interrupt_00000020", 20)  # same step as the newest epoch: superseded by it
    make(tmp_path, "interrupt_00000025", 25)  # newer: the only copy of that progress, kept
    make(tmp_path, "interrupt_00000012", 12)
    removed = ckpt.rotate(tmp_path, keep_last=0, protect={"interrupt_00000012"})
    assert names(removed) == ["interrupt_00000015", "interrupt_00000020"]
    left = [p.name for p in ckpt.checkpoint_dirs(tmp_path)]
    assert left == ["epoch_0002", "interrupt_00000012", "interrupt_00000025"]


def test_rotate_without_epochs_keeps_interrupts(tmp_path: Path) -> None:
    make(tmp_path, "interrupt_00000003", 3)
    make(tmp_path, "interrupt_00000006", 6)
    assert ckpt.rotate(tmp_path, keep_last=1, protect=set()) == []
    assert len(ckpt.checkpoint_dirs(tmp_path)) == 2


def test_rotate_reads_steps_from_trainer_json(tmp_path: Path) -> None:
    # the step comes from trainer.json, not from the folder name; an unreadable one counts as step -1
    make(tmp_path, "epoch_0001", 10)
    odd = make(tmp_path, "interrupt_00000099", 5)  # named 99, really step 5 <= 10
    unreadable = make(tmp_path, "interrupt_00000100", 100)
    (unreadable / ckpt.TRAINER_STATE).write_text("{broken")
    no_step = make(tmp_path, "interrupt_00000200", 200)
    (no_step / ckpt.TRAINER_STATE).write_text('{"epoch": 20}')
    removed = ckpt.rotate(tmp_path, keep_last=0, protect=set())
    assert names(removed) == [odd.name, unreadable.name, no_step.name]


def test_rotate_with_an_unreadable_newest_epoch_keeps_interrupts(tmp_path: Path) -> None:
    make(tmp_path, "interrupt_00000001", 1)
    newest = make(tmp_path, "epoch_0001", 10)
    (newest / ckpt.TRAINER_STATE).unlink()  # newest epoch step unknown (-1): even a step-1 interrupt is newer
    assert ckpt.rotate(tmp_path, keep_last=0, protect=set()) == []


# ---------------------------------------------------------------- clear_run


def test_clear_run_removes_checkpoints_and_logs_only(tmp_path: Path) -> None:
    a = make(tmp_path, "epoch_0001", 10)
    make(tmp_path, "interrupt_00000015", 15)
    ckpt.begin(tmp_path, "epoch_0002")
    ckpt.point(tmp_path, "best", a, {})
    ckpt.point(tmp_path, "last", a, {})
    (tmp_path / ".tmp-last").symlink_to("nowhere")  # a temp link, not a folder
    for name in ("metrics.jsonl", "train_log.jsonl", "config.yaml", "training_curves.png", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "my_analysis").mkdir()
    ckpt.clear_run(tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["config.yaml", "my_analysis", "notes.txt", "training_curves.png"]


def test_clear_run_on_a_fresh_folder_is_a_no_op(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("x")
    ckpt.clear_run(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_one_manifest_per_checkpoint_and_legacy_ones_still_verify(tmp_path):
    """A training checkpoint carries one manifest (COMPLETE, as a weights-only checkpoint does) covering every
    file; folders written with the earlier two-manifest layout (CHECKPOINT.json) still verify for resume."""
    run = tmp_path / "run"
    tmp = ckpt.begin(run, "epoch_0001")
    (tmp / "state").mkdir()
    (tmp / "state" / "optimizer.bin").write_bytes(b"x" * 100)
    (tmp / "adapter_model.safetensors").write_bytes(b"w")
    final = ckpt.commit(tmp, {"epoch": 1, "global_step": 5})
    assert sorted(p.name for p in final.iterdir()) == ["COMPLETE", "adapter_model.safetensors", "state", "trainer.json"]
    manifest = json.loads((final / "COMPLETE").read_text())
    assert manifest["format"] == ckpt.TRAINING_FORMAT
    assert set(manifest["files"]) == {"adapter_model.safetensors", "state/optimizer.bin", "trainer.json"}
    legacy = run / "epoch_0002"
    shutil.copytree(final, legacy)
    (legacy / "COMPLETE").rename(legacy / ckpt.LEGACY_MANIFEST)
    assert ckpt.verify(legacy)["global_step"] == 5
    (legacy / "trainer.json").write_text('{"epoch": 2}')  # the legacy manifest is really checked
    with pytest.raises(ckpt.CheckpointError, match="trainer.json: truncated or altered"):
        ckpt.verify(legacy)

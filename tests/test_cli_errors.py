"""One-line errors (issue 17.8): infer.py and evaluate.py say what failed, naming the file and the cause (a full
disk: "no space left on <mount> while writing <file>"), and print the traceback only with --debug.

The full disk is an fsync that fails with ENOSPC on the file being written (where a real full disk surfaces
with delayed allocation); everything else runs the real CLIs on real files."""

from __future__ import annotations

import errno
import importlib.util
import os
import re
from pathlib import Path

import pytest

from affectgpt.config import load_config
from affectgpt.data.synthetic import generate, write_unibench

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = REPO.parent / "shared" / "emotion_wheel"


def _cli(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_cli_errors", REPO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _disk_full_for(monkeypatch, target: Path) -> None:
    """os.fsync of `target` (or of its temporary sibling, for an atomic write) fails with ENOSPC."""
    real = os.fsync

    def fsync(fd: int) -> None:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name == target.name or name.startswith(f".{target.name}.tmp-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def _one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def gt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ew") / "gt.csv"
    path.write_text("name,openset\na,\"['happy', 'excited']\"\nb,\"['sad']\"\n", encoding="utf-8")
    return path


def test_evaluate_full_disk_is_one_line_and_debug_prints_the_traceback(gt, tmp_path, monkeypatch, capsys):
    evaluate = _cli("evaluate")
    out = tmp_path / "scores.json"
    argv = ["ew", "--gt", str(gt), "--pred", str(gt), "--wheel-dir", str(OFFICIAL), "--out", str(out)]
    assert evaluate.main(argv) == 0 and out.is_file()  # the same command works with space left
    out.unlink()
    _disk_full_for(monkeypatch, out)
    assert evaluate.main(argv) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: no space left on /\S* while writing {re.escape(str(out))}", _one_error_line(err))
    assert "Traceback" not in err and not out.exists() and not list(tmp_path.glob(".scores.json.tmp-*"))
    assert evaluate.main(argv + ["--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "no space left on" in _one_error_line(err)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, data root): an untrained tiny model saved in the checkpoint format."""
    from affectgpt.model.build import build_model
    from affectgpt.model.checkpoint import save_checkpoint

    root = generate(tmp_path_factory.mktemp("data") / "demo", n=8, seed=0, unibench=False)
    write_unibench(root / "unibench" / "OVMERDPlus", "OVMERDPlus", seed=0)
    cfg = load_config(
        REPO / "configs" / "demo.yaml",
        [
            f"data.root={root}",
            f"data.unibench_roots={{OVMERDPlus: {root}/unibench/OVMERDPlus}}",
            f"eval.wheel_dir={OFFICIAL}",
            "eval.max_new_tokens=2",
            "eval.batch_size=1",
            "data.feature_cache=",
        ],
    )
    model, _ = build_model(cfg)
    return save_checkpoint(model, cfg, tmp_path_factory.mktemp("run") / "epoch_0001"), root


def test_infer_full_disk_while_writing_answers_is_one_line(ckpt, tmp_path, monkeypatch, capsys):
    infer = _cli("infer")
    out = tmp_path / "OVMERDPlus.csv"
    _disk_full_for(monkeypatch, out)
    argv = ["--ckpt", str(ckpt[0]), "--dataset", "OVMERDPlus", "--out", str(out), "--no-progress"]
    assert infer.main(argv) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(rf"error: no space left on /\S* while writing {re.escape(str(out))}", _one_error_line(err))
    assert "Traceback" not in err
    assert infer.main(argv + ["--debug"]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err

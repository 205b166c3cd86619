"""The evaluate.py contract: worked examples E1-E12 through the CLI on files written here (CSV and npz)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_metrics_examples import (
    E10_MSCORE,
    E10_PRED,
    E10_SCORE,
    E11_PRED,
    E11_SCORE,
    E12_ACC,
    E12_F1,
    E12_SENT,
    EW_EXAMPLES,
    TOL,
    check_ew,
)
from test_metrics_unibench import build_cmumosi, build_meld, build_mer2023, build_ovmerdplus

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = (REPO.parent / "shared" / "emotion_wheel").resolve()  # the CLI reports resolved paths
_spec = importlib.util.spec_from_file_location("evaluate_cli", REPO / "evaluate.py")
evaluate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evaluate)


def write_labels(path: Path, values: dict, column: str = "openset") -> Path:
    """CSV name,<column> or the official npz form (plain unicode filenames / fileitems)."""
    if path.suffix == ".npz":
        names, items = np.array(list(values), dtype=str), np.array(list(values.values()), dtype=str)
        np.savez(path, filenames=names, fileitems=items)
    else:
        pd.DataFrame({"name": list(values), column: list(values.values())}).to_csv(path, index=False)
    return path


def run(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = evaluate.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
@pytest.mark.parametrize("example", sorted(EW_EXAMPLES))
def test_ew_worked_examples(example: str, suffix: str, tmp_path: Path, capsys) -> None:
    gt, pred, _, _ = EW_EXAMPLES[example]
    gt_path, pred_path = write_labels(tmp_path / f"gt{suffix}", gt), write_labels(tmp_path / f"pred{suffix}", pred)
    out = tmp_path / "out.json"
    code, stdout, _ = run(["ew", "--gt", gt_path, "--pred", pred_path, "--wheel-dir", OFFICIAL, "--out", out], capsys)
    assert code == 0
    result = json.loads(out.read_text())
    check_ew(example, result)
    expected_keys = {"M1", "M2", "avg-L1", "avg-L2", "M-avg", "n_samples", "n_skipped", "wheel"}
    assert expected_keys | {f"W{w}-L{level}" for w in range(1, 6) for level in (1, 2)} <= set(result)
    assert result["wheel"] == str(OFFICIAL) and result["n_samples"] == len(gt)
    assert list(result["skipped_per_metric"]) == ["M1", "M2"] + [
        f"W{w}-L{level}" for w in range(1, 6) for level in (1, 2)
    ]
    assert "W5-L2" in stdout and "M-avg" in stdout and f"wheel: {OFFICIAL}" in stdout


def test_ew_as_a_real_subprocess(tmp_path: Path) -> None:
    gt, pred, _, _ = EW_EXAMPLES["E2"]
    args = [
        sys.executable,
        str(REPO / "evaluate.py"),
        "ew",
        "--gt",
        str(write_labels(tmp_path / "gt.csv", gt)),
        "--pred",
        str(write_labels(tmp_path / "pred.csv", pred)),
        "--wheel-dir",
        str(OFFICIAL),
    ]
    done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=1800)  # safety net
    assert done.returncode == 0, done.stderr
    assert "avg-L1     80.00  100.00   86.67" in done.stdout


def test_ew_missing_extra_and_duplicate_names(tmp_path: Path, capsys) -> None:
    gt = write_labels(tmp_path / "gt.csv", {"a": "[happy]", "b": "[sad]", "c": "[angry]"})
    pred = write_labels(tmp_path / "pred.csv", {"a": "[happy]", "zz": "[sad]"})
    base = ["ew", "--gt", gt, "--pred", pred, "--wheel-dir", OFFICIAL]
    code, _, err = run(base, capsys)
    assert code == 2 and "2 GT name(s) have no prediction" in err and "b, c" in err and "--allow-missing" in err
    out = tmp_path / "out.json"
    code, stdout, _ = run(base + ["--allow-missing", "--out", out], capsys)
    result = json.loads(out.read_text())
    assert code == 0 and result["missing_predictions"] == ["b", "c"] and result["extra_predictions"] == ["zz"]
    assert abs(result["M1"]["precision"] - 1 / 3) < TOL and "not in the GT" in stdout
    (tmp_path / "dup.csv").write_text("name,openset\na,[happy]\nb,[sad]\na,[sad]\n")
    code, _, err = run(["ew", "--gt", tmp_path / "dup.csv", "--pred", pred, "--wheel-dir", OFFICIAL], capsys)
    assert code == 2 and "duplicate names: a" in err and "dup.csv" in err


def test_ew_bad_column_and_no_wheel(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "bad.csv").write_text("name,labels\na,[happy]\n")
    code, _, err = run(
        ["ew", "--gt", tmp_path / "bad.csv", "--pred", tmp_path / "bad.csv", "--wheel-dir", OFFICIAL], capsys
    )
    assert code == 2 and "missing column(s) ['openset']" in err
    monkeypatch.delenv("AFFECTGPT_WHEEL_DIR", raising=False)
    gt = write_labels(tmp_path / "gt.csv", {"a": "[happy]"})
    code, _, err = run(["ew", "--gt", gt, "--pred", gt], capsys)
    assert code == 2 and "No emotion-wheel directory found" in err and "official OV-MER / AffectGPT" in err


def test_ew_demo_wheel_is_labelled(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("AFFECTGPT_WHEEL_DIR", raising=False)
    gt = write_labels(tmp_path / "gt.csv", {"a": "[happy, lonely]"})
    pred = write_labels(tmp_path / "pred.csv", {"a": "[joy]"})
    out = tmp_path / "out.json"
    code, stdout, _ = run(["ew", "--gt", gt, "--pred", pred, "--demo-wheel", "--out", out], capsys)
    assert code == 0 and "wheel: demo (not comparable with published scores)" in stdout
    result = json.loads(out.read_text())
    assert result["wheel"] == "demo" and result["M2"]["precision"] == 1.0 and result["M2"]["recall"] == 0.5


def test_ew_wheel_from_config(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("AFFECTGPT_WHEEL_DIR", raising=False)
    config = tmp_path / "cfg.yaml"
    config.write_text(f"eval:\n  wheel_dir: {OFFICIAL}\n")
    gt, pred, _, _ = EW_EXAMPLES["E7"]
    out = tmp_path / "out.json"
    args = ["ew", "--gt", write_labels(tmp_path / "gt.csv", gt), "--pred", write_labels(tmp_path / "p.csv", pred)]
    assert run(args + ["--config", config, "--out", out], capsys)[0] == 0
    check_ew("E7", json.loads(out.read_text()))


@pytest.mark.parametrize("suffix", [".csv", ".npz"])
def test_unibench_e10_e11_e12_single_dataset(suffix: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.json"
    mer = build_mer2023(tmp_path / "mer2023")
    pred = write_labels(tmp_path / f"mer{suffix}", E10_PRED)
    args = ["unibench", "--dataset", "MER2023", "--data-root", mer, "--pred", pred, "--wheel-dir", OFFICIAL]
    code, stdout, _ = run(args + ["--out", out], capsys)
    result = json.loads(out.read_text())
    assert code == 0 and abs(result["score"] - E10_SCORE) < TOL and abs(result["mscore"] - E10_MSCORE) < TOL
    assert "hit rate 58.00" in stdout

    meld, pred = build_meld(tmp_path / "meld"), write_labels(tmp_path / f"meld{suffix}", E11_PRED)
    args = ["unibench", "--dataset", "MELD", "--data-root", meld, "--pred", pred, "--wheel-dir", OFFICIAL]
    assert run(args + ["--out", out], capsys)[0] == 0
    assert abs(json.loads(out.read_text())["score"] - E11_SCORE) < TOL

    mosi, sent = build_cmumosi(tmp_path / "mosi"), write_labels(tmp_path / f"sent{suffix}", E12_SENT, "sentiment")
    code, stdout, _ = run(
        ["unibench", "--dataset", "CMUMOSI", "--data-root", mosi, "--sentiment", sent, "--out", out], capsys
    )
    result = json.loads(out.read_text())
    assert code == 0 and abs(result["score"] - E12_F1) < TOL and abs(result["accuracy"] - E12_ACC) < TOL


def test_unibench_dimension_with_openset_only_explains(tmp_path: Path, capsys) -> None:
    mosi, pred = build_cmumosi(tmp_path / "mosi"), write_labels(tmp_path / "p.csv", {"a": "[happy]"})
    code, _, err = run(
        ["unibench", "--dataset", "CMUMOSI", "--data-root", mosi, "--pred", pred, "--wheel-dir", OFFICIAL], capsys
    )
    assert code == 2 and "sentiment extraction" in err


def test_unibench_all_table(tmp_path: Path, capsys) -> None:
    roots = {
        "MER2023": build_mer2023(tmp_path / "mer2023"),
        "MELD": build_meld(tmp_path / "meld"),
        "CMUMOSI": build_cmumosi(tmp_path / "mosi"),
    }
    gt, pred, _, _ = EW_EXAMPLES["E2"]
    roots["OVMERDPlus"] = build_ovmerdplus(tmp_path / "ov", gt)
    config = tmp_path / "roots.yaml"
    config.write_text("data:\n  unibench_roots:\n" + "".join(f"    {k}: {v}\n" for k, v in roots.items()))
    results = tmp_path / "results"
    results.mkdir()
    write_labels(results / "MER2023-openset.csv", E10_PRED)
    write_labels(results / "meld-openset.npz", E11_PRED)
    write_labels(results / "CMUMOSI-openset-sentiment.npz", E12_SENT)
    write_labels(results / "OVMERDPlus-openset.csv", pred)
    args = ["unibench", "--all", "--data-roots-from", config, "--results-dir", results, "--wheel-dir", OFFICIAL]
    code, _, err = run(args, capsys)
    assert code == 2 and "MER2024: no root" in err and "--partial" in err
    code, stdout, _ = run(args + ["--partial"], capsys)
    assert code == 0
    table = json.loads((results / "unibench.json").read_text())
    assert table["scores_x100"] == {"MER2023": 58.0, "MELD": 76.67, "CMUMOSI": 80.0, "OVMERDPlus": 86.67}
    assert table["mean_x100"] == round((0.58 + 0.76667 + 0.8 + 0.86667) / 4 * 100, 2)
    assert not table["complete"] and "MER2024" in table["missing_datasets"]
    markdown = (results / "unibench.md").read_text()
    assert "| 58.00 | - | 76.67 | - | 80.00 | - | - | - | 86.67 |" in markdown and markdown in stdout + "\n"

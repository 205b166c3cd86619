"""evaluate.py unibench --protocol paper on synthetic folders of several epochs (official and our layout)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_metrics_examples import E10_GT, E10_PRED, E12_GT, E12_SENT
from test_metrics_unibench import build_cmumosi, build_mer2023

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = (REPO.parent / "shared" / "emotion_wheel").resolve()
_spec = importlib.util.spec_from_file_location("evaluate_cli_protocol", REPO / "evaluate.py")
evaluate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evaluate)

# E10 (reference worked example): the given predictions score 0.58; all-"[]" predictions hit nothing (0.0);
# every GT label predicted verbatim hits in every wheel where the GT maps (1.0). E12: the given sentiments give
# weighted F1 0.8; every non-zero GT's own sign gives 1.0.
MER_PERFECT = {n: f"[{g}]" for n, g in E10_GT.items()}
MER_EMPTY = {n: "[]" for n in E10_GT}
MOSI_PERFECT = {n: ("positive" if v > 0 else "negative") for n, v in E12_GT.items()}
# epoch -> (MER2023 predictions, expected hit rate), (CMUMOSI sentiments, expected weighted F1)
PLAN = {
    30: ((MER_EMPTY, 0.0), (MOSI_PERFECT, 1.0)),
    35: ((E10_PRED, 0.58), (E12_SENT, 0.8)),
    40: ((MER_PERFECT, 1.0), (E12_SENT, 0.8)),
}


def _npz(path: Path, values: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, filenames=np.array(list(values), dtype=str), fileitems=np.array(list(values.values()), dtype=str))


def _config(tmp_path: Path) -> Path:
    roots = {"MER2023": build_mer2023(tmp_path / "mer2023"), "CMUMOSI": build_cmumosi(tmp_path / "mosi")}
    config = tmp_path / "roots.yaml"
    config.write_text("data:\n  unibench_roots:\n" + "".join(f"    {k}: {v}\n" for k, v in roots.items()))
    return config


def _official_folder(root: Path) -> Path:
    for epoch, ((mer, _), (mosi, _)) in PLAN.items():
        sub = "emercoarse_highlevelfilter4_outputhybird_bestsetup_bestfusion_lz_20250110100"
        _npz(root / "results-mer2023" / sub / f"checkpoint_0000{epoch}_loss_0.5-openset.npz", mer)
        _npz(root / "results-cmumosi" / sub / f"checkpoint_0000{epoch}_loss_0.5-openset-sentiment.npz", mosi)
    return root


def _our_folder(root: Path) -> Path:
    for epoch, ((mer, _), (mosi, _)) in PLAN.items():
        folder = root / f"epoch_{epoch:03d}" / "eval-parser"
        folder.mkdir(parents=True)
        pd.DataFrame({"name": list(mer), "openset": list(mer.values())}).to_csv(folder / "MER2023-openset.csv")
        pd.DataFrame({"name": list(mosi), "sentiment": list(mosi.values())}).to_csv(folder / "CMUMOSI-sentiment.csv")
    return root


@pytest.mark.parametrize("layout", [_official_folder, _our_folder])
def test_paper_protocol_best_epoch_per_dataset(layout, tmp_path: Path, capsys) -> None:
    results = layout(tmp_path / "results")
    args = ["unibench", "--protocol", "paper", "--epochs", "30-40:5", "--results-dir", results]
    args += ["--data-roots-from", _config(tmp_path), "--wheel-dir", OFFICIAL, "--partial", "--n-resamples", "200"]
    assert evaluate.main([str(a) for a in args]) == 0
    out = capsys.readouterr().out
    data = json.loads((results / "unibench-paper.json").read_text())
    assert data["best_epoch"] == {"MER2023": 40, "CMUMOSI": 30}  # a different best epoch per dataset
    assert data["best"]["MER2023"]["point"] == pytest.approx(1.0, abs=1e-12)
    assert data["best"]["CMUMOSI"]["point"] == pytest.approx(1.0, abs=1e-12)
    assert data["mean_of_maxima"]["point"] == pytest.approx(1.0, abs=1e-12)
    # no validation scores: the common epoch is the best test-set mean: 30 -> 0.5, 35 -> 0.69, 40 -> 0.9
    assert data["common_epoch"] == 40 and "no validation scores" in data["common_selected_by"]
    assert data["common_epoch_mean"]["point"] == pytest.approx(0.9, abs=1e-12)
    assert data["optimism_gap"]["point"] == pytest.approx(0.1, abs=1e-12)
    iv = data["common"]["MER2023"]
    assert iv["low"] <= 1.0 <= iv["high"] and iv["n_resamples"] == 200
    assert "| MER2023 | 40 | 100.00 [" in out and "Optimism gap" in out


def test_paper_protocol_validation_picks_common_epoch(tmp_path: Path, capsys) -> None:
    results = _official_folder(tmp_path / "results")
    val = tmp_path / "val.json"
    val.write_text(json.dumps({"30": 0.2, "35": 0.7, "40": 0.4}))
    args = ["unibench", "--protocol", "paper", "--epochs", "30-40:5", "--results-dir", results, "--partial"]
    args += ["--data-roots-from", _config(tmp_path), "--wheel-dir", OFFICIAL, "--val-scores", val]
    assert evaluate.main([str(a) for a in args]) == 0
    data = json.loads((results / "unibench-paper.json").read_text())
    assert data["common_epoch"] == 35 and data["common_selected_by"] == "best validation score"
    assert data["common_epoch_mean"]["point"] == pytest.approx((0.58 + 0.8) / 2, abs=1e-9)
    assert data["optimism_gap"]["point"] == pytest.approx(1.0 - 0.69, abs=1e-9)
    assert data["optimism_gap"]["low"] > 0  # paired replicates: maxima never below the same epochs' mean here


def test_paper_protocol_missing_epoch_is_named(tmp_path: Path, capsys) -> None:
    results = _official_folder(tmp_path / "results")
    args = ["unibench", "--protocol", "paper", "--epochs", "30-45:5", "--results-dir", results, "--partial"]
    args += ["--data-roots-from", _config(tmp_path), "--wheel-dir", OFFICIAL]
    assert evaluate.main([str(a) for a in args]) == 2
    assert "MER2023: no files for epoch(s) [45]" in capsys.readouterr().err

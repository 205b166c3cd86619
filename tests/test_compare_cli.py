"""evaluate.py compare A B (paired bootstrap) and the intervals of `unibench --all` (protocol selected)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_metrics_examples import E10_GT, E10_PRED, E12_SENT
from test_metrics_unibench import build_cmumosi, build_mer2023
from test_protocol_cli import MER_PERFECT, MOSI_PERFECT, OFFICIAL, _config, evaluate


def _times(values: dict, k: int) -> dict:
    """k copies of a worked example (names suffixed): same scores, enough samples for a decisive interval."""
    return {f"{name}{i}": value for i in range(k) for name, value in values.items()}


def _big_config(tmp_path: Path) -> Path:
    roots = {"MER2023": build_mer2023(tmp_path / "mer", _times(E10_GT, 10)), "CMUMOSI": build_cmumosi(tmp_path / "mo")}
    config = tmp_path / "big.yaml"
    config.write_text("data:\n  unibench_roots:\n" + "".join(f"    {k}: {v}\n" for k, v in roots.items()))
    return config


def _run(folder: Path, mer: dict, mosi: dict) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame({"name": list(mer), "openset": list(mer.values())}).to_csv(folder / "MER2023-openset.csv")
    pd.DataFrame({"name": list(mosi), "sentiment": list(mosi.values())}).to_csv(folder / "CMUMOSI-sentiment.csv")
    return folder


def test_compare_says_which_run_wins(tmp_path: Path, capsys) -> None:
    config = _big_config(tmp_path)
    a = _run(tmp_path / "a", _times(E10_PRED, 10), E12_SENT)  # 0.58 and 0.8 (worked examples E10, E12)
    b = _run(tmp_path / "b", _times(MER_PERFECT, 10), E12_SENT)  # 1.0 and 0.8
    out = tmp_path / "cmp.json"
    argv = ["compare", a, b, "--data-roots-from", config, "--wheel-dir", OFFICIAL, "--out", out]
    assert evaluate.main([str(x) for x in argv]) == 0
    text = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["MER2023"]["point"] == pytest.approx(1.0 - 0.58, abs=1e-9)
    assert data["CMUMOSI"]["point"] == 0.0 and data["CMUMOSI"]["low"] == 0.0 == data["CMUMOSI"]["high"]
    assert data["mean"]["point"] == pytest.approx(0.21, abs=1e-9)
    assert data["MER2023"]["low"] > 0 and data["MER2023"]["p_b_le_a"] < 0.05
    assert "| MER2023 | +42.00 [" in text and "B better" in text and "no clear difference" in text


def test_unibench_all_prints_intervals(tmp_path: Path, capsys) -> None:
    config = _config(tmp_path)
    results = _run(tmp_path / "r", E10_PRED, MOSI_PERFECT)
    argv = ["unibench", "--all", "--partial", "--data-roots-from", config, "--results-dir", results]
    assert evaluate.main([str(x) for x in argv + ["--wheel-dir", OFFICIAL, "--n-resamples", "300"]]) == 0
    text = capsys.readouterr().out
    data = json.loads((results / "unibench.json").read_text())
    mer = data["intervals"]["MER2023"]
    assert mer["point"] == pytest.approx(0.58, abs=1e-9) and mer["low"] < 0.58 < mer["high"]
    assert mer["n_resamples"] == 300
    assert data["intervals"]["mean"]["point"] == pytest.approx((0.58 + 1.0) / 2, abs=1e-9)
    assert "| MER2023 | 58.00 [" in text and "Mean (2/9)" in text


def test_ablation_table_from_variant_folders(tmp_path: Path, capsys) -> None:
    for folder, mer, mean in [("epoch_0002", 60.0, 70.0), ("epoch_0002-drop-audio", 50.0, 55.5)]:
        table = {"scores_x100": {"MER2023": mer, "CMUMOSI": 80.0}, "mean_x100": mean}
        (tmp_path / folder / "eval-parser").mkdir(parents=True)
        (tmp_path / folder / "eval-parser" / "unibench.json").write_text(json.dumps(table))
    assert evaluate.main(["ablation", "--results-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "| full | A,V,T | 60.00 | 80.00 | 70.00 | +0.00 |" in text
    assert "| drop-audio | V,T | 50.00 | 80.00 | 55.50 | -14.50 |" in text

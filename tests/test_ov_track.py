"""evaluate.py ov --dataset MER2025OV: EW F1 averaged over the five wheels at L1, over the candidate list.

Expected values are hand-computed from the rule (reference §5.5/§5.6) on the reference's worked examples:
E9 (s1 P .25 R 1; s2 P 1 R 1/3 in every wheel) gives P .625, R 2/3, F = 2PR/(P+R) = 0.64516 in every wheel;
with s2 missing and counted empty (P = R = 0), P = .125, R = .5, F = 0.2 in every wheel; E6 skips its
neutral sample. E2 (one sample) has per-wheel F 1, 1, 2/3, 1, 2/3 at L1, mean 0.86667.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_metrics_examples import EW_EXAMPLES
from test_protocol_cli import OFFICIAL, evaluate

from affectgpt.labels.submission import write_submission


def _csv(path: Path, values: dict[str, str]) -> Path:
    pd.DataFrame({"name": list(values), "openset": list(values.values())}).to_csv(path, index=False)
    return path


def _candidates(path: Path, names: list[str]) -> Path:
    pd.DataFrame({"name": names}).to_csv(path, index=False)
    return path


def _ov(tmp_path: Path, gt: dict, pred: dict, *extra: str, candidates: list[str] | None = None) -> tuple[int, dict]:
    argv = ["ov", "--dataset", "MER2025OV", "--gt", _csv(tmp_path / "gt.csv", gt)]
    argv += ["--pred", _csv(tmp_path / "pred.csv", pred), "--wheel-dir", OFFICIAL, "--out", tmp_path / "ov.json"]
    if candidates is not None:
        argv += ["--candidates", _candidates(tmp_path / "cand.csv", candidates)]
    code = evaluate.main([str(a) for a in [*argv, "--n-resamples", "400", *extra]])
    out = tmp_path / "ov.json"
    return code, json.loads(out.read_text()) if code == 0 and out.is_file() else {}


E9_GT, E9_PRED = EW_EXAMPLES["E9"][0], EW_EXAMPLES["E9"][1]
EXTRA = ["c1", "c2", "c3"]  # candidates outside the hidden GT: predicted, never scored


def test_e9_over_the_candidate_list(tmp_path: Path, capsys) -> None:
    pred = {**E9_PRED, **{n: "[happy]" for n in EXTRA}}
    code, data = _ov(tmp_path, E9_GT, pred, candidates=[*E9_GT, *EXTRA])
    assert code == 0
    f = 2 * 0.625 * (2 / 3) / (0.625 + 2 / 3)
    assert data["score"]["point"] == pytest.approx(f, abs=1e-12)
    assert data["precision"] == pytest.approx(0.625, abs=1e-12) and data["recall"] == pytest.approx(2 / 3, abs=1e-12)
    assert all(v == pytest.approx(f, abs=1e-12) for v in data["per_wheel_f1"].values())
    assert data["score"]["low"] <= f <= data["score"]["high"] and data["score"]["n_resamples"] == 400
    assert data["n_gt"] == 2 and data["n_candidates"] == 5
    assert "EW F1 (mean over W1-W5 at L1) 64.52 [" in capsys.readouterr().out


def test_missing_candidates_are_named_or_counted_empty(tmp_path: Path, capsys) -> None:
    pred = {"s1": E9_PRED["s1"], "c1": "[sad]"}  # s2 (a GT name) and c2, c3 not predicted
    code, _ = _ov(tmp_path, E9_GT, pred, candidates=[*E9_GT, *EXTRA])
    assert code == 2
    err = capsys.readouterr().err
    assert "3 candidate name(s) have no prediction" in err and "s2" in err and "c3" in err
    code, data = _ov(tmp_path, E9_GT, pred, "--allow-missing", candidates=[*E9_GT, *EXTRA])
    assert code == 0
    assert data["score"]["point"] == pytest.approx(2 * 0.125 * 0.5 / (0.125 + 0.5), abs=1e-12)  # 0.2
    assert data["missing_counted_empty"] == ["s2"]


def test_names_outside_the_candidate_list_are_errors(tmp_path: Path, capsys) -> None:
    code, _ = _ov(tmp_path, E9_GT, {**E9_PRED, "zz": "[sad]"}, candidates=list(E9_GT))
    assert code == 2 and "1 predicted name(s) are not in the candidate list: zz" in capsys.readouterr().err
    code, _ = _ov(tmp_path, E9_GT, E9_PRED, candidates=["s1"])
    assert code == 2 and "GT name(s) are not in the candidate list: s2" in capsys.readouterr().err


def test_e6_skips_neutral_and_e2_averages_wheel_f(tmp_path: Path) -> None:
    gt, pred = EW_EXAMPLES["E6"][0], EW_EXAMPLES["E6"][1]
    code, data = _ov(tmp_path, gt, pred)
    assert code == 0 and data["score"]["point"] == pytest.approx(0.75, abs=1e-12)
    assert data["n_gt"] == 3 and data["n_skipped"] == 1
    gt, pred = EW_EXAMPLES["E2"][0], EW_EXAMPLES["E2"][1]
    code, data = _ov(tmp_path, gt, pred)
    assert code == 0
    assert [data["per_wheel_f1"][f"W{w}"] for w in range(1, 6)] == pytest.approx([1, 1, 2 / 3, 1, 2 / 3], abs=1e-12)
    assert data["score"]["point"] == pytest.approx(13 / 15, abs=1e-12)  # 0.8667, reference E2


def test_scores_a_written_submission_file(tmp_path: Path) -> None:
    """The -openset.npz `evaluate.py submission` writes is what `ov` scores (same numbers as the CSV)."""
    labels = {**E9_PRED, **{n: "[]" for n in EXTRA}}
    cand = _candidates(tmp_path / "all.csv", [*EXTRA, *E9_GT])
    npz = write_submission(tmp_path / "mine-openset.npz", labels, cand)
    with np.load(npz, allow_pickle=False) as held:
        assert list(held["filenames"]) == [*EXTRA, *E9_GT]
    argv = ["ov", "--gt", _csv(tmp_path / "gt.csv", E9_GT), "--pred", npz, "--candidates", cand]
    argv += ["--wheel-dir", OFFICIAL, "--out", tmp_path / "o.json", "--n-resamples", "50"]
    assert evaluate.main([str(a) for a in argv]) == 0
    assert json.loads((tmp_path / "o.json").read_text())["score"]["point"] == pytest.approx(0.64516, abs=1e-5)

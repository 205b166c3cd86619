"""evaluate.py report (and run --protocol paper) on real tiny answer folders scored by `evaluate.py run`.

The folders hold infer.py answer files written by its own ResultWriter (with .meta.json), the parser extractor
turns them into labels, and the report must show exactly what the scoring code computes from those labels.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from test_metrics_examples import E10_GT, E10_PRED, E10_SCORE, E12_GT
from test_metrics_unibench import build_cmumosi, build_mer2023
from test_protocol_cli import OFFICIAL, evaluate

from affectgpt.infer.outputs import ResultWriter
from affectgpt.metrics.bootstrap import format_interval, nine_set_mean_interval, per_sample
from affectgpt.metrics.wheel import WHEEL_FILES, get_wheel
from affectgpt.protocols import set_ground_truth

ANCHORS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "anchors.md"
CHECKPOINT = "/runs/demo/epoch_0030"


def _published_rows() -> dict[str, list[float]]:
    """The AffectGPT rows of the paper's Table 2 as anchors.md §1.1 prints them (bold markers removed)."""
    rows = {}
    for line in ANCHORS.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| (?:\*\*)?AffectGPT \(([A-Z,]+)\)(?:\*\*)? \|(.*)\|$", line)
        if match:
            rows[match[1]] = [float(c.strip().strip("*")) for c in match[2].split("|")]
    return rows


def _sentence(labels: str) -> str:
    inner = labels.strip("[]").strip()
    return f"The character's emotional state is {inner}." if inner else "I cannot tell how the character feels."


def _answers(folder: Path, dataset: str, root: Path, responses: dict[str, str], checkpoint: str) -> None:
    meta = {"dataset": dataset, "data_root": str(root), "checkpoint": checkpoint, "question": "q"}
    ResultWriter(folder / f"{dataset}.jsonl", meta).append(list(responses.items()))


def _roots(tmp_path: Path) -> tuple[Path, Path]:
    return build_mer2023(tmp_path / "mer2023"), build_cmumosi(tmp_path / "mosi")


MOSI_RIGHT = {n: _sentence("[happy]" if v > 0 else "[sad]") for n, v in E12_GT.items()}  # sentiment = GT sign
MOSI_WRONG = {n: _sentence("[sad]" if v > 0 else "[happy]") for n, v in E12_GT.items()}  # every sign flipped
MER_E10 = {n: _sentence(p) for n, p in E10_PRED.items()}  # reference E10: hit rate 0.58
MER_PERFECT = {n: _sentence(f"[{g}]") for n, g in E10_GT.items()}


def _direct_intervals(labels: Path, mer_root: Path, mosi_root: Path, n: int):
    """The intervals computed straight from the label files with metrics/bootstrap (no report code)."""
    wheel = get_wheel(OFFICIAL)
    mer = pd.read_csv(labels / "MER2023-openset.csv", dtype=str, keep_default_na=False)
    mosi = pd.read_csv(labels / "CMUMOSI-sentiment.csv", dtype=str, keep_default_na=False)
    sets = {
        "MER2023": per_sample(
            "discrete", set_ground_truth("MER2023", str(mer_root)), dict(zip(mer.name, mer.openset)), wheel, "MER2023"
        ),
        "CMUMOSI": per_sample(
            "dimension", set_ground_truth("CMUMOSI", str(mosi_root)), dict(zip(mosi.name, mosi.sentiment))
        ),
    }
    return nine_set_mean_interval(sets, n, 0)


def test_report_selected_matches_scores_intervals_and_hashes(tmp_path: Path, capsys) -> None:
    mer_root, mosi_root = _roots(tmp_path)
    run = tmp_path / "results" / "epoch_0030"
    _answers(run, "MER2023", mer_root, MER_E10, CHECKPOINT)
    _answers(run, "CMUMOSI", mosi_root, MOSI_RIGHT, CHECKPOINT)
    assert evaluate.main(["run", "--results-dir", str(run), "--wheel-dir", str(OFFICIAL)]) == 0
    capsys.readouterr()
    argv = ["report", "--results-dir", str(run), "--compare", "published", "--n-resamples", "300"]
    assert evaluate.main(argv) == 0
    stdout = capsys.readouterr().out
    md = (run / "report.md").read_text()
    assert "| MER2023 | 58.00 [" in stdout  # the table is printed too
    table = json.loads((run / "eval-parser" / "unibench.json").read_text())
    assert table["scores_x100"]["MER2023"] == pytest.approx(E10_SCORE * 100)  # reference worked example E10
    direct = _direct_intervals(run / "eval-parser", mer_root, mosi_root, 300)
    for name in ("MER2023", "CMUMOSI"):
        iv = direct.per_dataset[name]
        assert iv.point * 100 == pytest.approx(table["scores_x100"][name], abs=0.005)
        assert f"| {name} | {format_interval(iv)} |" in md
    assert f"| **Mean (2/9)** | {format_interval(direct.mean)} |" in md
    data = json.loads((run / "report.json").read_text())
    assert data["intervals"]["MER2023"]["low"] == direct.per_dataset["MER2023"].low
    assert data["mean"]["high"] == direct.mean.high
    # provenance: the hashes are those of the wheel files, the checkpoint and extractor those of the run
    for name in WHEEL_FILES:
        digest = hashlib.sha256((OFFICIAL / name).read_bytes()).hexdigest()
        assert data["provenance"]["wheel_sha256"][name] == digest and f"sha256 {digest}  {name}" in md
    assert f"- checkpoint: {CHECKPOINT}" in md
    assert data["provenance"]["extractor"] == "parser" and "parse_label_sentence" in md
    # published rows as the reference prints them, and ours - published from our two-decimal scores
    rows = _published_rows()
    assert set(rows) == {"A,V,T", "V,T", "A,T"} and rows["A,V,T"][-1] == 74.77
    for row, values in rows.items():  # the columns of the sets we scored (MER2023, CMUMOSI) and the Mean
        assert f"| AffectGPT ({row}) | {values[0]:.2f} | {values[4]:.2f} | {values[-1]:.2f} |" in md
    mer_delta = table["scores_x100"]["MER2023"] - rows["A,V,T"][0]
    mosi_delta = table["scores_x100"]["CMUMOSI"] - rows["A,V,T"][4]
    assert f"| ours - AffectGPT (A,V,T) | {mer_delta:+.2f} | {mosi_delta:+.2f} | - |" in md
    assert "Protocol" in md and "selected" in data["protocol"]
    png = run / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def test_run_and_report_paper_protocol_over_epoch_folders(tmp_path: Path, capsys) -> None:
    mer_root, mosi_root = _roots(tmp_path)
    results = tmp_path / "results"
    # MER2023 is best at epoch 35 (perfect vs E10's 0.58), CMUMOSI at epoch 30 (right signs vs all flipped)
    for epoch, mer, mosi in [(30, MER_E10, MOSI_RIGHT), (35, MER_PERFECT, MOSI_WRONG)]:
        folder = results / f"epoch_{epoch:04d}"
        _answers(folder, "MER2023", mer_root, mer, f"/runs/demo/epoch_{epoch:04d}")
        _answers(folder, "CMUMOSI", mosi_root, mosi, f"/runs/demo/epoch_{epoch:04d}")
    argv = ["run", "--results-dir", str(results), "--protocol", "paper", "--epochs", "30-35:5", "--partial"]
    assert evaluate.main(argv + ["--wheel-dir", str(OFFICIAL), "--n-resamples", "200"]) == 0
    out = capsys.readouterr().out
    paper = json.loads((results / "unibench-paper.json").read_text())
    assert paper["best_epoch"] == {"MER2023": 35, "CMUMOSI": 30}
    assert paper["best"]["MER2023"]["point"] == pytest.approx(1.0) and paper["best"]["CMUMOSI"]["point"] == 1.0
    # epoch 30: (0.58 + 1.0) / 2 = 0.79, epoch 35: (1.0 + 0.0) / 2 = 0.5 -> common epoch 30, gap 1.0 - 0.79
    assert paper["common_epoch"] == 30 and paper["optimism_gap"]["point"] == pytest.approx(0.21, abs=1e-9)
    assert "Optimism gap" in out and (results / "epoch_0030" / "eval-parser" / "MER2023-openset.csv").is_file()
    argv = ["report", "--results-dir", str(results), "--protocol", "paper", "--epochs", "30-35:5"]
    assert evaluate.main(argv + ["--n-resamples", "200", "--compare", "published"]) == 0
    md = (results / "report.md").read_text()
    assert "| MER2023 | 100.00 [100.00, 100.00] | 35 |" in md and "| CMUMOSI | 100.00 [100.00, 100.00] | 30 |" in md
    assert "optimism gap (mean of maxima - common-epoch mean) +21.00 [" in md
    assert "- checkpoint: /runs/demo/epoch_0030" in md and "- checkpoint: /runs/demo/epoch_0035" in md


def test_run_paper_names_the_missing_epoch(tmp_path: Path, capsys) -> None:
    mer_root, _ = _roots(tmp_path)
    _answers(tmp_path / "results" / "epoch_0030", "MER2023", mer_root, MER_E10, CHECKPOINT)
    argv = ["run", "--results-dir", str(tmp_path / "results"), "--protocol", "paper", "--epochs", "30-40:10"]
    assert evaluate.main(argv + ["--wheel-dir", str(OFFICIAL)]) == 2
    assert "for epoch(s) [40]" in capsys.readouterr().err


def test_report_without_labels_says_what_to_run(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert evaluate.main(["report", "--results-dir", str(tmp_path / "empty"), "--wheel-dir", str(OFFICIAL)]) == 2
    assert "run evaluate.py run" in capsys.readouterr().err


def test_report_paper_on_official_result_folders(tmp_path: Path, capsys) -> None:
    from test_protocol_cli import _config, _official_folder

    results = _official_folder(tmp_path / "official")  # MER2023 best at 40, CMUMOSI at 30 (test_protocol_cli PLAN)
    argv = ["report", "--results-dir", results, "--protocol", "paper", "--epochs", "30-40:5", "--n-resamples", "100"]
    argv += ["--data-roots-from", _config(tmp_path), "--wheel-dir", OFFICIAL, "--out", tmp_path / "rep"]
    assert evaluate.main([str(a) for a in argv]) == 0
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["best_epoch"] == {"MER2023": 40, "CMUMOSI": 30} and data["protocol"] == "paper"
    assert data["provenance"]["extractor"].startswith("official evaluation.py")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| MER2023 | 100.00 [100.00, 100.00] | 40 |" in md and "optimism gap" in md


def test_val_scores_from_a_training_runs_metrics_jsonl(tmp_path: Path, capsys) -> None:
    """--val-scores metrics.jsonl: the common epoch is the one training would select (its SCORE_KEY)."""
    from test_protocol_cli import _config, _official_folder

    from affectgpt.protocols import VAL_SCORE_KEY
    from affectgpt.train.run import SCORE_KEY

    assert VAL_SCORE_KEY == SCORE_KEY
    lines = [{"epoch": 30, "step": 1, SCORE_KEY: 0.9}, {"epoch": 35, SCORE_KEY: 0.2}, {"epoch": 35, SCORE_KEY: 0.95}]
    lines += [{"epoch": 40, "train/loss": 1.0}, {"epoch": 40, SCORE_KEY: 0.5}]  # a train-only record is passed over
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    results = _official_folder(tmp_path / "official")
    argv = ["report", "--results-dir", results, "--protocol", "paper", "--epochs", "30-40:5", "--n-resamples", "50"]
    argv += ["--data-roots-from", _config(tmp_path), "--wheel-dir", OFFICIAL, "--val-scores", metrics]
    assert evaluate.main([str(a) for a in argv]) == 0
    data = json.loads((results / "report.json").read_text())
    assert data["common_epoch"] == 35 and data["common_selected_by"] == "best validation score"
    (tmp_path / "bad.jsonl").write_text(json.dumps({"epoch": 30, "train/loss": 1.0}) + "\n")
    argv[-1] = tmp_path / "bad.jsonl"
    assert evaluate.main([str(a) for a in argv]) == 2
    assert "no record with 'epoch' and 'val/avg-L1/f1'" in capsys.readouterr().err

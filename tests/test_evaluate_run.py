"""`evaluate.py run`: infer.py answers -> OV-label extraction (parser | lexicon | llm, cached) -> scores.

The headline check: after a short real training run, `python infer.py --ckpt <best> --split val`
followed by `evaluate.py run` reproduces exactly the validation scores the training loop logged.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from affectgpt.data import prompts
from affectgpt.data.records import SkipLog
from affectgpt.data.safe_npz import save_npz_object
from affectgpt.data.sources import training_records
from affectgpt.data.synthetic import generate
from affectgpt.data.unibench import UNIBENCH_ORDER
from affectgpt.infer.outputs import read_meta, read_responses
from affectgpt.infer.runner import config_from_meta
from affectgpt.metrics.unibench import score_dataset
from affectgpt.metrics.wheel import get_wheel
from affectgpt.resources.qwen_tokenizer import ensure_qwen25_tokenizer

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = (REPO.parent / "shared" / "emotion_wheel").resolve()  # the CLI reports resolved paths
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "TOKENIZERS_PARALLELISM": "false",
}
_spec = importlib.util.spec_from_file_location("evaluate_cli_run", REPO / "evaluate.py")
evaluate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evaluate)


def sh(args: list, timeout: int = 1800) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, *map(str, args)], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def run(args: list, capsys) -> tuple[int, str, str]:
    code = evaluate.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------------------- train -> infer -> evaluate
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """One short real training run (1 epoch, 2 steps) with per-epoch validation on 3 held-out samples."""
    data = generate(tmp_path_factory.mktemp("data") / "demo", n=30, seed=0, unibench=False)
    out = tmp_path_factory.mktemp("runs")
    overrides = {
        "data.root": data,
        "data.val_fraction": 0.2,
        "data.label_type": "ovlabel",
        "data.val_max_samples": 3,
        "train.output_dir": out,
        "train.run_name": "t",
        "train.epochs": 1,
        "train.iters_per_epoch": 2,
        "train.batch_size": 2,
        "train.lr": 1e-3,
        "train.val_batch_size": 2,
        "train.val_max_new_tokens": 6,
        "eval.wheel_dir": OFFICIAL,
        "data.feature_cache": data / "feature_cache",
    }
    sh([REPO / "train.py", *(f"{k}={v}" for k, v in overrides.items())])
    return out / "t"


@pytest.fixture(scope="module")
def val_results(trained_run: Path, tmp_path_factory) -> Path:
    best = trained_run / json.loads((trained_run / "best.json").read_text())["checkpoint"]
    results = tmp_path_factory.mktemp("results")
    sh([REPO / "infer.py", "--ckpt", best, "--split", "val", "--out-dir", results, "--no-progress"])
    return results


def test_val_split_scores_exactly_what_the_training_loop_logged(trained_run: Path, val_results: Path, capsys) -> None:
    best = json.loads((trained_run / "best.json").read_text())["checkpoint"]
    logged_predictions = [
        json.loads(x) for x in (trained_run / best / "val_predictions.jsonl").read_text().splitlines()
    ]
    answers = read_responses(val_results / "val.jsonl")
    assert answers == {row["name"]: row["response"] for row in logged_predictions}  # same records, same answers
    code, stdout, _ = run(["run", "--results-dir", val_results], capsys)
    assert code == 0 and "| val |" in stdout
    table = json.loads((val_results / "eval-parser" / "unibench.json").read_text())
    epoch = int(best.split("_")[1])
    logged = next(
        json.loads(x)
        for x in (trained_run / "metrics.jsonl").read_text().splitlines()
        if json.loads(x)["epoch"] == epoch
    )
    val_keys = [k for k in logged if k.startswith("val/")]
    assert len(val_keys) >= 10 and "val/avg-L1/f1" in val_keys
    for key in val_keys:
        assert table["ew"]["val"][key[len("val/") :]] == logged[key], key  # exactly, not approximately
    assert table["extraction"]["val"]["n_answers"] == 3 and table["wheel"] == str(OFFICIAL)


def test_val_results_are_scored_against_the_runs_ground_truth(val_results: Path, tmp_path: Path, capsys) -> None:
    """The same val metadata with perfect answers scores 1.0: the GT really is the run's validation set."""
    meta = read_meta(val_results / "val.jsonl")
    records = training_records(config_from_meta(meta).data, SkipLog())[1]
    assert [r.name for r in records] == list(read_responses(val_results / "val.jsonl"))
    folder = tmp_path / "perfect"
    folder.mkdir()
    shutil.copy(val_results / "val.meta.json", folder / "val.meta.json")
    rows = [{"name": r.name, "response": prompts.ovlabel_answer(r.ovlabels)} for r in records]
    (folder / "val.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert run(["run", "--results-dir", folder], capsys)[0] == 0
    scores = json.loads((folder / "eval-parser" / "unibench.json").read_text())["ew"]["val"]
    assert scores["avg-L1/f1"] == 1.0 and scores["n_empty"] == 0 and scores["n_samples"] == 3


# ----------------------------------------------------------------------------- nine datasets, hand-written answers
DISCRETE = {"happy": "happy", "sad": "sad", "angry": "angry", "worried": "worried", "neutral": "neutral"}
SENTIMENT_GT = {"s_pos1": 1.4, "s_neg1": -2.0, "s_pos2": 0.6, "s_neg2": -0.4, "s_zero": 0.0}
OV_GT = {"o1": "[happy, excited]", "o2": "[sad, lonely]", "o3": "[angry]"}
MELD = ["anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise"]


def _subtitles(root: Path, names: list[str], file: str = "transcription-engchi-polish.csv") -> None:
    pd.DataFrame({"name": names, "chinese": "字幕", "english": "a line"}).to_csv(root / file, index=False)


def build_unibench(base: Path) -> dict[str, str]:
    """Label + subtitle files (no media: scoring never decodes media) for all nine test sets."""
    roots = {name: base / name for name in UNIBENCH_ORDER}
    for root in roots.values():
        root.mkdir(parents=True)
    for name, prefix in (("MER2023", "m"), ("MER2024", "n")):
        corpus = {f"{prefix}_{w}": {"emo": w, "val": 0.0} for w in DISCRETE}
        save_npz_object(roots[name] / "label-6way.npz", train_corpus={}, test1_corpus=corpus)
        _subtitles(
            roots[name],
            list(corpus),
            "transcription-engchi-polish.csv" if name == "MER2023" else "transcription_merge.csv",
        )
    meld = {"test_dia0_utt0": 1, "test_dia0_utt1": 2, "test_dia1_utt0": 0}
    save_npz_object(
        roots["MELD"] / "label.npz",
        train_corpus={},
        val_corpus={},
        test_corpus={k: {"emo": v} for k, v in meld.items()},
    )
    _subtitles(roots["MELD"], list(meld))
    iemocap = {"Ses05F_impro01_F000": 0, "Ses05M_impro01_M001": 1, "Ses05F_impro02_F002": 3, "Ses01F_impro01_F000": 1}
    save_npz_object(roots["IEMOCAPFour"] / "label_4way.npz", whole_corpus={k: {"emo": v} for k, v in iemocap.items()})
    _subtitles(roots["IEMOCAPFour"], list(iemocap))
    for name in ("CMUMOSI", "CMUMOSEI", "SIMS", "SIMSv2"):
        save_npz_object(
            roots[name] / "label.npz",
            train_corpus={},
            val_corpus={},
            test_corpus={f"{name}_{k}": {"val": v} for k, v in SENTIMENT_GT.items()},
        )
        _subtitles(roots[name], [f"{name}_{k}" for k in SENTIMENT_GT])
    pd.DataFrame({"name": list(OV_GT), "openset": list(OV_GT.values())}).to_csv(
        roots["OVMERDPlus"] / "ovlabel.csv", index=False
    )
    pd.DataFrame({"name": list(OV_GT), "sentence": "hi"}).to_csv(roots["OVMERDPlus"] / "subtitle_eng.csv", index=False)
    return {k: str(v) for k, v in roots.items()}


def sentence(*labels: str) -> str:
    return f"In the clip the person speaks. The character's emotional state is {', '.join(labels)}."


def write_answers(folder: Path) -> None:
    """name,response CSVs as infer.py writes them; OVMERDPlus o3 is unreadable (-> an empty prediction)."""
    folder.mkdir(parents=True, exist_ok=True)
    answers = {
        "MER2023": {f"m_{w}": sentence(w) for w in DISCRETE},
        "MER2024": {f"n_{w}": sentence(w) for w in DISCRETE},
        "MELD": {
            "test_dia0_utt0": sentence("joy"),
            "test_dia0_utt1": sentence("sadness"),
            "test_dia1_utt0": sentence("anger"),
        },
        "IEMOCAPFour": {
            "Ses05F_impro01_F000": sentence("happy"),
            "Ses05M_impro01_M001": sentence("sad"),
            "Ses05F_impro02_F002": sentence("angry"),
        },
        "OVMERDPlus": {"o1": sentence("happy", "excited"), "o2": "```\nsad; lonely\n```", "o3": "???"},
    }
    for name in ("CMUMOSI", "CMUMOSEI", "SIMS", "SIMSv2"):
        answers[name] = {
            f"{name}_{k}": sentence("happy", "cheerful") if v > 0 else sentence("sad", "angry")
            for k, v in SENTIMENT_GT.items()
        }
    for name, rows in answers.items():
        pd.DataFrame({"name": list(rows), "response": list(rows.values())}).to_csv(folder / f"{name}.csv", index=False)


@pytest.fixture(scope="module")
def unibench_setup(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("unibench")
    roots = build_unibench(base / "data")
    config = base / "roots.yaml"
    config.write_text(json.dumps({"data": {"unibench_roots": roots}}))  # JSON is YAML
    write_answers(base / "answers")
    return base / "answers", config


def test_parser_extractor_gives_the_full_table(unibench_setup, tmp_path: Path, capsys) -> None:
    answers, config = unibench_setup
    results = tmp_path / "answers"
    shutil.copytree(answers, results)
    code, stdout, _ = run(
        ["run", "--results-dir", results, "--data-roots-from", config, "--wheel-dir", OFFICIAL], capsys
    )
    assert code == 0
    table = json.loads((results / "eval-parser" / "unibench.json").read_text())
    assert table["complete"] and list(table["scores_x100"]) == list(UNIBENCH_ORDER)
    for name in UNIBENCH_ORDER[:-1]:
        assert table["scores_x100"][name] == 100.0, name
    # OVMERDPlus: o2 (code fence, ';') still parses, o3 ('???') counts as an empty prediction, nothing dropped.
    wheel = get_wheel(OFFICIAL)
    expected = score_dataset(
        "OVMERDPlus",
        Path(json.loads(config.read_text())["data"]["unibench_roots"]["OVMERDPlus"]),
        wheel,
        {"o1": "[happy, excited]", "o2": "[]", "o3": "[]"},
    )
    assert table["datasets"]["OVMERDPlus"]["score"] == pytest.approx(expected.score, abs=1e-12)
    assert table["extraction"]["OVMERDPlus"] == {"n_answers": 3, "n_empty": 2, "n_unparsed": 2}
    assert table["mean_x100"] == round((800 + expected.score * 100) / 9, 2)
    assert "| MER2023 | MER2024 | MELD |" in stdout and "Mean" in stdout
    derived = results / "eval-parser"
    sentiments = pd.read_csv(derived / "CMUMOSI-sentiment.csv")["sentiment"].tolist()
    assert sentiments == ["positive", "negative", "positive", "negative", "negative"]
    assert (derived / "unibench.md").read_text().startswith("| MER2023")
    # The derived files are what `unibench --all` reads: the same table.
    out = tmp_path / "again.json"
    code, _, _ = run(
        [
            "unibench",
            "--all",
            "--results-dir",
            derived,
            "--data-roots-from",
            config,
            "--wheel-dir",
            OFFICIAL,
            "--out",
            out,
        ],
        capsys,
    )
    assert code == 0 and json.loads(out.read_text())["scores_x100"] == table["scores_x100"]


def test_lexicon_extractor_reads_prose(unibench_setup, tmp_path: Path, capsys) -> None:
    answers, config = unibench_setup
    results = tmp_path / "answers"
    shutil.copytree(answers, results)
    code, stdout, _ = run(
        [
            "run",
            "--results-dir",
            results,
            "--extractor",
            "lexicon",
            "--data-roots-from",
            config,
            "--wheel-dir",
            OFFICIAL,
        ],
        capsys,
    )
    assert code == 0 and "extractor: lexicon" in stdout
    table = json.loads((results / "eval-lexicon" / "unibench.json").read_text())
    assert table["complete"] and table["extractor"] == "lexicon"
    for name in ("MER2023", "MER2024", "IEMOCAPFour", "CMUMOSI", "SIMSv2"):
        assert table["scores_x100"][name] == 100.0, name
    lexicon_labels = pd.read_csv(results / "eval-lexicon" / "OVMERDPlus-openset.csv")["openset"].tolist()
    assert "sad" in lexicon_labels[1] and "lonely" in lexicon_labels[1] and lexicon_labels[2] == "[]"


def test_the_recipe_extractor_is_the_default(unibench_setup, tmp_path: Path, capsys) -> None:
    """Without --extractor, evaluate.py run uses eval.extractor of the config (here --config; results written by
    infer.py carry their run's config), so a recipe such as the 7B one (eval.extractor: llm) describes the run."""
    answers, config = unibench_setup
    results = tmp_path / "answers"
    shutil.copytree(answers, results)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"eval": {"extractor": "lexicon", "wheel_dir": str(OFFICIAL)}}))
    code, stdout, _ = run(["run", "--results-dir", results, "--config", recipe, "--data-roots-from", config], capsys)
    assert code == 0 and "extractor: lexicon (eval.extractor of the config)" in stdout
    assert json.loads((results / "eval-lexicon" / "unibench.json").read_text())["extractor"] == "lexicon"


# ----------------------------------------------------------------------------- LLM extractor + cache
@pytest.fixture(scope="module")
def tiny_instruct(tmp_path_factory) -> Path:
    """A local instruct-model folder: random 1-layer Qwen2 + the real Qwen2.5 tokenizer (chat template)."""
    folder = tmp_path_factory.mktemp("llm") / "tiny-instruct"
    shutil.copytree(ensure_qwen25_tokenizer(), folder)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        initializer_range=1.0,
    )
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


def test_llm_extractor_end_to_end_and_the_cache_makes_reruns_free(
    unibench_setup, tiny_instruct: Path, tmp_path: Path, capsys
) -> None:
    answers, config = unibench_setup
    results = tmp_path / "answers"
    results.mkdir()
    for name in ("OVMERDPlus", "CMUMOSI", "MELD"):
        shutil.copy(answers / f"{name}.csv", results / f"{name}.csv")
    llm = tmp_path / "llm"
    shutil.copytree(tiny_instruct, llm)
    args = [
        "run",
        "--results-dir",
        results,
        "--extractor",
        "llm",
        "--llm",
        llm,
        "--llm-max-new-tokens",
        "6",
        "--llm-batch-size",
        "4",
        "--backend",
        "transformers",
        "--data-roots-from",
        config,
        "--wheel-dir",
        OFFICIAL,
        "--partial",
    ]
    code, stdout, _ = run(args, capsys)
    assert code == 0, stdout
    first = json.loads((results / "eval-llm" / "unibench.json").read_text())
    assert set(first["scores_x100"]) == {"OVMERDPlus", "CMUMOSI", "MELD"} and not first["complete"]
    assert all(0.0 <= v <= 100.0 for v in first["scores_x100"].values())
    distinct = len(
        {
            *pd.read_csv(answers / "OVMERDPlus.csv")["response"],
            *pd.read_csv(answers / "CMUMOSI.csv")["response"],
            *pd.read_csv(answers / "MELD.csv")["response"],
        }
    )
    assert first["extraction_computed"] >= distinct  # every distinct answer once (+ sentiment prompts)
    for name, n in (("OVMERDPlus", 3), ("CMUMOSI", 5), ("MELD", 3)):
        counts = first["extraction"][name]
        assert counts["n_answers"] == n and 0 <= counts["n_unparsed"] <= counts["n_empty"] <= n
        assert len(pd.read_csv(results / "eval-llm" / f"{name}-openset.csv", keep_default_na=False)) == n
    assert len(pd.read_csv(results / "eval-llm" / "CMUMOSI-sentiment.csv", keep_default_na=False)) == 5
    shutil.rmtree(llm)  # a re-run must not need the model at all
    code, stdout, _ = run(args, capsys)
    second = json.loads((results / "eval-llm" / "unibench.json").read_text())
    assert code == 0 and "(0 new extraction(s)" in stdout and second["extraction_computed"] == 0
    assert second["scores_x100"] == first["scores_x100"] and second["extraction"] == first["extraction"]

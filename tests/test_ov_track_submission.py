"""infer.py --dataset mer2025ov --submission X-openset.npz: the parser's labels of every candidate's answer in
the official submission format (plain unicode arrays, no pickle), validated against track_all_candidates.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from test_infer import ckpt, data_root, infer, run  # noqa: F401 (module fixtures: tiny checkpoint, demo data)

from affectgpt.data.records import list_to_string
from affectgpt.infer.outputs import read_responses

SENTENCES = {
    "a": "The person smiles. The character's emotional state is happy, relaxed.",
    "b": "No clear cue here.",
    "c": "Therefore, the character's emotional state is worried and nervous.",
}


def test_submission_labels_read_the_answer_sentence() -> None:
    assert infer.submission_labels(SENTENCES) == {"a": ["happy", "relaxed"], "b": [], "c": ["worried", "nervous"]}


def test_infer_writes_a_valid_submission(ckpt: Path, data_root: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    out = tmp_path / "mine-openset.npz"
    argv = ["--ckpt", ckpt, "--dataset", "mer2025ov", "--out-dir", tmp_path / "answers", "--submission", out]
    code, stdout, err = run([*argv, "--no-progress", "eval.max_new_tokens=3"], capsys)
    assert code == 0, err
    candidates = pd.read_csv(data_root / "track_all_candidates.csv")["name"].astype(str).tolist()
    with np.load(out, allow_pickle=False) as held:
        assert sorted(held.files) == ["fileitems", "filenames"]
        assert held["filenames"].dtype.kind == "U" and held["fileitems"].dtype.kind == "U"
        names, items = held["filenames"].tolist(), held["fileitems"].tolist()
    assert names == candidates  # every candidate, in the list's order
    answers = read_responses(tmp_path / "answers" / "mer2025ov.jsonl")
    parsed = infer.submission_labels(answers)
    assert items == [list_to_string(parsed[n]) for n in names]
    assert f"wrote {out}: {len(candidates)} names" in stdout


def test_submission_refuses_a_question_the_parser_cannot_read(ckpt: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    argv = ["--ckpt", ckpt, "--dataset", "mer2025ov", "--question", "description", "--submission", "x-openset.npz"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "evaluate.py submission" in err


def test_submission_candidate_list_must_cover_the_answers(ckpt: Path, data_root: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    cand = tmp_path / "few.csv"
    pd.DataFrame({"name": ["only_this_one"]}).to_csv(cand, index=False)
    argv = [
        "--ckpt",
        ckpt,
        "--dataset",
        "mer2025ov",
        "--out-dir",
        tmp_path / "a",
        "--submission",
        tmp_path / "s-openset.npz",
    ]
    code, _, err = run([*argv, "--candidates", cand, "--no-progress", "eval.max_new_tokens=2"], capsys)
    assert code == 2 and "not in the candidate list" in err and "only_this_one" in err
    assert not (tmp_path / "s-openset.npz").exists()

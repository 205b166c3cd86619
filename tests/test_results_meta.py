"""infer.py result files: a file without its `.meta.json` sidecar is never adopted (issue 17.6)."""

import json
from pathlib import Path

import pytest

from affectgpt.infer.outputs import ResultWriter, meta_path, read_responses

META = {"dataset": "MER2023", "checkpoint": "/ckpt/a", "question": "q", "generation": {"greedy": True}}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_results_without_meta_are_refused_and_left_untouched(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"results{suffix}"
    foreign = '{"name": "s1", "response": "[happy]"}\n' if suffix == ".jsonl" else "name,response\ns1,[happy]\n"
    path.write_text(foreign, encoding="utf-8")
    with pytest.raises(ValueError, match=r"has no results\.meta\.json.*cannot be resumed.*another --out"):
        ResultWriter(path, META)
    assert path.read_text(encoding="utf-8") == foreign  # the foreign answers are neither kept nor destroyed
    assert not meta_path(path).exists()  # and no sidecar was written that would adopt them next time


def test_an_empty_file_without_meta_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.touch()
    writer = ResultWriter(path, META)
    writer.append([("s1", "[sad]")])
    assert read_responses(path) == {"s1": "[sad]"}
    assert json.loads(meta_path(path).read_text(encoding="utf-8"))["checkpoint"] == "/ckpt/a"


def test_matching_meta_resumes_and_other_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    ResultWriter(path, META).append([("s1", "[sad]")])
    assert ResultWriter(path, META).done == {"s1": "[sad]"}
    with pytest.raises(ValueError, match=r"checkpoint: '/ckpt/a' -> '/ckpt/b'"):
        ResultWriter(path, {**META, "checkpoint": "/ckpt/b"})

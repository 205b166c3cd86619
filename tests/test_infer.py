"""infer.py: dataset runs (rows, metadata, official npz, resume), a real Ctrl-C mid-run and its resume,
single-clip mode, questions and generation settings, with a tiny random model saved as a checkpoint."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from affectgpt.config import load_config
from affectgpt.data import prompts
from affectgpt.data.dataset import AffectDataset
from affectgpt.data.safe_npz import load_npz_object
from affectgpt.data.synthetic import generate, write_unibench
from affectgpt.infer.generate import GenerationSettings, chunk_seed, resolve_question
from affectgpt.infer.outputs import read_meta, read_responses
from affectgpt.infer.runner import resolve_checkpoint

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = REPO.parent / "shared" / "emotion_wheel"
_spec = importlib.util.spec_from_file_location("infer_cli", REPO / "infer.py")
infer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(infer)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = generate(tmp_path_factory.mktemp("data") / "demo", n=30, seed=0, unibench=False)
    write_unibench(root / "unibench" / "OVMERDPlus", "OVMERDPlus", seed=0)
    write_unibench(root / "unibench" / "MER2023", "MER2023", seed=0)
    return root


@pytest.fixture(scope="module")
def ckpt(data_root: Path, tmp_path_factory) -> Path:
    """An untrained tiny model saved in the checkpoint format (what training and import_official write)."""
    from affectgpt.model.build import build_model
    from affectgpt.model.checkpoint import save_checkpoint

    cfg = load_config(
        REPO / "configs" / "demo.yaml",
        [
            f"data.root={data_root}",
            f"data.unibench_roots={{OVMERDPlus: {data_root}/unibench/OVMERDPlus}}",
            f"eval.wheel_dir={OFFICIAL}",
            "eval.max_new_tokens=5",
            "eval.batch_size=1",
            "data.feature_cache=",  # decode media here: the demo's training feature cache does not hold these sets
        ],
    )
    model, _ = build_model(cfg)
    return save_checkpoint(model, cfg, tmp_path_factory.mktemp("run") / "epoch_0001")


@pytest.fixture(scope="module")
def reference(ckpt: Path, tmp_path_factory) -> tuple[Path, str]:
    """OVMERDPlus answered once (batch 1, greedy): the answers other tests compare with."""
    out = tmp_path_factory.mktemp("ref") / "OVMERDPlus.csv"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = infer.main(
            [
                str(a)
                for a in ["--ckpt", ckpt, "--dataset", "ovmerdplus", "--out", out, "--official-npz", "--no-progress"]
            ]
        )
    assert code == 0, buffer.getvalue()
    return out, buffer.getvalue()


def run(args: list, capsys) -> tuple[int, str, str]:
    code = infer.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_dataset_rows_meta_npz_and_rerun_skips_everything(ckpt: Path, data_root: Path, reference, capsys) -> None:
    out, stdout = reference
    rows = read_responses(out)
    gt_names = pd.read_csv(data_root / "unibench" / "OVMERDPlus" / "ovlabel.csv")["name"].tolist()
    assert list(rows) == gt_names and all(isinstance(v, str) for v in rows.values())
    assert pd.read_csv(out).columns.tolist() == ["name", "response"]
    meta = read_meta(out)
    assert meta["dataset"] == "OVMERDPlus" and meta["task"] == "ovlabel" and meta["checkpoint"] == str(ckpt.resolve())
    assert meta["question"] == prompts.OVLABEL_QUESTION and meta["generation"]["greedy"] is True
    assert meta["generation"]["max_new_tokens"] == 5 and meta["batch_size"] == 1 and meta["n_records"] == 12
    assert load_npz_object(out.with_suffix(".npz"), "name2reason") == rows  # the official inference file
    assert "0 already written, 12 generated, 0 failed" in stdout
    before, npz = out.read_bytes(), out.with_suffix(".npz")
    out.with_suffix(".npz").unlink()
    code, stdout, _ = run(["--ckpt", ckpt, "--dataset", "OVMERDPlus", "--out", out, "--no-progress"], capsys)
    assert code == 0 and "12 already written, 0 generated" in stdout and out.read_bytes() == before
    assert not npz.exists()  # (re-created below for the other tests)
    assert run(["--ckpt", ckpt, "--dataset", "OVMERDPlus", "--out", out, "--official-npz"], capsys)[0] == 0
    assert load_npz_object(npz, "name2reason") == rows
    # Other decoding settings must not be appended to these answers.
    code, _, err = run(["--ckpt", ckpt, "--dataset", "OVMERDPlus", "--out", out, "--max-new-tokens", "7"], capsys)
    assert code == 2 and "other settings" in err and "max_new_tokens" in err and out.read_bytes() == before


def test_ctrl_c_mid_run_then_rerun_completes_only_the_missing_names(
    ckpt: Path, reference, tmp_path: Path, capsys
) -> None:
    """A real SIGINT (Ctrl-C) delivered to this process once two answers are on disk."""
    out = tmp_path / "part" / "OVMERDPlus.jsonl"
    args = ["--ckpt", ckpt, "--dataset", "OVMERDPlus", "--out", out, "--no-progress"]
    finished = threading.Event()

    def interrupt_after_two_rows() -> None:
        while not finished.is_set():
            if out.is_file() and out.read_text().count("\n") >= 2:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=interrupt_after_two_rows, daemon=True)
    watcher.start()
    try:
        code, _, stderr = run(args, capsys)
    finally:
        finished.set()
        watcher.join()
    assert code == 130, stderr[-3000:]
    assert "interrupted" in stderr and "re-run the same command" in stderr
    partial = read_responses(out)  # a half-written last line, if any, is repaired by the next run
    assert 2 <= len(partial) < 12
    code, stdout, _ = run(args, capsys)
    assert code == 0
    assert f"{len(partial)} already written, {12 - len(partial)} generated, 0 failed" in stdout
    resumed = read_responses(out)
    assert len(resumed) == 12 and {k: resumed[k] for k in partial} == partial
    lines = [json.loads(line)["name"] for line in out.read_text().splitlines()]
    assert len(lines) == len(set(lines)) == 12  # each name written once
    assert read_responses(reference[0]) == resumed  # greedy, batch 1: the same answers as an uninterrupted run


def test_single_clip_answers_like_the_dataset_run(
    ckpt: Path, data_root: Path, reference, tmp_path: Path, capsys
) -> None:
    root = data_root / "unibench" / "OVMERDPlus"
    name = "sample_00000003"
    subtitle = pd.read_csv(root / "subtitle_eng.csv").set_index("name").loc[name, "sentence"]
    clip = ["--ckpt", ckpt, "--video", root / "video" / f"{name}.mp4", "--subtitle", subtitle]
    code, stdout, _ = run(
        clip + ["--audio", root / "audio" / f"{name}.wav", "--face", root / "openface_face" / f"{name}.npy"], capsys
    )
    assert code == 0 and stdout.strip() == read_responses(reference[0])[name].strip()
    code, stdout, err = run(clip, capsys)  # no face file: frames; no audio file: the video's sound track
    assert code == 0 and "reading video frames (multiframe_audio_frame_text)" in err and stdout.strip() != ""
    code, _, err = run(["--ckpt", ckpt, "--video", tmp_path / "missing.mp4"], capsys)
    assert code == 2 and "missing.mp4" in err and "not found" in err


def test_questions_reach_the_prompt(ckpt: Path, data_root: Path) -> None:
    from affectgpt.data.unibench import read_unibench
    from affectgpt.model.tokenizer import load_tokenizer

    assert resolve_question("ovlabel") == prompts.OVLABEL_QUESTION
    assert resolve_question("Description") == prompts.DESCRIPTION_QUESTION
    assert resolve_question(" What colour is the sky? ") == "What colour is the sky?"
    with pytest.raises(ValueError, match="empty"):
        resolve_question("  ")
    cfg = load_config(ckpt / "config.yaml")
    records = read_unibench("OVMERDPlus", data_root / "unibench" / "OVMERDPlus")[:1]
    dataset = AffectDataset(records, cfg.data, cfg.model, load_tokenizer(cfg.model), split="test", question="Why?")
    item = dataset[0]
    assert item["prompt"].endswith("Why? ###Assistant: ") and records[0].subtitle in item["prompt"]
    assert item["target"] == "" and prompts.OVLABEL_QUESTION not in item["prompt"]


def test_generation_settings_and_seeds(ckpt: Path) -> None:
    cfg = load_config(ckpt / "config.yaml", ["train.val_batch_size=3", "train.val_max_new_tokens=9"])

    def settings(*argv: str, split: str | None = None) -> GenerationSettings:
        return infer.settings_from(infer.build_parser().parse_args(["--ckpt", "x", *argv]), cfg, split)

    assert settings().greedy and settings().max_new_tokens == 5  # eval.* of the config
    val = settings(split="val")
    assert (val.batch_size, val.max_new_tokens, val.greedy) == (3, 9, True)  # what per-epoch validation used
    official = settings("--official-sampling")
    assert (official.greedy, official.temperature, official.top_p, official.max_new_tokens) == (False, 1.0, 0.9, 1200)
    sampled = settings("--temperature", "0.5", "--seed", "7")
    assert not sampled.greedy and sampled.temperature == 0.5 and sampled.seed == 7
    assert (
        chunk_seed(7, ["a", "b"]) == chunk_seed(7, ["a", "b"]) != chunk_seed(7, ["a", "c"]) != chunk_seed(8, ["a", "c"])
    )


def test_run_directory_resolves_to_its_best_checkpoint(ckpt: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "epoch_0002").symlink_to(ckpt, target_is_directory=True)
    (run_dir / "best.json").write_text(json.dumps({"checkpoint": "epoch_0002"}))
    assert resolve_checkpoint(run_dir) == ckpt.resolve()
    assert resolve_checkpoint(ckpt) == ckpt.resolve()
    with pytest.raises(Exception, match="not a checkpoint"):
        resolve_checkpoint(tmp_path)


def test_generate_responses_batches_first_answers_and_stop(ckpt: Path, data_root: Path) -> None:
    """The shared generation loop: filler repeats keep the first answer, on_batch sees each name once, a stop
    ends it after the current batch."""
    from affectgpt.data.unibench import read_unibench
    from affectgpt.infer.generate import generate_responses, shard
    from affectgpt.infer.runner import load_model

    cfg = load_config(ckpt / "config.yaml")
    model, tokenizer = load_model(cfg, ckpt, torch.device("cpu"))
    records = read_unibench("OVMERDPlus", data_root / "unibench" / "OVMERDPlus")[:3]
    padded, n_real = shard(records, 0, 1, 2)  # [r0, r1, r2, r0]: the last batch filled up
    assert n_real == 3 and [r.name for r in padded] == [r.name for r in records + records[:1]]
    kw = {"settings": GenerationSettings(batch_size=2, max_new_tokens=3), "question": "Why?"}
    batches: list[tuple[list[str], dict[str, str]]] = []
    answers = generate_responses(
        model,
        padded,
        cfg,
        tokenizer,
        **kw,
        on_batch=lambda recs, ans: batches.append(([r.name for r in recs], dict(ans))),
    )
    names = [r.name for r in records]
    assert [b[0] for b in batches] == [names[:2], names[2:]]  # the filler r0 is not reported again
    assert {k: v for _, ans in batches for k, v in ans.items()} == answers and list(answers) == names
    first_batch = generate_responses(model, records[:2], cfg, tokenizer, **kw)
    assert {n: answers[n] for n in names[:2]} == first_batch  # r0's answer is from its own batch
    stopped: list[list[str]] = []
    model.train()  # generation runs in eval mode and restores the mode it found
    partial = generate_responses(
        model,
        padded,
        cfg,
        tokenizer,
        **kw,
        should_stop=lambda: True,
        on_batch=lambda recs, ans: stopped.append([r.name for r in recs]),
    )
    assert stopped == [names[:2]] and partial == first_batch
    assert model.training


def test_dataset_questions_are_resolved_per_dataset(ckpt: Path, data_root: Path, tmp_path: Path, capsys) -> None:
    """--question onehot-candidates asks the dataset's official label set; a dataset without one is refused."""
    out = tmp_path / "mer2023.jsonl"
    args = [
        "--ckpt",
        ckpt,
        "--dataset",
        "MER2023",
        "--data-root",
        data_root / "unibench" / "MER2023",
        "--out",
        out,
        "--question",
        "onehot-candidates",
        "--batch-size",
        "6",
        "--max-new-tokens",
        "1",
        "--no-progress",
    ]
    code, _, err = run(args, capsys)
    assert code == 0, err[-2000:]
    assert read_meta(out)["question"] == (
        "Please select the label that can best describe the person's emotional state from the provided candidate "
        "labels: neutral,angry,happy,sad,worried,surprise."
    )
    assert len(read_responses(out)) == 12
    code, _, err = run(
        ["--ckpt", ckpt, "--dataset", "OVMERDPlus", "--question", "valence", "--out", tmp_path / "x.jsonl"], capsys
    )
    assert code == 2 and "valence range: ask it of one of CMUMOSI, CMUMOSEI, SIMS, SIMSv2 (not OVMERDPlus)" in err
    assert not (tmp_path / "x.jsonl").exists()


def test_single_image(ckpt: Path, data_root: Path, tmp_path: Path, capsys) -> None:
    """--image answers in face_or_frame=image through the same generation as any record."""
    import numpy as np
    from PIL import Image

    from affectgpt.infer.clip import image_record
    from affectgpt.infer.generate import generate_responses
    from affectgpt.infer.runner import load_model

    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(photo)
    code, stdout, err = run(["--ckpt", ckpt, "--image", photo], capsys)
    assert code == 0, err[-2000:]
    assert "trained with face_or_frame=multiface_audio_face_text; its image projection" in err  # a video checkpoint
    cfg = load_config(ckpt / "config.yaml", ["model.face_or_frame=image"])
    model, tokenizer = load_model(cfg, ckpt, torch.device("cpu"))
    settings = GenerationSettings(batch_size=1, max_new_tokens=cfg.eval.max_new_tokens, seed=cfg.train.seed)
    expected = generate_responses(
        model, [image_record(photo)], cfg, tokenizer, settings, question=prompts.OVLABEL_QUESTION
    )
    assert stdout == expected["photo"] + "\n"
    video = data_root / "video" / "sample_00000000.mp4"
    for extra, message in (
        (["--image", photo, "--subtitle", "hi"], "--image answers for the image alone"),
        (["--image", photo, "--video", video], "--video and --image are two single-input modes"),
        (["--image", tmp_path / "none.png"], "image file not found"),
        (["--image", photo, "--dataset", "OVMERDPlus"], "cannot be combined with --split / --dataset"),
        (["--video", video, "model.face_or_frame=image"], "use --image FILE, not --video"),
        (["--video", video, "model.face_or_frame=faceframe"], "no frame-reading twin"),
        (["--video", video, "--question", "onehot-candidates"], "label set: ask it of one of MER2023"),
    ):
        code, _, err = run(["--ckpt", ckpt, *extra], capsys)
        assert code == 2 and message in err, (extra, err[-1000:])

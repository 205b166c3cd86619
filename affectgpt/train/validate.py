"""Generate -> parse -> score: the one code path for per-epoch validation, infer.py and evaluate.py.

`generate_responses` answers a question (default: the OV-label question) for records batch by
batch, for validation and infer.py alike (so `infer.py --split val` reproduces validation answers);
`parse_responses` turns the "The character's emotional state is ..." answers into label lists;
`score_predictions` applies the EW metric (avg-L1 / avg-L2 P/R/F, M-avg). `validate` runs the three
across processes (each rank a shard, results gathered on every rank) for the training loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from affectgpt.data import prompts
from affectgpt.data.records import Record, SkipLog
from affectgpt.labels.sentence import parse_label_sentence
from affectgpt.metrics.ew import ew_scores
from affectgpt.metrics.wheel import LEVELS, EmotionWheel, load_wheel

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "val_predictions.jsonl"


def resolve_wheel(cfg: Any) -> EmotionWheel:
    """eval.wheel_dir -> $AFFECTGPT_WHEEL_DIR -> <data root>/emotion_wheel -> the demo wheel (flagged)."""
    wheel = load_wheel(cfg.eval.wheel_dir or None, data_root=cfg.data.root, allow_demo=True)
    if wheel.is_demo:
        logger.warning("validation uses the demo emotion wheel: scores are not comparable with published ones")
    return wheel


def chunk_seed(seed: int, names: list[str]) -> int:
    """A sampling seed per batch that depends on its samples, not on how many batches ran before
    (a resumed run draws the same as an uninterrupted one with the same batches)."""
    digest = hashlib.sha1("\n".join(names).encode("utf-8")).digest()
    return (seed * 1_000_003 + int.from_bytes(digest[:6], "big")) % (2**63)


# on_batch(records, answers): the batch's records not seen in an earlier batch, and their answers
# (a record missing from `answers` could not be loaded and is counted in `skips`).
BatchCallback = Callable[[list[Record], dict[str, str]], None]


@torch.no_grad()
def generate_responses(
    model: Any,
    records: list[Record],
    cfg: Any,
    tokenizer: Any,
    *,
    batch_size: int,
    max_new_tokens: int,
    greedy: bool = True,
    temperature: float = 1.0,
    top_p: float = 0.9,
    question: str = prompts.OVLABEL_QUESTION,
    seed: int | None = None,
    autocast: Any = None,
    skips: SkipLog | None = None,
    progress: bool = False,
    on_batch: BatchCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, str]:
    """name -> answer to `question` for every record that could be loaded (skips are counted in `skips`).

    Batches are `records` in order, `batch_size` at a time. A name repeated in a later batch (the
    filler `shard` adds) keeps its first answer, so each answer comes from the sample's own batch.
    `seed`: reseed torch before each batch with `chunk_seed(seed, batch names)` (sampling that does
    not depend on earlier batches). `on_batch` sees each batch's answers as they come (incremental
    writing); `should_stop` is checked after each batch and ends generation early when true.
    `model` is the unwrapped AffectGPT; `autocast` an optional context-manager factory (mixed precision).
    """
    from affectgpt.data.dataset import AffectDataset, Collator

    dataset = AffectDataset(
        records, cfg.data, cfg.model, tokenizer, split="test", seed=cfg.train.seed, skips=skips, question=question
    )
    collate = Collator(tokenizer, left_pad=True, prompt_style=cfg.data.prompt_style)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=cfg.data.num_workers,
                        generator=torch.Generator().manual_seed(0))  # never draw from the global RNG
    was_training = model.training
    model.eval()
    out: dict[str, str] = {}
    seen: set[str] = set()
    try:
        batches = loader
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(loader, desc="generate", leave=False)
        for start, batch in zip(range(0, len(records), batch_size), batches):
            chunk = records[start : start + batch_size]  # shuffle=False: the records of this batch
            answers: dict[str, str] = {}
            if batch["names"]:
                if seed is not None:
                    torch.manual_seed(chunk_seed(seed, [r.name for r in chunk]))
                with autocast() if autocast is not None else contextlib.nullcontext():
                    texts = model.generate(
                        batch, max_new_tokens=max_new_tokens, do_sample=not greedy, temperature=temperature, top_p=top_p
                    )
                answers = dict(zip(batch["names"], texts))
            new = []  # first occurrences only
            for record in chunk:
                if record.name not in seen:
                    seen.add(record.name)
                    new.append(record)
            fresh = {r.name: answers[r.name] for r in new if r.name in answers}
            out.update(fresh)
            if on_batch is not None:
                on_batch(new, fresh)
            if should_stop is not None and start + batch_size < len(records) and should_stop():
                break
    finally:
        model.train(was_training)
    return out


def parse_responses(responses: dict[str, str]) -> dict[str, list[str]]:
    """name -> labels parsed from the answer sentence ([] when nothing parses)."""
    return {name: parse_label_sentence(text) for name, text in responses.items()}


def score_predictions(gt: dict[str, list[str]], parsed: dict[str, list[str]], wheel: EmotionWheel) -> dict[str, Any]:
    """Flat EW scores: avg-L1/avg-L2 precision/recall/f1, M-avg, n_samples, n_empty, n_missing.

    A GT sample without a prediction (its media failed to load) scores as an empty prediction and is
    counted in n_missing, so a failure can never raise the score.
    """
    preds = {name: parsed.get(name, []) for name in gt}
    result = ew_scores(gt, preds, wheel)
    scores: dict[str, Any] = {}
    for level in LEVELS:
        for key, value in result.wheel_average(level).to_dict().items():
            scores[f"avg-{level}/{key}"] = value
    scores["M-avg"] = result.m_avg
    scores["n_samples"] = result.n_samples
    scores["n_empty"] = sum(1 for name in gt if not preds[name])
    scores["n_missing"] = sum(1 for name in gt if name not in parsed)
    scores["n_skipped_gt"] = result.n_skipped
    scores["wheel"] = result.wheel
    return scores


def ground_truth(records: list[Record]) -> dict[str, list[str]]:
    return {r.name: list(r.ovlabels or []) for r in records}


def write_predictions(path: Path, responses: dict[str, str], parsed: dict[str, list[str]], names: list[str]) -> None:
    """One JSON object per sample: name, response (None when it could not be generated), parsed labels."""
    with path.open("w", encoding="utf-8") as handle:
        for name in names:
            row = {"name": name, "response": responses.get(name), "labels": parsed.get(name, [])}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def validate(
    accelerator: Any, model: Any, records: list[Record], cfg: Any, tokenizer: Any, wheel: EmotionWheel
) -> tuple[dict[str, Any], dict[str, str], dict[str, list[str]]]:
    """Distributed validation: each rank generates its shard, every rank gets all answers and the scores."""
    from accelerate.utils import gather_object

    from affectgpt.train.data import shard

    batch_size = max(1, int(cfg.train.val_batch_size))
    mine, n_real = shard(records, accelerator.process_index, accelerator.num_processes, batch_size)
    skips = SkipLog()
    answers = generate_responses(
        model, mine, cfg, tokenizer,
        batch_size=batch_size, max_new_tokens=int(cfg.train.val_max_new_tokens),
        autocast=accelerator.autocast, skips=skips, progress=False,
    )  # fmt: skip
    # Only this rank's own records: the filler (repeats of other ranks' records) must not overwrite
    # their answers when gathered, so every answer comes from the batch infer.py forms for it too.
    local = {r.name: answers[r.name] for r in mine[:n_real] if r.name in answers}
    responses: dict[str, str] = {}
    if accelerator.num_processes > 1:
        for part in gather_object([local]):
            responses.update(part)
    else:
        responses = local
    parsed = parse_responses(responses)
    scores = score_predictions(ground_truth(records), parsed, wheel)
    return scores, responses, parsed

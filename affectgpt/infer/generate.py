"""Batched answers for records, written batch by batch: the generation step of infer.py.

The OV-label question goes through `affectgpt.train.validate.generate_responses`, the very function
per-epoch validation uses, so `infer.py --split val` reproduces the logged validation answers
exactly. Batches are formed as validation forms them (`shard`: the last batch is filled up with the
first records, whose extra answers are dropped), so padding, and hence every float, is the same.
Other questions (descriptions, free text) need a dataset that asks them; `QuestionDataset` does,
with the same collator and `model.generate`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader

from affectgpt.data import prompts
from affectgpt.data.dataset import AffectDataset, Collator
from affectgpt.data.records import DataError, Record, SkipLog
from affectgpt.infer.outputs import ResultWriter
from affectgpt.train.data import shard
from affectgpt.train.validate import generate_responses

QUESTION_ALIASES = {"ovlabel": prompts.OVLABEL_QUESTION, "description": prompts.DESCRIPTION_QUESTION}


def resolve_question(question: str) -> str:
    """"ovlabel" / "description" -> the official question; anything else is asked verbatim."""
    text = QUESTION_ALIASES.get(question.strip().lower(), question).strip()
    if not text:
        raise ValueError("--question is empty")
    return text


@dataclass
class GenerationSettings:
    """Decoding settings; greedy by default (reproducible). Official: sampling, T 1.0, top-p 0.9, 1200 tokens."""

    batch_size: int = 8
    max_new_tokens: int = 256
    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 0.9
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InferenceReport:
    total: int  # records asked for
    already_done: int  # found in the results file from an earlier run
    generated: list[str] = field(default_factory=list)  # names answered by this run
    failed: list[str] = field(default_factory=list)  # names whose media/text could not be loaded
    skips: SkipLog = field(default_factory=SkipLog)
    stopped: bool = False  # should_stop() said so: the rest is left for a re-run


class QuestionDataset(AffectDataset):
    """An evaluation dataset that asks `question` instead of the OV-label question (no target)."""

    def __init__(self, *args: Any, question: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.question = question

    def _text(self, index: int, record: Record) -> tuple[str, str, str]:
        if not isinstance(record.subtitle, str):
            raise DataError(f"subtitle is {type(record.subtitle).__name__}, not text", sample=record.name)
        prompt = prompts.build_prompt(
            self.model_cfg.face_or_frame, record.subtitle, self.question, self.n_query,
            self.data_cfg.prompt_style, self.tokenizer,
        )  # fmt: skip
        return prompt, "", "question"


def _generate_question(
    model: Any, records: list[Record], cfg: Any, tokenizer: Any, question: str, settings: GenerationSettings,
    autocast: Callable | None, skips: SkipLog,
) -> dict[str, str]:  # fmt: skip
    """generate_responses for another question (same collator, same model.generate, same batching)."""
    dataset = QuestionDataset(
        records, cfg.data, cfg.model, tokenizer, split="test", seed=cfg.train.seed, skips=skips, question=question
    )
    collate = Collator(tokenizer, left_pad=True, prompt_style=cfg.data.prompt_style)
    loader = DataLoader(dataset, batch_size=settings.batch_size, shuffle=False, collate_fn=collate,
                        num_workers=cfg.data.num_workers, generator=torch.Generator().manual_seed(0))  # fmt: skip
    out: dict[str, str] = {}
    model.eval()
    with torch.no_grad():
        for batch in loader:
            if not batch["names"]:
                continue
            with autocast() if autocast is not None else contextlib.nullcontext():
                answers = model.generate(
                    batch, max_new_tokens=settings.max_new_tokens, do_sample=not settings.greedy,
                    temperature=settings.temperature, top_p=settings.top_p,
                )  # fmt: skip
            out.update(zip(batch["names"], answers))
    return out


def generate_answers(
    model: Any, records: list[Record], cfg: Any, tokenizer: Any, question: str, settings: GenerationSettings,
    autocast: Callable | None = None, skips: SkipLog | None = None,
) -> dict[str, str]:  # fmt: skip
    """name -> answer for the records that could be loaded (failures are counted in `skips`)."""
    skips = skips if skips is not None else SkipLog()
    if question == prompts.OVLABEL_QUESTION:
        return generate_responses(
            model, records, cfg, tokenizer, batch_size=settings.batch_size, max_new_tokens=settings.max_new_tokens,
            greedy=settings.greedy, temperature=settings.temperature, top_p=settings.top_p, autocast=autocast,
            skips=skips, progress=False,
        )  # fmt: skip
    return _generate_question(model, records, cfg, tokenizer, question, settings, autocast, skips)


def chunk_seed(seed: int, names: list[str]) -> int:
    """A sampling seed per chunk that depends on its samples, not on how many chunks ran before
    (a resumed run draws the same as an uninterrupted one with the same batches)."""
    digest = hashlib.sha1("\n".join(names).encode("utf-8")).digest()
    return (seed * 1_000_003 + int.from_bytes(digest[:6], "big")) % (2**63)


def run_inference(
    model: Any,
    tokenizer: Any,
    cfg: Any,
    records: list[Record],
    writer: ResultWriter,
    question: str,
    settings: GenerationSettings,
    *,
    autocast: Callable | None = None,
    chunk_batches: int = 1,
    progress: bool = True,
    on_chunk: Callable[[list[str]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> InferenceReport:
    """Answer every record not yet in `writer`, appending each chunk of `chunk_batches` batches as it is done;
    `should_stop` (e.g. a SIGINT/SIGTERM flag) is checked between chunks."""
    from tqdm.auto import tqdm

    todo = [r for r in records if r.name not in writer.done]
    report = InferenceReport(total=len(records), already_done=len(records) - len(todo))
    if not todo:
        return report
    batch = max(1, settings.batch_size)
    padded, n_real = shard(todo, 0, 1, batch)  # validation's batching: the last batch filled up
    step = batch * max(1, chunk_batches)
    bar = tqdm(total=len(records), initial=report.already_done, desc="infer", unit="sample", disable=not progress)
    try:
        for start in range(0, len(padded), step):
            chunk = padded[start : start + step]
            real = [r.name for r in chunk[: max(0, n_real - start)]]
            torch.manual_seed(chunk_seed(settings.seed, [r.name for r in chunk]))
            answers = generate_answers(model, chunk, cfg, tokenizer, question, settings, autocast, report.skips)
            writer.append([(name, answers[name]) for name in real if name in answers])
            report.generated.extend(name for name in real if name in answers)
            report.failed.extend(name for name in real if name not in answers)
            bar.update(len(real))
            if on_chunk is not None:
                on_chunk(real)
            if should_stop is not None and should_stop() and start + step < len(padded):
                report.stopped = True
                break
    finally:
        bar.close()
    return report

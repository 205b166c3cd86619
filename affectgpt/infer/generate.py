"""Generation over record sets: the one path behind per-epoch validation, `infer.py` and GRPO rollouts' greedy twin.

`generate_responses` answers a question (default: the official OV-label question) for records batch by batch.
Per-epoch validation, `infer.py --split val` and every other `infer.py` run call it with the same batching
(`shard`: each rank a contiguous share; the last batch filled up with the first records, whose extra answers are
dropped), so padding, and hence every float, is the same: `infer.py --split val` reproduces the logged
validation answers exactly. `run_inference` writes each batch's answers as soon as they exist (resumable).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from affectgpt.data import prompts
from affectgpt.data.dataset import AffectDataset, Collator
from affectgpt.data.records import Record, SkipLog
from affectgpt.data.unibench import DISCRETE_CANDIDATES, VALENCE_RANGES
from affectgpt.infer.ablation import Ablation
from affectgpt.infer.outputs import ResultWriter

QUESTION_ALIASES = {
    "ovlabel": prompts.OVLABEL_QUESTION,
    "description": prompts.DESCRIPTION_QUESTION,
    "sentiment": prompts.SENTIMENT_QUESTION,
    "onehot": prompts.onehot_question(),
}
DATASET_QUESTIONS = ("onehot-candidates", "valence")  # their text states the dataset's label set / valence range


def resolve_question(question: str, dataset: str | None = None) -> str:
    """An alias -> the official question (onehot-candidates: `dataset`'s label set in the official order;
    valence: its range); anything else is asked verbatim."""
    alias = question.strip().lower()
    if alias in DATASET_QUESTIONS:
        return _dataset_question(alias, dataset)
    text = QUESTION_ALIASES.get(alias, question).strip()
    if not text:
        raise ValueError("--question is empty")
    return text


def _dataset_question(alias: str, dataset: str | None) -> str:
    onehot = alias == "onehot-candidates"
    facts, what = (DISCRETE_CANDIDATES, "label set") if onehot else (VALENCE_RANGES, "valence range")
    name = next((n for n in facts if n.lower() == (dataset or "").lower()), None)
    if name is None:
        raise ValueError(
            f"--question {alias} states the dataset's {what}: ask it of one of {', '.join(facts)} "
            f"(not {dataset or 'a single clip'})"
        )
    return prompts.onehot_question(facts[name]) if onehot else prompts.valence_question(*facts[name])


@dataclass
class GenerationSettings:
    """Decoding settings; greedy by default (reproducible). Official: sampling, T 1.0, top-p 0.9, 1200 tokens.

    `seed`: with sampling, torch is reseeded before each batch with `chunk_seed(seed, batch names)`, so a resumed
    run draws what an uninterrupted one draws; greedy decoding never touches the RNG (validation inside training
    must not shift the training RNG)."""

    batch_size: int = 8
    max_new_tokens: int = 256
    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 0.9
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validation_settings(cfg: Any) -> GenerationSettings:
    """The decoding per-epoch validation uses (and `infer.py --split val` repeats): greedy, train.val_* sizes."""
    return GenerationSettings(
        batch_size=max(1, int(cfg.train.val_batch_size)),
        max_new_tokens=int(cfg.train.val_max_new_tokens),
        greedy=True,
        seed=int(cfg.train.seed),
    )


def chunk_seed(seed: int, names: list[str]) -> int:
    """A sampling seed per batch that depends on its samples, not on how many batches ran before
    (a resumed run draws the same as an uninterrupted one with the same batches)."""
    digest = hashlib.sha1("\n".join(names).encode("utf-8")).digest()
    return (seed * 1_000_003 + int.from_bytes(digest[:6], "big")) % (2**63)


def shard(items: list[Any], rank: int, world: int, batch_size: int) -> tuple[list[Any], int]:
    """Rank `rank`'s contiguous share, padded by repetition so every rank runs the same number of
    batches (collectives inside generation stay in lock-step); returns (share, n_real)."""
    per_rank = -(-len(items) // world)
    per_rank = -(-per_rank // batch_size) * batch_size
    mine = items[rank * per_rank : (rank + 1) * per_rank]
    n_real = len(mine)
    filler = items[: per_rank - n_real] if items else []
    while len(filler) < per_rank - n_real:
        filler = filler + items
    return mine + filler[: per_rank - n_real], n_real


# on_batch(records, answers): the batch's records not seen in an earlier batch, and their answers
# (a record missing from `answers` could not be loaded and is counted in `skips`).
BatchCallback = Callable[[list[Record], dict[str, str]], None]


@torch.no_grad()
def generate_responses(
    model: Any,
    records: list[Record],
    cfg: Any,
    tokenizer: Any,
    settings: GenerationSettings,
    *,
    question: str = prompts.OVLABEL_QUESTION,
    autocast: Callable | None = None,
    skips: SkipLog | None = None,
    progress: bool = False,
    on_batch: BatchCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    ablation: Ablation | None = None,
) -> dict[str, str]:
    """name -> answer to `question` for every record that could be loaded (skips are counted in `skips`).

    Batches are `records` in order, `settings.batch_size` at a time. A name repeated in a later batch (the
    filler `shard` adds) keeps its first answer, so each answer comes from the sample's own batch. `on_batch`
    sees each batch's answers as they come (incremental writing); `should_stop` is checked after each batch and
    ends generation early when true. `model` is the unwrapped AffectGPT; `autocast` an optional
    context-manager factory (mixed precision).
    """
    batch_size = max(1, int(settings.batch_size))
    dataset = AffectDataset(
        ablation.records(records) if ablation is not None else records,
        cfg.data,
        cfg.model,
        tokenizer,
        split="test",
        seed=cfg.train.seed,
        skips=skips,
        question=question,
    )
    collate = Collator(tokenizer, left_pad=True, prompt_style=cfg.data.prompt_style)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        collate_fn=collate,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(0),
    )  # never draw from the global RNG
    was_training = model.training
    model.eval()
    out: dict[str, str] = {}
    seen: set[str] = set()
    try:
        batches = tqdm(loader, desc="generate", leave=False) if progress else loader
        for start, batch in zip(range(0, len(records), batch_size), batches):
            chunk = records[start : start + batch_size]  # shuffle=False: the records of this batch
            answers: dict[str, str] = {}
            if batch["names"]:
                if ablation is not None:
                    batch = ablation.batch(batch)
                if not settings.greedy and settings.seed is not None:
                    torch.manual_seed(chunk_seed(settings.seed, [r.name for r in chunk]))
                with autocast() if autocast is not None else contextlib.nullcontext():
                    texts = model.generate(
                        batch,
                        max_new_tokens=settings.max_new_tokens,
                        do_sample=not settings.greedy,
                        temperature=settings.temperature,
                        top_p=settings.top_p,
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


@dataclass
class InferenceReport:
    total: int  # records asked for
    already_done: int  # found in the results file from an earlier run
    generated: list[str] = field(default_factory=list)  # names answered by this run
    failed: list[str] = field(default_factory=list)  # names whose media/text could not be loaded
    skips: SkipLog = field(default_factory=SkipLog)
    stopped: bool = False  # should_stop() said so: the rest is left for a re-run


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
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
    ablation: Ablation | None = None,
) -> InferenceReport:
    """Answer every record not yet in `writer`, appending each batch's answers as soon as it is done;
    `should_stop` (e.g. a SIGINT/SIGTERM flag) is checked between batches."""
    todo = [r for r in records if r.name not in writer.done]
    report = InferenceReport(total=len(records), already_done=len(records) - len(todo))
    if not todo:
        return report
    padded, n_real = shard(todo, 0, 1, max(1, settings.batch_size))  # validation's batching: the last batch filled up
    bar = tqdm(total=len(records), initial=report.already_done, desc="infer", unit="sample", disable=not progress)

    def write(batch_records: list[Record], answers: dict[str, str]) -> None:
        names = [r.name for r in batch_records]  # first occurrences: the filler repeats none of them
        writer.append([(name, answers[name]) for name in names if name in answers])
        report.generated.extend(name for name in names if name in answers)
        report.failed.extend(name for name in names if name not in answers)
        bar.update(len(names))

    try:
        generate_responses(
            model,
            padded,
            cfg,
            tokenizer,
            settings,
            question=question,
            autocast=autocast,
            skips=report.skips,
            on_batch=write,
            should_stop=should_stop,
            ablation=ablation,
        )
    finally:
        bar.close()
    report.stopped = len(report.generated) + len(report.failed) < n_real
    return report

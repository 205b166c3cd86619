"""Batched answers for records, written batch by batch: the generation step of infer.py.

Generation goes through `affectgpt.train.validate.generate_responses`, the very function per-epoch
validation uses (any question: the dataset asks it), so `infer.py --split val` reproduces the logged
validation answers exactly. Batches are formed as validation forms them (`shard`: the last batch is
filled up with the first records, whose extra answers are dropped), so padding, and hence every
float, is the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from affectgpt.data import prompts
from affectgpt.data.records import Record, SkipLog
from affectgpt.data.unibench import DISCRETE_CANDIDATES, VALENCE_RANGES
from affectgpt.infer.outputs import ResultWriter
from affectgpt.train.data import shard
from affectgpt.train.validate import BatchCallback, chunk_seed, generate_responses

__all__ = ["GenerationSettings", "InferenceReport", "chunk_seed", "generate_answers", "resolve_question", "run_inference"]

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
        raise ValueError(f"--question {alias} states the dataset's {what}: ask it of one of {', '.join(facts)} "
                         f"(not {dataset or 'a single clip'})")  # fmt: skip
    return prompts.onehot_question(facts[name]) if onehot else prompts.valence_question(*facts[name])


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


def generate_answers(
    model: Any, records: list[Record], cfg: Any, tokenizer: Any, question: str, settings: GenerationSettings,
    autocast: Callable | None = None, skips: SkipLog | None = None, on_batch: BatchCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, str]:  # fmt: skip
    """name -> answer for the records that could be loaded (failures are counted in `skips`): generate_responses
    with `settings`, sampling reseeded per batch from `settings.seed` (resumed runs draw the same)."""
    return generate_responses(
        model, records, cfg, tokenizer, batch_size=settings.batch_size, max_new_tokens=settings.max_new_tokens,
        greedy=settings.greedy, temperature=settings.temperature, top_p=settings.top_p, question=question,
        seed=settings.seed, autocast=autocast, skips=skips if skips is not None else SkipLog(),
        on_batch=on_batch, should_stop=should_stop,
    )  # fmt: skip


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
) -> InferenceReport:
    """Answer every record not yet in `writer`, appending each batch's answers as soon as it is done;
    `should_stop` (e.g. a SIGINT/SIGTERM flag) is checked between batches."""
    from tqdm.auto import tqdm

    todo = [r for r in records if r.name not in writer.done]
    report = InferenceReport(total=len(records), already_done=len(records) - len(todo))
    if not todo:
        return report
    batch = max(1, settings.batch_size)
    padded, n_real = shard(todo, 0, 1, batch)  # validation's batching: the last batch filled up
    bar = tqdm(total=len(records), initial=report.already_done, desc="infer", unit="sample", disable=not progress)

    def write(batch_records: list[Record], answers: dict[str, str]) -> None:
        names = [r.name for r in batch_records]  # first occurrences: the filler repeats none of them
        writer.append([(name, answers[name]) for name in names if name in answers])
        report.generated.extend(name for name in names if name in answers)
        report.failed.extend(name for name in names if name not in answers)
        bar.update(len(names))

    try:
        generate_answers(model, padded, cfg, tokenizer, question, settings, autocast, report.skips,
                         on_batch=write, should_stop=should_stop)  # fmt: skip
    finally:
        bar.close()
    report.stopped = len(report.generated) + len(report.failed) < n_real
    return report

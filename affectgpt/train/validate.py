"""Per-epoch validation: generate (infer/generate.py) -> parse (labels/sentence.py) -> score (metrics/ew.py).

Each rank answers a contiguous share of the validation records with exactly the batching `infer.py --split val`
uses, every rank gets all answers, and the EW scores (avg-L1 / avg-L2 P/R/F, M-avg) are computed from the parsed
"The character's emotional state is ..." sentences, so `evaluate.py run` on the same answers gives the logged score.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from accelerate.utils import gather_object

from affectgpt.data.records import Record, SkipLog
from affectgpt.data.unibench import ground_truth
from affectgpt.files import write_text_atomic
from affectgpt.infer.generate import generate_responses, shard, validation_settings
from affectgpt.labels.sentence import parse_label_sentence
from affectgpt.metrics.ew import score_predictions
from affectgpt.metrics.wheel import EmotionWheel

PREDICTIONS_FILE = "val_predictions.jsonl"


def write_predictions(path: Path, responses: dict[str, str], parsed: dict[str, list[str]], names: list[str]) -> None:
    """One JSON object per sample: name, response (None when it could not be generated), parsed labels."""
    rows = ({"name": name, "response": responses.get(name), "labels": parsed.get(name, [])} for name in names)
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def validate(
    accelerator: Any, model: Any, records: list[Record], cfg: Any, tokenizer: Any, wheel: EmotionWheel
) -> tuple[dict[str, Any], dict[str, str], dict[str, list[str]]]:
    """Distributed validation: each rank generates its shard, every rank gets all answers and the scores."""
    settings = validation_settings(cfg)
    mine, n_real = shard(records, accelerator.process_index, accelerator.num_processes, settings.batch_size)
    skips = SkipLog()
    answers = generate_responses(model, mine, cfg, tokenizer, settings, autocast=accelerator.autocast, skips=skips)
    # Only this rank's own records: the filler (repeats of other ranks' records) must not overwrite
    # their answers when gathered, so every answer comes from the batch infer.py forms for it too.
    local = {r.name: answers[r.name] for r in mine[:n_real] if r.name in answers}
    responses: dict[str, str] = {}
    if accelerator.num_processes > 1:
        for part in gather_object([local]):
            responses.update(part)
    else:
        responses = local
    parsed = {name: parse_label_sentence(text) for name, text in responses.items()}
    scores = score_predictions(ground_truth(records, "ovlabel"), parsed, wheel)
    return scores, responses, parsed

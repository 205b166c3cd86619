"""OV-label extraction from model answers (parser | lexicon | llm) behind one interface, with a content-hash cache.

- parser: the deterministic reader of "The character's emotional state is a, b." answers, through
  `affectgpt.labels.sentence.parse_label_sentence` (the parser per-epoch validation scores with);
- lexicon: emotion words of the emotion wheel's format.csv found in free text (offline, no model);
- llm: the official instruct-LLM prompt (`LLMExtractor`), loaded only when something is not cached.

Every distinct answer is extracted once per extractor signature (kind + model + settings) and kept
in `<cache_dir>/<kind>-<signature hash>.jsonl` keyed by sha256 of the text, appended as extraction
proceeds: a re-run costs nothing and an interrupted LLM pass resumes. An answer from which no label
list can be read becomes an empty prediction with ok=False (counted by the caller), never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from affectgpt.data.records import list_to_string
from affectgpt.files import append_jsonl, read_jsonl, repair_tail
from affectgpt.labels.lexicon import Lexicon
from affectgpt.labels.llm_extractor import (
    DEFAULT_MODEL_DIR,
    OPENSET_PROMPT,
    SENTIMENT_PROMPT,
    LLMExtractor,
)
from affectgpt.labels.sentence import parse_label_sentence
from affectgpt.labels.sentiment import lexicon_sentiment

logger = logging.getLogger(__name__)

EXTRACTORS = ("parser", "lexicon", "llm")
LLM_CHUNK = 64  # answers per LLM call between cache writes
PARSER_VERSION = 1  # bump when labels/sentence.py or labels/lexicon.py change what they read from an answer


@dataclass
class Extracted:
    """Labels read from one answer; ok=False means nothing could be parsed (labels are then [])."""

    labels: list[str]
    ok: bool
    raw: str = ""  # the extractor's own answer (LLM), for inspection


def content_key(signature: str, text: str) -> str:
    return hashlib.sha256(f"{signature}\n{text}".encode()).hexdigest()


class ExtractionCache:
    """An append-only JSONL map key -> value; a truncated last line (killed mid-write) is ignored."""

    def __init__(self, path: Path | None):
        self.path = path
        self.values: dict[str, dict[str, Any]] = {}
        if path is not None and path.is_file():
            repair_tail(path)  # a line a killed run left half-written
            for row in read_jsonl(path):
                try:
                    self.values[row["key"]] = row["value"]
                except (KeyError, TypeError):
                    logger.warning("%s: ignoring a cache line without key/value", path)

    def add(self, items: Mapping[str, dict[str, Any]]) -> None:
        self.values.update(items)
        if self.path is not None and items:
            append_jsonl(self.path, [{"key": key, "value": value} for key, value in items.items()])


class LabelExtractor:
    """`extract(name -> answer)` and `sentiment(name -> labels)` for one extractor kind, cached by content."""

    def __init__(
        self,
        kind: str,
        cache_dir: str | Path | None = None,
        wheel_dir: str | Path | None = None,
        llm_path: str | Path | None = None,
        llm_options: Mapping[str, Any] | None = None,
    ):
        if kind not in EXTRACTORS:
            raise ValueError(f"extractor {kind!r}: choose one of {', '.join(EXTRACTORS)}")
        self.kind = kind
        self.llm_options = dict(llm_options or {})
        self.llm_options.setdefault("progress", False)
        if kind == "lexicon":
            if wheel_dir is None:
                raise ValueError("the lexicon extractor needs an emotion-wheel folder (its format.csv)")
            self.lexicon = Lexicon.from_wheel_dir(wheel_dir)
            self.source = str(Path(wheel_dir).resolve())
        elif kind == "llm":
            self.llm_path = Path(llm_path or DEFAULT_MODEL_DIR).expanduser()
            self.source = str(self.llm_path.resolve())
        else:
            self.source = "parse_label_sentence"
        self._llm: Any = None
        settings = {k: v for k, v in sorted(self.llm_options.items()) if k != "progress"} if kind == "llm" else {}
        # The rules are part of the signature: a changed prompt or parser never reuses answers cached under the old one.
        rules = {
            "llm": OPENSET_PROMPT + "\n" + SENTIMENT_PROMPT,
            "parser": f"parser-v{PARSER_VERSION}",
            "lexicon": f"lexicon-v{PARSER_VERSION}",
        }[kind]
        rules_digest = hashlib.sha256(rules.encode("utf-8")).hexdigest()[:16]
        self.signature = json.dumps(
            {"kind": kind, "source": self.source, "settings": settings, "rules": rules_digest}, sort_keys=True
        )
        digest = hashlib.sha256(self.signature.encode("utf-8")).hexdigest()[:12]
        self.cache = ExtractionCache(Path(cache_dir) / f"{kind}-{digest}.jsonl" if cache_dir else None)
        self.n_computed = 0  # texts actually extracted by this object (cache misses)

    # ------------------------------------------------------------------ labels
    def _llm_extractor(self) -> Any:
        if self._llm is None:
            self._llm = LLMExtractor(self.llm_path, **self.llm_options)
        return self._llm

    def _compute(self, texts: list[str]) -> dict[str, Extracted]:
        if self.kind == "parser":
            parsed = {t: parse_label_sentence(t) for t in texts}
            return {t: Extracted(parsed[t], bool(parsed[t])) for t in texts}
        if self.kind == "lexicon":
            out = {}
            for text in texts:
                labels = self.lexicon.extract(text)
                out[text] = Extracted(labels, bool(labels))
            return out
        results = self._llm_extractor().extract(texts)
        return {t: Extracted(r.labels, r.ok, r.raw) for t, r in zip(texts, results)}

    def extract(self, responses: Mapping[str, str]) -> dict[str, Extracted]:
        """name -> Extracted for every name (each distinct text extracted at most once, ever)."""
        keys = {text: content_key(self.signature, text) for text in set(map(str, responses.values()))}
        missing = sorted(text for text, key in keys.items() if key not in self.cache.values)
        step = LLM_CHUNK if self.kind == "llm" else max(1, len(missing))
        for start in range(0, len(missing), step):
            chunk = missing[start : start + step]
            computed = self._compute(chunk)
            self.n_computed += len(chunk)
            self.cache.add({keys[t]: asdict(computed[t]) for t in chunk})
        return {name: Extracted(**self.cache.values[keys[str(text)]]) for name, text in responses.items()}

    # ------------------------------------------------------------------ sentiment
    def sentiment(self, labels: Mapping[str, list[str]]) -> dict[str, str]:
        """name -> positive/negative/neutral (or the LLM's other answer, kept as official) per label list.

        parser/lexicon use the offline word-valence vote; llm asks the official sentiment prompt."""
        if self.kind != "llm":
            return {name: lexicon_sentiment(list(value)) for name, value in labels.items()}
        opensets = {name: list_to_string(list(value)) for name, value in labels.items()}
        keys = {o: content_key("sentiment\n" + self.signature, o) for o in set(opensets.values())}
        missing = sorted(o for o, key in keys.items() if key not in self.cache.values)
        for start in range(0, len(missing), LLM_CHUNK):
            chunk = missing[start : start + LLM_CHUNK]
            results = self._llm_extractor().to_sentiment(chunk)
            self.n_computed += len(chunk)
            self.cache.add({keys[o]: {"sentiment": r.sentiment, "ok": r.ok} for o, r in zip(chunk, results)})
        return {name: self.cache.values[keys[o]]["sentiment"] for name, o in opensets.items()}

"""Deterministic parser of OV-label answers: "The character's emotional state is happy, relieved." -> labels.

The model is trained to answer the OV-label question with exactly that sentence (reference §3.4),
so validation during training can score predictions without an LLM extractor. The parser is
lenient about case, quotes, apostrophe variants, "and"/";" separators and trailing chatter, and it
never raises: an answer that does not contain the sentence parses to [] (counted as empty).
`is_label_sentence` is the strict check (the GRPO format reward): the answer is exactly the trained form.
"""

from __future__ import annotations

import re

# "emotional state is", "emotional states are", "emotional state(s) is/are" (any case, curly apostrophes).
_ANCHOR = re.compile(r"emotional\s+states?\s*(?:\(s\)\s*)?(?:(?:is|are)\b|:)\s*", re.IGNORECASE)
# The label list ends at the first sentence end, line break, or the official "###" stop marker.
_END = re.compile(r"(?:\.(?:\s|$)|\.$|[\n\r!?]|###|</?s>|<\|)")
_SPLIT = re.compile(r",|;|/|\band\b|\bor\b|&", re.IGNORECASE)
_KEEP = re.compile(r"[^a-z\s\-]")
_MAX_WORDS = 4  # longer pieces are prose, not labels
# Strict trained form: prefix, labels joined by ", ", one period, optionally the "###" stop marker. A label is
# 1.._MAX_WORDS words of letters (inner hyphens/apostrophes allowed) separated by single spaces.
_WORD = r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*"
_LABEL = rf"{_WORD}(?: {_WORD}){{0,{_MAX_WORDS - 1}}}"
_STRICT = re.compile(rf"\s*The character's emotional state is {_LABEL}(?:, {_LABEL})*\.\s*(?:###\s*)?")


def _clean(piece: str) -> str:
    piece = piece.lower().replace("\u2019", "'")
    piece = _KEEP.sub(" ", piece)
    piece = re.sub(r"\s+", " ", piece).strip(" -")
    for article in ("a ", "an ", "the ", "very ", "slightly ", "somewhat "):
        if piece.startswith(article):
            piece = piece[len(article) :]
    return piece.strip()


def parse_label_sentence(text: object) -> list[str]:
    """Labels from the last "... emotional state is X, Y and Z." sentence of `text`, in order, deduplicated.

    Lower-cased, punctuation removed. Returns [] for non-strings, answers without the sentence,
    or an empty list after the anchor. Never raises.
    """
    if not isinstance(text, str) or not text:
        return []
    try:
        matches = list(_ANCHOR.finditer(text))
        if not matches:
            return []
        tail = text[matches[-1].end() :]
        end = _END.search(tail)
        if end is not None:
            tail = tail[: end.start()]
        labels: list[str] = []
        for piece in _SPLIT.split(tail):
            label = _clean(piece)
            if label and len(label.split()) <= _MAX_WORDS and label not in labels:
                labels.append(label)
        return labels
    except Exception:  # noqa: BLE001 - a parser of model output must never stop an evaluation
        return []


def is_label_sentence(text: object) -> bool:
    """True when `text` is exactly "The character's emotional state is a, b." (what the model was trained
    to answer), optionally followed by "###" and surrounding whitespace. Anything else, extra words,
    other separators or a missing period included, is False. Never raises."""
    return isinstance(text, str) and _STRICT.fullmatch(text) is not None

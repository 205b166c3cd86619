"""Turning an extractor LLM's answer into a label list.

`official_postprocess` reproduces what the official pipeline stores in `-openset.npz` (reference §6:
the answer string, stripped of "Output:"-style prefixes and newlines). `parse_llm_list` is the
tolerant reader on top of it: real answers come with code fences, Chinese punctuation, prose around
the list or no brackets at all, and a single malformed answer must never stop an evaluation run.
The final split always goes through the metric's own `string_to_list`, so what we count as a label
is exactly what the EW metric will see.
"""

from __future__ import annotations

import re

from affectgpt.data.records import string_to_list

# func_postprocess_qwen removes each of these once, in this order, when the text (as it then is) starts with it.
OFFICIAL_PREFIXES = ("输入", "输出", "翻译", "让我们来翻译一下：", "output", "Output", "input", "Input")

# Full-width / Chinese punctuation -> the ASCII the list grammar understands.
_PUNCT = str.maketrans(
    {
        "，": ",",
        "、": ",",
        "；": ",",
        ";": ",",
        "：": ":",
        "【": "[",
        "】": "]",
        "［": "[",
        "］": "]",
        "「": '"',
        "」": '"',
        "『": '"',
        "』": '"',
        "“": '"',
        "”": '"',
        "‘": "'",
        "’": "'",
        "。": ".",
        "\u3000": " ",
    }
)
_FENCE = re.compile(r"```[A-Za-z0-9_+-]*")
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
# "Output: a, b" / "The character's emotional state is a, b." / "the emotions of the man are: a, b"
_ANCHOR = re.compile(
    r"(?:\boutput\s*:|\bemotional\s+states?\b[^.:\n]{0,40}?(?:\b(?:is|are|includes?)\b|:)\s*:?"
    r"|\bemotions?\b[^.:\n]{0,40}?(?:\b(?:is|are|includes?)\b|:)\s*:?)\s*",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|[\n!?]")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+(.+?)\s*$")
_ITEM_STRIP = " \t\r\n*`_.,;:!?()<>{}#|/\\-"
MAX_ITEM_WORDS = 6  # a longer "label" is a sentence, not an emotion word


def official_postprocess(text: object) -> str:
    """The official func_postprocess_qwen, step for step (non-strings become ""): strip; remove each of
    OFFICIAL_PREFIXES once if the text starts with it, in order, with no strip in between; strip; remove one
    leading ':' then one leading '：'; strip; remove every newline; strip."""
    if not isinstance(text, str):
        return ""
    text = text.strip()
    for prefix in OFFICIAL_PREFIXES:
        text = text.removeprefix(prefix)
    text = text.strip().removeprefix(":").removeprefix("：")
    return text.strip().replace("\n", "").strip()


def _clean_items(items: list[str]) -> list[str]:
    """Strip markdown/punctuation debris, drop non-words and over-long pieces, dedup (case-insensitive)."""
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        item = re.sub(r"\s+", " ", item).strip(_ITEM_STRIP).strip()
        if not item or not any(ch.isalpha() for ch in item) or len(item.split()) > MAX_ITEM_WORDS:
            continue
        key = item.lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _split(body: str) -> list[str]:
    """The metric's split (commas and quotes), then our cleanup."""
    return _clean_items(string_to_list("[" + body + "]"))


def _looks_like_list(body: str) -> bool:
    """A bare answer is accepted as a list only if every comma piece is a short run of words."""
    pieces = [p.strip() for p in re.split(r"[,'\"]", body) if p.strip(_ITEM_STRIP)]
    if not pieces:
        return False
    word_run = re.compile(r"^(?:and\s+|or\s+)?[^\W\d_]+(?:[\s'-]+[^\W\d_]+){0,3}$")
    return all(word_run.match(p.strip(_ITEM_STRIP + " ")) for p in pieces)


def _parse(text: str) -> tuple[list[str], bool]:
    text = _FENCE.sub(" ", text.translate(_PUNCT)).strip()
    if not text:
        return [], False
    # 1. A bracketed list anywhere (JSON arrays and "Output: [a, b]. Because ..." included): the first wins.
    match = _BRACKETS.search(text)
    if match:
        return _split(match.group(1).replace("\n", " ")), True
    # 2. Bullet or numbered lines.
    bullets = [m.group(1) for m in map(_BULLET.match, text.splitlines()) if m]
    if bullets and len(bullets) == len([line for line in text.splitlines() if line.strip()]):
        items = _split(",".join(bullets))
        return items, bool(items)
    # 3. An anchor ("Output:", "emotional state is") followed by a bare list up to the sentence end.
    anchors = list(_ANCHOR.finditer(text))
    candidates = [text[m.end() :] for m in reversed(anchors)] + [official_postprocess(text)]
    for candidate in candidates:
        body = _SENTENCE_END.split(candidate, maxsplit=1)[0].strip()
        body = re.sub(r"\s+(?:and|or)\s+", ", ", body)
        if _looks_like_list(body):
            items = _split(body)
            if items:
                return items, True
    return [], False


def parse_llm_list(text: object) -> tuple[list[str], bool]:
    """(labels, parsed_ok) from an extractor answer. Never raises.

    "[]" gives ([], True); an answer with no recognisable list gives ([], False). Labels are non-empty,
    stripped, deduplicated case-insensitively, and split exactly like the metric's `string_to_list`.
    """
    if not isinstance(text, str):
        return [], False
    try:
        return _parse(text)
    except Exception:  # noqa: BLE001 - a parser bug must not kill a whole evaluation; report as unparsed
        return [], False

"""Parsing of list-like label strings, exactly as the official metric code does it.

`string_to_list` is the single parser for ground truth (`openset` columns, `-openset.npz` items) and
predictions, so both sides are normalised identically (reference §5.3). It accepts any shape (`[happy`
parses to `happy`, `happy]]` to `happy]`), which scoring parity requires; `malformed_reason` says when a
label cell is not a well-formed list, so readers can report such cells instead of passing them silently.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

_SPLIT = re.compile(r"['\",]")
# separators a label list should not use: the official parser splits on ',' only, so `happy; sad` is one label
_FOREIGN_SEPARATORS = (";", "；", "，", "、", "|")


def string_to_list(value: Any) -> list[str]:
    """Official rule: drop one leading '[' and one trailing ']', split on ' " or ',', strip, drop empties.

    So `[a, b]`, `a, b` and `['a', 'b']` parse alike, and "don't care" is split at the apostrophe
    (an official quirk we keep for metric parity). Lists/arrays pass through (stringified, stripped).
    """
    if value is None:
        return []
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    if isinstance(value, float) and math.isnan(value):
        return []
    text = str(value).strip()
    if not text:
        return []
    if text.startswith("["):
        text = text[1:]
    if text.endswith("]"):
        text = text[:-1]
    return [piece.strip() for piece in _SPLIT.split(text) if piece.strip()]


def list_to_string(labels: list[str]) -> str:
    """The official storage form of a label list: `[a, b]`."""
    return "[" + ", ".join(labels) + "]"


def malformed_reason(value: Any) -> str | None:
    """Why a label cell is not a well-formed list (`[a, b]`, `a, b`, `['a', 'b']`, `[]`), or None if it is.

    Checked: unbalanced, nested or stray brackets (a bracket left inside a label after parsing), separators
    other than ',' (`happy; sad`), and empty items (`[happy, , sad]`). Lists, arrays and missing cells are
    not text and are never malformed.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    opened, closed = text.count("["), text.count("]")
    if opened != closed:
        return f"unbalanced brackets ({opened} '[' and {closed} ']')"
    if opened > 1:
        return "nested or repeated brackets"
    stray = [label for label in string_to_list(text) if "[" in label or "]" in label]
    if stray:
        return f"bracket left inside label {stray[0]!r}"
    for separator in _FOREIGN_SEPARATORS:
        if separator in text:
            return f"separator {separator!r} instead of ','"
    inner = text[1:-1] if opened else text
    if inner.strip() and any(not piece.strip().strip("'\"").strip() for piece in inner.split(",")):
        return "empty item"
    return None

"""Parsing of list-like label strings, exactly as the official metric code does it.

`string_to_list` is the single parser for ground truth (`openset` columns, `-openset.npz` items) and
predictions, so both sides are normalised identically (reference §5.3).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

_SPLIT = re.compile(r"['\",]")


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

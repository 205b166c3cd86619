"""Offline OV-label extraction: find emotion words of the emotion-wheel vocabulary in free text.

The official extractor is Qwen2.5-7B (reference §6). Without it (CPU demo, CI, quick checks) we match
the EW-S vocabulary of `format.csv` (every name and word form, multi-word forms included) directly
in a description. That is what the metric can score anyway: a label outside format.csv maps to
nothing. The matcher is deliberately simple and predictable: case-insensitive whole-word matches,
longest form first, simple negation ("not happy", "no sign of anger", "neither happy nor sad")
drops a match, duplicates are removed in order of appearance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

# format.csv rows whose words are mostly *not* emotions in a video description ("the subtitle content",
# "his facial expression", "she moved her hand", "it can be seen"): their name and every one of their
# forms are left out, even where another row lists the same form (e.g. "emotion" via "emotionless").
STOP_NAMES = frozenset(
    """
    attention available believing biting bright centered certain clear close colorful current directed
    emotional faced free gone here important left lesser lower minor moved open personal present private
    revealed rich seen significant true noticed observed detected received represented related
    associated involved touched touching regard cast drive attending release far remote existing
    existent completed realized covered pushed thrown quick sharp soft strong weak heavy tight poor lacking
    """.split()
) | {"no words"}

# Single forms of otherwise emotional rows that are ordinary description words (or format.csv quirks:
# "loose" is a form of "lost", "speaking" of "speechless", "might" of "mighty").
STOP_FORMS = frozenset(
    """
    content contents focus focuses focusing cheek cheeks might mind minds minded minding speech speeches
    speaking spoken thought thoughts thinking help helps helped helping question questions questioned
    consider considers considered considering consideration considerations loose loosely looseness
    loosen loosens loosened loosening slight wrong wrongs lack lacks lacked lacking tend tends tended
    tending tendency tendencies
    """.split()
)

# Words that negate an emotion word following them within NEGATION_WINDOW words (same clause).
NEGATION_CUES = frozenset(
    "not no never without neither nor cannot hardly barely none lack lacks lacked lacking".split()
)
NEGATION_WINDOW = 3  # at most this many words between the cue and the emotion word
# Clause boundaries end a negation's scope: "not happy, but angry" keeps "angry".
_CLAUSE_WORDS = frozenset("but however although though yet while whereas instead rather".split())

_TOKEN = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*|[.,;:!?()\"]")


def _normalise(text: str) -> str:
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


def _is_negation(token: str) -> bool:
    return token in NEGATION_CUES or token.endswith("n't")


class Lexicon:
    """A vocabulary of emotion word forms and a negation-aware matcher over free text."""

    def __init__(self, words: Iterable[str]):
        self.forms: dict[tuple[str, ...], str] = {}
        for word in words:
            key = tuple(_TOKEN.findall(_normalise(str(word).strip())))
            if key and all(t[0].isalpha() for t in key):
                self.forms.setdefault(key, str(word).strip().lower())
        if not self.forms:
            raise ValueError("Lexicon: the vocabulary is empty")
        self.max_len = max(len(key) for key in self.forms)

    @classmethod
    def from_words(cls, words: Iterable[str]) -> Lexicon:
        """A custom vocabulary (single or multi-word entries); no stoplist is applied."""
        return cls(words)

    @classmethod
    def from_wheel_dir(
        cls,
        wheel_dir: str | Path,
        stop_names: Iterable[str] = STOP_NAMES,
        stop_forms: Iterable[str] = STOP_FORMS,
    ) -> Lexicon:
        """Every name and form of `<wheel_dir>/format.csv` (columns name, format), minus the stoplists."""
        path = Path(wheel_dir) / "format.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: format.csv not found (expected the official emotion-wheel folder)")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if not {"name", "format"} <= set(frame.columns):
            raise ValueError(f"{path}: expected columns name, format; found {list(frame.columns)}")
        rows = [
            (name.strip().lower(), [f.strip().lower() for f in forms.split(",")])
            for name, forms in zip(frame["name"], frame["format"])
        ]
        stop_names = {n.lower() for n in stop_names}
        stop = {f.lower() for f in stop_forms}
        for name, forms in rows:
            if name in stop_names:
                stop.update([name, *forms])
        words = [w for name, forms in rows for w in (name, *forms)]
        return cls(w for w in words if w and w not in stop)

    def __len__(self) -> int:
        return len(self.forms)

    def __contains__(self, word: str) -> bool:
        return tuple(_TOKEN.findall(_normalise(word))) in self.forms

    def extract(self, text: object) -> list[str]:
        """Emotion words of the vocabulary in `text`, in order of first appearance, negated ones dropped."""
        if not isinstance(text, str) or not text.strip():
            return []
        tokens = _TOKEN.findall(_normalise(text))
        found: list[str] = []
        negated_until = -1  # index of the last token still inside a negation's scope
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if not token[0].isalpha() or token in _CLAUSE_WORDS:  # punctuation or clause word: scope ends
                negated_until = -1
                i += 1
                continue
            match = next(
                (n for n in range(min(self.max_len, len(tokens) - i), 0, -1) if tuple(tokens[i : i + n]) in self.forms),
                0,
            )
            if match:
                if i > negated_until and self.forms[tuple(tokens[i : i + match])] not in found:
                    found.append(self.forms[tuple(tokens[i : i + match])])
                i += match
                continue
            if _is_negation(token):
                negated_until = i + NEGATION_WINDOW + 1
            i += 1
        return found

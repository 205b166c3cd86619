"""Sentiment (positive / negative / neutral) of an OV label list without an LLM, and the sentiment CSV.

The official pipeline asks Qwen2.5 for the sentiment of each `-openset` string (reference §6, used by
the dimensional MER-UniBench sets). This is the offline fallback: a vote over a small, explicit
valence list. The list holds the L1 groups of the five official emotion wheels (happy / joyful / joy /
peaceful / powerful count positive; mad / sad / scared / disgusted / disgust / bad / fear / fearful /
anger / angry negative; surprised neutral) plus common emotion words of either valence. It is a
heuristic, documented as such: the LLM route (`LLMExtractor.to_sentiment`) is the official one.
"""

from __future__ import annotations

from pathlib import Path

from affectgpt.data.records import string_to_list
from affectgpt.labels.io import Rows, read_name_value_csv, write_name_value_csv

SENTIMENTS = ("positive", "negative", "neutral")

POSITIVE_WORDS = frozenset(
    """
    happy joyful joy peaceful powerful
    happiness glad cheerful delighted delight pleased pleasant content contented satisfied satisfaction
    relaxed calm calmness peace serene tranquil relieved relief grateful gratitude thankful proud pride
    confident confidence hopeful hope optimistic excited excitement enthusiastic enthusiasm eager amused
    amusement playful humorous humor fun funny joking loving love affectionate affection caring tender
    friendly warm kind interested interest curious inspired inspiring comfortable comforted secure safe
    valued respected appreciated appreciative admiration admiring elated elation ecstatic thrilled touched
    moved trusting trust energetic lively vibrant encouraged carefree gleeful jubilant triumphant blissful
    bliss passionate romantic sincere appreciative accepted acceptance approving approval determined
    motivated brave courageous daring successful fulfilled cherished lighthearted light-hearted upbeat
    sunny positive good great wonderful excellent awe awed amazed nostalgic sentimental
    """.split()
)

NEGATIVE_WORDS = frozenset(
    """
    mad sad scared disgusted disgust bad fear fearful anger angry
    sadness unhappy depressed depression down lonely loneliness grief grieving sorrow sorrowful sorry
    disappointed disappointment hurt heartbroken furious fury rage annoyed annoyance irritated irritation
    frustrated frustration resentful resentment bitter hostile hostility contempt contemptuous scornful
    afraid frightened terrified terror anxious anxiety worried worry nervous nervousness tense tension
    stressed stress uneasy uncomfortable embarrassed embarrassment ashamed shame guilty guilt jealous
    jealousy envious envy helpless hopeless hopelessness desperate despair confused confusion bored
    boredom tired exhausted weary dissatisfied dissatisfaction displeased displeasure upset distressed
    distress agitated impatient suspicious doubtful insecure awkward regretful regret remorseful miserable
    misery dejected discouraged overwhelmed panicked panic horrified horror apathetic sarcastic dismissive
    defensive aggressive threatened rejected betrayed humiliated offended pained troubled concerned concern
    reluctant hesitant uncertain helplessness melancholy melancholic gloomy lost isolated powerless
    vulnerable inferior inadequate negative disapproving critical skeptical sceptical cynical irritable
    exasperated indignant outraged enraged livid bothered disturbed dismayed pessimistic unsatisfied
    """.split()
)

NEUTRAL_WORDS = frozenset(
    "neutral surprised surprise astonished startled shocked indifferent serious thoughtful".split()
)

# Suffix rewrites tried when a word is not listed as is (e.g. "joyfulness" -> "joyful", "angrily" -> "angry").
_SUFFIXES = (("fulness", "ful"), ("iness", "y"), ("ness", ""), ("ily", "y"), ("ly", ""), ("ment", ""))


def word_valence(word: str) -> str | None:
    """'positive' / 'negative' / 'neutral' for a listed word (or a simple derivation of one), else None."""
    word = word.lower().strip()
    candidates = [word] + [word[: -len(old)] + new for old, new in _SUFFIXES if word.endswith(old)]
    for candidate in candidates:
        if candidate in POSITIVE_WORDS:
            return "positive"
        if candidate in NEGATIVE_WORDS:
            return "negative"
        if candidate in NEUTRAL_WORDS:
            return "neutral"
    return None


def lexicon_sentiment(labels: list[str] | str) -> str:
    """Majority valence of the labels: more positive than negative words -> positive, the reverse ->
    negative, a tie or no known word (the empty list included) -> neutral. A "[a, b]" string is accepted."""
    if isinstance(labels, str):
        labels = string_to_list(labels)
    votes = [word_valence(label) for label in labels]
    positive, negative = votes.count("positive"), votes.count("negative")
    if positive > negative:
        return "positive"
    if negative > positive:
        return "negative"
    return "neutral"


def write_sentiment_csv(path: str | Path, rows: Rows) -> Path:
    """The `name,sentiment` CSV, in the order given."""
    return write_name_value_csv(path, rows, "sentiment")


def read_sentiment_csv(path: str | Path) -> dict[str, str]:
    """{name: sentiment} from a `name,sentiment` CSV."""
    return read_name_value_csv(path, "sentiment")

"""The offline lexicon extractor on realistic descriptions, with the official format.csv."""

import pandas as pd
import pytest

from affectgpt.labels.lexicon import STOP_FORMS, STOP_NAMES, Lexicon

DESCRIPTION = (
    "In the video, the man sits in a dim room and looks at the camera. His facial expression is tense, "
    "his eyebrows are furrowed and his voice is low. The subtitle content says: 'I really can't believe "
    "they did this to me.' He is not happy about the situation. Overall, he appears anxious and "
    "frustrated, lacking confidence, but there is no sign of anger. At the end he seems a little relieved."
)


@pytest.fixture(scope="module")
def lexicon(official_wheel_dir):
    return Lexicon.from_wheel_dir(official_wheel_dir)


def test_vocabulary_covers_format_csv_minus_the_stoplist(lexicon, official_wheel_dir):
    frame = pd.read_csv(official_wheel_dir / "format.csv", keep_default_na=False)
    assert len(frame) == 1255
    # names, forms and multi-word forms are all in
    for word in ["happy", "happiness", "anxiety", "worried", "at a loss for words", "light-hearted", "fed up"]:
        assert word in lexicon
    assert "Happy" in lexicon  # matching is case-insensitive
    # stoplisted description words are out, whichever row they came from
    for word in ["facial", "face", "content", "seen", "low", "speaking", "loose", "emotion", "here"]:
        assert word not in lexicon
    assert "contented" in lexicon  # only the listed form of that row is dropped
    # every name is in unless stoplisted or a form of a stoplisted row ("freed" is a form of "free")
    stopped = set(STOP_FORMS)
    for name, forms in zip(frame["name"], frame["format"]):
        if name in STOP_NAMES:
            stopped.update([name, *forms.split(",")])
    assert [n for n in frame["name"] if n not in stopped and n not in lexicon] == []
    assert "freed" not in lexicon and "tender" in lexicon
    assert 6000 < len(lexicon) < 7386


def test_realistic_description(lexicon):
    # tense/anxious/frustrated/relieved kept; "not happy", "lacking confidence", "no sign of anger" dropped;
    # "facial", "content", "low", "believe" are not emotions here
    assert lexicon.extract(DESCRIPTION) == ["tense", "anxious", "frustrated", "relieved"]


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("She is not happy.", []),
        ("There is no sign of anger in his voice.", []),
        ("He is never angry.", []),
        ("She isn't sad, she is calm.", ["calm"]),
        ("He isn’t sad at all.", []),  # curly apostrophe
        ("He speaks without fear.", []),
        ("She is neither happy nor sad.", []),
        ("He does not seem to be happy, but he is excited.", ["excited"]),
        ("Not happy but angry.", ["angry"]),
        ("He doesn't care about it.", []),
        ("She is happy. She is not sad.", ["happy"]),
        ("Happy, HAPPY and joyful; happy again.", ["happy", "joyful"]),
        ("He is at a loss for words and fed up.", ["at a loss for words", "fed up"]),
        ("She is light-hearted and self-conscious.", ["light-hearted", "self-conscious"]),
        ("", []),
        ("12345 ... !!!", []),
    ],
)
def test_negation_and_matching(lexicon, text, labels):
    assert lexicon.extract(text) == labels


def test_longest_match_first(lexicon):
    # "at a loss for words" contains "at a loss" and "loss": one label, the longest form
    assert lexicon.extract("He was at a loss for words.") == ["at a loss for words"]
    assert lexicon.extract("He was at a loss.") == ["at a loss"]


def test_negation_window_is_short(lexicon):
    # the cue reaches at most three words ahead; a later emotion word is kept
    assert lexicon.extract("He did not say a single word and looked really sad.") == ["sad"]
    assert lexicon.extract("He is not very happy.") == []


def test_custom_vocabulary():
    lex = Lexicon.from_words(["Happy", "over the moon", "blue"])
    assert len(lex) == 3
    assert lex.extract("She was over the moon, not blue, and HAPPY.") == ["over the moon", "happy"]
    assert lex.extract("the moon is blue") == ["blue"]
    with pytest.raises(ValueError, match="empty"):
        Lexicon.from_words(["", "  ", "123"])


def test_missing_wheel_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="format.csv"):
        Lexicon.from_wheel_dir(tmp_path)
    (tmp_path / "format.csv").write_text("word,forms\nhappy,happy\n")
    with pytest.raises(ValueError, match="name, format"):
        Lexicon.from_wheel_dir(tmp_path)

"""Parsing extractor answers into label lists, the official post-processing, and the label file writers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from affectgpt.data.records import list_to_string, string_to_list
from affectgpt.labels.io import (
    read_name_value_csv,
    read_openset_npz,
    write_openset_csv,
    write_openset_npz,
)
from affectgpt.labels.postprocess import (
    official_postprocess,
    parse_llm_list,
)
from affectgpt.labels.sentiment import (
    NEGATIVE_WORDS,
    NEUTRAL_WORDS,
    POSITIVE_WORDS,
    lexicon_sentiment,
    read_sentiment_csv,
    write_sentiment_csv,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[anxious, tense, nervous, uncertain]", "[anxious, tense, nervous, uncertain]"),
        ("  Output: [happy, sad]\n", "[happy, sad]"),
        ("Output：[happy]", "[happy]"),
        ("输出：[开心]", "[开心]"),
        ("Input: [calm]", "[calm]"),
        ("[relaxed,\nhumorous]", "[relaxed,humorous]"),
        ("output [a]", "[a]"),
        ("The output is [a]", "The output is [a]"),  # only a leading prefix is removed
        (None, ""),
    ],
)
def test_official_postprocess(raw, expected):
    assert official_postprocess(raw) == expected


# The official func_postprocess_qwen, step by step: strip; each prefix of 输入, 输出, 翻译, 让我们来翻译一下：,
# output, Output, input, Input removed once if the text (as it is by then) starts with it, in that order and
# with no strip in between; strip; one leading ":" removed, then one leading "："; strip; every "\n" removed;
# strip. Each expected value below is that rule worked by hand.
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # "Output" goes, then "Input" (later in the order) also matches what is left: ": x" -> "x"
        ("OutputInput: x", "x"),
        # 输出 goes, "Output" is next in the order and matches too
        ("输出Output: [a]", "[a]"),
        # no strip between prefixes: after 输出 the text starts with a space, so "Output" no longer matches
        ("输出 Output: [a]", "Output: [a]"),
        # each prefix only once, and the list is walked once: "input" precedes nothing that re-checks "output"
        ("输入输入[a]", "输入[a]"),
        ("inputoutput: x", "output: x"),
        ("output Output [a]", "Output [a]"),
        # the translation preamble, alone and after 翻译 (which comes before it in the order)
        ("让我们来翻译一下：[happy]", "[happy]"),
        ("翻译让我们来翻译一下：[a]", "[a]"),
        # ":" then "：", each once and only in that order
        (":：[a]", "[a]"),
        ("：:[a]", ":[a]"),
        ("Output::[a]", ":[a]"),
        ("Input:\n[a]", "[a]"),
        # newlines inside are removed (not replaced by spaces); other whitespace, "\r" included, stays
        ("Output: \n [a, \n b] \n", "[a,  b]"),
        ("[a,\r\nb]", "[a,\rb]"),
        ("\t Output\t: [a]", "[a]"),
    ],
)
def test_official_postprocess_rule_order(raw, expected):
    assert official_postprocess(raw) == expected


@pytest.mark.parametrize(
    ("answer", "labels"),
    [
        # shipped official examples (reference §7.2)
        ("[anxious, tense, nervous, uncertain]", ["anxious", "tense", "nervous", "uncertain"]),
        ("The character's emotional state is relaxed, humorous, positive.", ["relaxed", "humorous", "positive"]),
        ("The character's emotional state is concerned, worried.", ["concerned", "worried"]),
        ("[dissatisfied, disappointed, bored, apathetic]", ["dissatisfied", "disappointed", "bored", "apathetic"]),
        # prose around the list, prefixes
        ("Output: [happy, sad]. These are the emotions shown by the man.", ["happy", "sad"]),
        ("Sure! Based on the clues, the list is: [calm, content]\nHope this helps.", ["calm", "content"]),
        ("Output: anxious, nervous", ["anxious", "nervous"]),
        ("The emotional state of the character is happy and excited.", ["happy", "excited"]),
        ("His emotions are: sad, lonely. He cries.", ["sad", "lonely"]),
        # no brackets
        ("happy, sad, and angry", ["happy", "sad", "angry"]),
        ("surprised", ["surprised"]),
        # quoted items and JSON
        ("['worried', 'anxious']", ["worried", "anxious"]),
        ('["happy", "excited"]', ["happy", "excited"]),
        ('{"emotions": ["calm", "relieved"]}', ["calm", "relieved"]),
        # code fences
        ('```json\n["angry", "frustrated"]\n```', ["angry", "frustrated"]),
        ("```\n[tired, bored]\n```", ["tired", "bored"]),
        # Chinese punctuation
        ("【快乐，兴奋】", ["快乐", "兴奋"]),
        ("输出：紧张、焦虑；不安", ["紧张", "焦虑", "不安"]),
        ("[happy，sad、angry]", ["happy", "sad", "angry"]),
        ("「happy」，「sad」", ["happy", "sad"]),
        # bullets, markdown, duplicates, stray punctuation
        ("- happy\n- sad\n", ["happy", "sad"]),
        ("1. anxious\n2. worried", ["anxious", "worried"]),
        ("[**happy**, sad., happy]", ["happy", "sad"]),
        ("[self-conscious, at a loss for words]", ["self-conscious", "at a loss for words"]),
    ],
)
def test_parse_llm_list_realistic_answers(answer, labels):
    assert parse_llm_list(answer) == (labels, True)


@pytest.mark.parametrize("answer", ["[]", "Output: []", " [ ] ", "```json\n[]\n```", "【】"])
def test_empty_list_is_a_valid_empty_answer(answer):
    assert parse_llm_list(answer) == ([], True)


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "   ",
        "!!!???",
        "This is a long sentence about the weather and nothing else at all.",
        "лица落误会marginTop mold/ss先把 Broken 12 34",
        None,
        42,
    ],
)
def test_garbage_gives_no_labels_and_not_ok(answer):
    assert parse_llm_list(answer) == ([], False)


def test_split_matches_the_metric_parser():
    # the metric's quirk (apostrophes split a label) is kept so what we count is what gets scored
    answer = "[don't care, happy]"
    labels, ok = parse_llm_list(answer)
    assert ok and labels == string_to_list(answer)
    assert list_to_string(["happy", "sad"]) == "[happy, sad]"
    assert string_to_list(list_to_string(["happy", "sad"])) == ["happy", "sad"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="[]{}\"',;:，、；：【】「」`\n -abcé快乐0", max_size=60)))
def test_parse_llm_list_never_raises_and_returns_clean_strings(text):
    labels, ok = parse_llm_list(text)
    assert isinstance(labels, list) and isinstance(ok, bool)
    assert all(isinstance(label, str) and label and label == label.strip() for label in labels)
    assert len({label.lower() for label in labels}) == len(labels)
    assert isinstance(official_postprocess(text), str)


# ---------------------------------------------------------------- sentiment fallback


@pytest.mark.parametrize(
    ("labels", "sentiment"),
    [
        (["joyful"], "positive"),
        ("[relaxed, humorous, positive]", "positive"),
        (["dissatisfied", "disappointed", "bored", "apathetic"], "negative"),
        (["happy", "sad"], "neutral"),  # tie
        (["happy", "sad", "angry"], "negative"),
        (["surprised"], "neutral"),
        ([], "neutral"),
        ("[]", "neutral"),
        (["xyzzy"], "neutral"),
        (["Happiness", "cheerfulness"], "positive"),  # case and simple derivations
        (["angrily"], "negative"),
    ],
)
def test_lexicon_sentiment(labels, sentiment):
    assert lexicon_sentiment(labels) == sentiment


def test_valence_lists_do_not_overlap():
    assert not POSITIVE_WORDS & NEGATIVE_WORDS
    assert not (POSITIVE_WORDS | NEGATIVE_WORDS) & NEUTRAL_WORDS


# ---------------------------------------------------------------- writers


def test_openset_npz_round_trip_in_official_shape(tmp_path):
    rows = {"sample_00000000": ["anxious", "tense"], "sample_00000007": "[relaxed, humorous, positive]", "s2": []}
    path = write_openset_npz(tmp_path / "out" / "checkpoint_000060-openset.npz", rows)
    with np.load(path, allow_pickle=False) as data:  # plain unicode arrays, loadable without pickle
        assert sorted(data.files) == ["fileitems", "filenames"]
        assert data["filenames"].dtype.kind == "U" and data["fileitems"].dtype.kind == "U"
        assert data["filenames"].tolist() == ["sample_00000000", "sample_00000007", "s2"]
        assert data["fileitems"].tolist() == ["[anxious, tense]", "[relaxed, humorous, positive]", "[]"]
    assert read_openset_npz(path) == {
        "sample_00000000": "[anxious, tense]",
        "sample_00000007": "[relaxed, humorous, positive]",
        "s2": "[]",
    }
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left behind
    empty = write_openset_npz(tmp_path / "empty-openset.npz", {})
    assert read_openset_npz(empty) == {}


def test_csv_writers_round_trip(tmp_path):
    rows = [("b_sample", ["happy", "excited"]), ("a_sample", []), ("c,comma", "[sad]")]
    path = write_openset_csv(tmp_path / "openset.csv", rows)
    assert path.read_text().splitlines()[0] == "name,openset"
    assert read_name_value_csv(path, "openset") == {
        "b_sample": "[happy, excited]",
        "a_sample": "[]",
        "c,comma": "[sad]",
    }
    assert list(read_name_value_csv(path, "openset")) == ["b_sample", "a_sample", "c,comma"]  # order kept
    sentiment = write_sentiment_csv(tmp_path / "sentiment.csv", {"x": "positive", "y": "mixed"})
    assert sentiment.read_text().splitlines() == ["name,sentiment", "x,positive", "y,mixed"]
    assert read_sentiment_csv(sentiment) == {"x": "positive", "y": "mixed"}
    with pytest.raises(ValueError, match="missing column"):
        read_name_value_csv(sentiment, "openset")


def test_duplicate_names_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="duplicate sample name 'x'"):
        write_openset_npz(tmp_path / "dup.npz", [("x", "[a]"), ("x", "[b]")])

"""GRPO rewards against hand computations from the official wheel mappings (reference §5.4 table, §9 examples).

Mappings used below, level 1, from the §5.4 table (W1 / W2 / W3 / W4 / W5):
  happy, joyful  happy / happy / joyful / joy / powerful      worried  scared / fearful / scared / fear / scared
  sad            sad / sad / sad / sad / sad                  calm     happy / happy / peaceful / joy / peaceful
  surprised      surprised / surprised / powerful / fear / -  disgust(ed)  disgusted / disgusted / - / disgust / -
  angry, anger   mad / angry / mad / anger / mad              neutral, humorous: nothing anywhere
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from affectgpt.data.prompts import build_target, ovlabel_answer
from affectgpt.labels.sentence import is_label_sentence, parse_label_sentence
from affectgpt.metrics.ew import ew_scores
from affectgpt.metrics.rewards import (
    combine,
    ew_reward,
    format_reward,
    label_count,
    length_penalty,
)
from affectgpt.metrics.wheel import WHEELS, load_wheel

# The rewards are means of at most five ratios of small integers, computed in float64: exact to ~1e-15.
EXACT = 1e-12


@pytest.fixture(scope="module")
def wheel(official_wheel_dir):
    return load_wheel(official_wheel_dir)


@pytest.mark.parametrize(
    ("gt", "pred", "expected"),
    [
        (["happy"], ["joyful"], 1.0),  # synonyms: the same L1 group in all five wheels
        (["happy"], ["joyful", "happy"], 1.0),  # both map to one group per wheel: the set has one element
        (["angry"], ["anger"], 1.0),
        (["happy"], ["joyful", "sad"], 2 / 3),  # every wheel: P 1/2, R 1, F 2/3
        # W1, W2, W4: gt {happy-group, fear-group}, pred {happy-group, sad}: P 1/2, R 1/2, F 1/2;
        # W3, W5: calm adds "peaceful": P 1/3, R 1/2, F 2/5. Mean (3 x 1/2 + 2 x 2/5) / 5 = 0.46.
        (["happy", "worried"], ["joyful", "sad", "calm"], 0.46),
        # W5 has no "surprised": the wheel is left out. W1-W3 miss, W4 maps both to "fear": 1/4, not 1/5.
        (["surprised"], ["worried"], 0.25),
        (["disgust"], ["disgusted"], 1.0),  # scored in W1, W2, W4 only
        (["disgust"], ["angry"], 0.0),
        (["happy"], [], 0.0),  # empty prediction: P = R = 0 -> F = 0 (official NaN)
        (["happy"], ["xyzzy", "humorous"], 0.0),  # nothing in the prediction maps
    ],
)
def test_ew_reward_hand_cases(wheel, gt, pred, expected):
    assert ew_reward(pred, gt, wheel) == pytest.approx(expected, abs=EXACT)


@pytest.mark.parametrize(
    ("gt", "pred", "avg_l1_f"),
    [  # single-sample worked examples of reference §9, their avg-L1 F (project convention NaN -> 0)
        (["happy", "excited"], ["joyful"], 0.8),  # E1
        (["angry", "frustrated"], ["anger", "annoyed", "sad"], (1 + 1 + 2 / 3 + 1 + 2 / 3) / 5),  # E2: 0.8667
        (["worried", "nervous"], ["anxious"], 1.0),  # E3: every M3 cell is 100
        (["sad"], ["sadness", "sad", "humorous", "xyzzy"], 1.0),  # E5
        (["fear"], ["brave"], 0.8),  # E7: W1 misses (0), W2-W5 hit through the fearless quirk
        ("['happy', 'sad']", "happy, sad", 1.0),  # E8: list-like strings parse alike
    ],
)
def test_ew_reward_equals_the_reference_worked_examples(wheel, gt, pred, avg_l1_f):
    assert ew_reward(pred, gt, wheel) == pytest.approx(avg_l1_f, abs=EXACT)


@pytest.mark.parametrize("gt", [["neutral"], ["neutral", "humorous"], [], "", "[]", ["xyzzy"]])
def test_gt_that_maps_nowhere_carries_no_signal(wheel, gt):
    assert ew_reward(["happy"], gt, wheel) is None
    assert ew_reward([], gt, wheel) is None


def test_unparsable_completion_scores_zero_through_the_sentence_parser(wheel):
    for text in ("I cannot tell how this person feels.", "", "The character's emotional state is"):
        labels = parse_label_sentence(text)
        assert labels == []
        assert ew_reward(labels, ["happy"], wheel) == 0.0
        assert format_reward(is_label_sentence(text)) == 0.0
    text = "The character's emotional state is joyful, sad, calm."
    assert format_reward(is_label_sentence(text)) == 1.0
    assert ew_reward(parse_label_sentence(text), ["happy", "worried"], wheel) == pytest.approx(0.46, abs=EXACT)


@pytest.mark.parametrize(
    ("kind", "p", "g", "factor"),
    [
        ("inverse", 5, 2, 1 / 4),
        ("ratio", 5, 2, 2 / 5),
        ("log", 5, 2, math.log(2) / math.log(5)),
        ("none", 5, 2, 1.0),
        ("inverse", 3, 1, 1 / 3),
        ("ratio", 3, 1, 1 / 3),
        ("log", 3, 1, 0.0),
        ("none", 3, 1, 1.0),
        ("inverse", 2, 1, 1 / 2),
        ("ratio", 4, 3, 3 / 4),
        ("log", 9, 3, 0.5),  # log 3 / log 9 = 1/2
    ],
)
def test_length_penalty_when_more_labels_than_gt(kind, p, g, factor):
    assert length_penalty(p, g, kind) == pytest.approx(factor, abs=EXACT)


@pytest.mark.parametrize("kind", ["inverse", "ratio", "log", "none"])
def test_no_penalty_up_to_the_gt_count(kind):
    assert [length_penalty(p, 3, kind) for p in (0, 1, 2, 3)] == [1.0] * 4
    assert length_penalty(1, 1, kind) == 1.0  # p = g = 1: no factor (log 1 / log 1 would be 0/0)


def test_length_penalty_errors():
    with pytest.raises(ValueError, match="'square' is not supported; choose one of: inverse, ratio, log, none"):
        length_penalty(3, 1, "square")
    with pytest.raises(ValueError, match="g >= 1"):
        length_penalty(3, 0, "ratio")
    with pytest.raises(ValueError, match="p >= 0"):
        length_penalty(-1, 2, "ratio")


def test_label_count_is_distinct_normalised_labels():
    assert label_count(["Happy", " happy ", "sad"]) == 2
    assert label_count("[happy, sad, happy]") == 2
    assert label_count(["xyzzy"]) == 1  # unmappable words still make the answer longer
    assert label_count([]) == 0 and label_count("") == 0


def test_penalised_reward_combined_with_format(wheel):
    pred, gt = ["joyful", "sad", "calm"], ["happy", "worried"]  # p = 3 > g = 2
    ew = ew_reward(pred, gt, wheel) * length_penalty(label_count(pred), label_count(gt), "ratio")
    assert ew == pytest.approx(0.46 * 2 / 3, abs=EXACT)
    total = combine({"ew": ew, "format": format_reward(True)}, {"ew": 1.0, "format": 0.1})
    assert total == pytest.approx(0.46 * 2 / 3 + 0.1, abs=EXACT)
    assert combine({"ew": 0.5, "format": 0.0}, {"ew": 2.0, "format": 0.2}) == 1.0


def test_combine_rejects_mismatched_or_non_finite_components():
    with pytest.raises(ValueError, match=r"no weight for \['format'\], no component for \[\]"):
        combine({"ew": 1.0, "format": 1.0}, {"ew": 1.0})
    with pytest.raises(ValueError, match=r"no weight for \[\], no component for \['fromat'\]"):
        combine({"ew": 1.0}, {"ew": 1.0, "fromat": 0.1})
    with pytest.raises(ValueError, match="'ew'.*not finite"):
        combine({"ew": float("nan")}, {"ew": 1.0})


@pytest.mark.parametrize(
    "text",
    [
        "The character's emotional state is happy.",
        "The character's emotional state is excited, nervous, hopeful, supportive, encouraging.",
        "The character's emotional state is self-conscious, lacking confidence.###",
        "  The character's emotional state is don't care, neutral. ### \n",
        build_target(ovlabel_answer(["angry", "frustrated"])),  # the training target itself
    ],
)
def test_label_sentence_accepts_the_trained_form(text):
    assert is_label_sentence(text)


@pytest.mark.parametrize(
    "text",
    [
        "The character's emotional state is happy",  # no period
        "The character's emotional state is .",  # no label
        "The character's emotional state is happy, .",
        "The character's emotional state is happy,sad.",  # not ", "
        "The character's emotional state is happy; sad.",
        "The character's emotional state is happy, , sad.",
        "The character's emotional state is happy. He smiles.",  # trailing chatter
        "The character's emotional state is happy because she won the prize.",  # prose, not labels
        "The character's emotional state is happy..",
        "The character's emotional state is happy.###junk",
        "the character's emotional state is happy.",  # case of the trained prefix
        "The character\u2019s emotional state is happy.",
        "The character's emotional states are happy, sad.",
        "Happy, sad.",
        "The character's emotional state is 3.",
        "",
        None,
        42,
    ],
)
def test_label_sentence_rejects_anything_else(text):
    assert not is_label_sentence(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_label_sentence_never_raises(text):
    assert is_label_sentence(text) in (True, False)
    assert is_label_sentence("The character's emotional state is " + text) in (True, False)


VOCAB = [
    "happy",
    "joyful",
    "sad",
    "worried",
    "calm",
    "surprised",
    "disgust",
    "fear",
    "brave",
    "angry",
    "neutral",
    "xyzzy",
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(VOCAB), max_size=5), st.lists(st.sampled_from(VOCAB), max_size=5))
def test_ew_reward_is_the_dataset_metric_on_one_sample(wheel, pred, gt):
    """Cross-check with metrics.ew on a one-sample dataset: its per-wheel L1 F where the sample is scored."""
    result = ew_scores({"s": gt}, {"s": pred}, wheel)
    kept = [result.scores[f"W{w}-L1"] for w in WHEELS if result.scores[f"W{w}-L1"].n_scored == 1]
    reward = ew_reward(pred, gt, wheel)
    if not kept:
        assert reward is None
    else:
        assert reward == pytest.approx(sum(c.f1 for c in kept) / len(kept), abs=EXACT)

"""The label-list format (data/records.py) against the official rule as written in reference §5.3 (every expected
value is worked out by hand from that rule), plus the malformed-label detector the readers report with."""

from __future__ import annotations

import numpy as np
import pytest

from affectgpt.data.records import list_to_string, malformed_reason, string_to_list

# §5.3: drop one leading '[' and one trailing ']', split on any of ' " ,, strip each piece, drop empties.
OFFICIAL_CASES = [
    ("[a, b]", ["a", "b"]),
    ("a, b", ["a", "b"]),  # no brackets: the same labels
    ("['a', 'b']", ["a", "b"]),  # quotes are separators, so quoted lists parse alike
    ('["a", "b"]', ["a", "b"]),
    ("[happy]", ["happy"]),
    ("happy", ["happy"]),
    ("[very happy, sad]", ["very happy", "sad"]),  # inner spaces are kept
    ("[Happy, SAD]", ["Happy", "SAD"]),  # no lower-casing here (§5.3 step 2 does that)
    ("[ a ,b ]", ["a", "b"]),  # pieces are stripped
    ("[a,,b,]", ["a", "b"]),  # empty pieces are dropped
    ("[don't care]", ["don", "t care"]),  # an apostrophe splits the label (official quirk)
    ("[]", []),
    ("['']", []),
    ("[,]", []),
    # malformed shapes, parsed as the rule says (one bracket dropped at each end, at most)
    ("[happy", ["happy"]),
    ("happy]", ["happy"]),
    ("happy]]", ["happy]"]),
    ("[[happy, sad]]", ["[happy", "sad]"]),
    ("['a'", ["a"]),
    ("happy; sad", ["happy; sad"]),
    ("]happy[", ["]happy["]),  # only a leading '[' and a trailing ']' are dropped
]


@pytest.mark.parametrize("text, labels", OFFICIAL_CASES)
def test_string_to_list_follows_the_official_rule(text, labels):
    assert string_to_list(text) == labels


@pytest.mark.parametrize("missing", ["", None, float("nan"), np.float64("nan")])
def test_empty_and_missing_cells_give_no_labels(missing):
    assert string_to_list(missing) == []


def test_lists_and_arrays_pass_through():
    assert string_to_list(["happy", "sad"]) == ["happy", "sad"]
    assert string_to_list(("happy", "sad")) == ["happy", "sad"]
    assert string_to_list(np.array(["happy", "sad"])) == ["happy", "sad"]  # ndarray -> list
    assert string_to_list(np.array([], dtype=str)) == []
    # Ours also strips list items and drops blank ones; the official passes the list through, and its metric's
    # `.lower().strip()` plus dropping labels that map to "" (§5.3 steps 2-3) make the scores the same.
    assert string_to_list(["happy", "  ", " sad "]) == ["happy", "sad"]
    assert string_to_list(np.array(["a", ""])) == ["a"]


def test_non_text_scalars_are_stringified():
    assert string_to_list(1.5) == ["1.5"]
    assert string_to_list(3) == ["3"]


@pytest.mark.parametrize(
    "labels, text",
    [
        (["a", "b"], "[a, b]"),
        (["happy"], "[happy]"),
        ([], "[]"),
        (["very happy", "sad"], "[very happy, sad]"),
    ],
)
def test_list_to_string_is_the_official_form(labels, text):
    assert list_to_string(labels) == text
    assert string_to_list(list_to_string(labels)) == labels


@pytest.mark.parametrize(
    "text",
    [
        "[a, b]",
        "a, b",
        "['a', 'b']",
        '["a", "b"]',
        "[]",
        "",
        "happy",
        "[happy]",
        "  [a, b]  ",
        "[don't care]",
        "[very happy, sad]",
    ],
)
def test_well_formed_labels_are_not_flagged(text):
    assert malformed_reason(text) is None


@pytest.mark.parametrize("value", [None, float("nan"), ["a]", "[b"], np.array(["[a"]), 3])
def test_non_text_cells_are_never_malformed(value):
    assert malformed_reason(value) is None


@pytest.mark.parametrize(
    "text, reason",
    [
        ("[happy", "unbalanced brackets (1 '[' and 0 ']')"),
        ("happy]]", "unbalanced brackets (0 '[' and 2 ']')"),
        ("['a'", "unbalanced brackets (1 '[' and 0 ']')"),
        ("[[happy, sad]", "unbalanced brackets (2 '[' and 1 ']')"),
        ("[[happy, sad]]", "nested or repeated brackets"),
        ("[a], [b]", "nested or repeated brackets"),
        ("[happy] sad", "bracket left inside label 'happy] sad'"),
        ("happy [sad]", "bracket left inside label 'happy [sad'"),
        ("]happy[", "bracket left inside label ']happy['"),
        ("happy; sad", "separator ';' instead of ','"),
        ("[happy; sad]", "separator ';' instead of ','"),
        ("[happy | sad]", "separator '|' instead of ','"),
        ("[happy，sad]", "separator '，' instead of ','"),  # full-width comma
        ("[happy、sad]", "separator '、' instead of ','"),
        ("[happy, , sad]", "empty item"),
        ("[happy,]", "empty item"),
        ("[,happy]", "empty item"),
        ("happy,", "empty item"),
        ("['happy', '']", "empty item"),
        ("[,]", "empty item"),
    ],
)
def test_malformed_shapes_are_flagged_with_the_reason(text, reason):
    assert malformed_reason(text) == reason

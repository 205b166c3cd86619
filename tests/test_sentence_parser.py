"""The deterministic OV-label sentence parser used by per-epoch validation."""

from hypothesis import given, settings
from hypothesis import strategies as st

from affectgpt.labels.sentence import parse_label_sentence


def test_official_sentence() -> None:
    text = "The character's emotional state is excited, nervous, hopeful, supportive, encouraging."
    assert parse_label_sentence(text) == ["excited", "nervous", "hopeful", "supportive", "encouraging"]


def test_variants_case_quotes_and_separators() -> None:
    assert parse_label_sentence("the character\u2019s EMOTIONAL STATE IS Happy and Relieved") == ["happy", "relieved"]
    assert parse_label_sentence("The character's emotional states are: angry; sad / tired.") == [
        "angry",
        "sad",
        "tired",
    ]
    assert parse_label_sentence("The character's emotional state is 'worried', \"anxious\".###") == [
        "worried",
        "anxious",
    ]


def test_stops_at_sentence_end_and_stop_marker() -> None:
    text = "The character's emotional state is calm, content. He smiles because of good news, happy."
    assert parse_label_sentence(text) == ["calm", "content"]
    assert parse_label_sentence("The character's emotional state is sad###Human: more") == ["sad"]
    assert parse_label_sentence("The character's emotional state is sad\nsecond line, angry") == ["sad"]


def test_last_sentence_wins_and_duplicates_collapse() -> None:
    text = "Earlier the emotional state is bored. Finally, the character's emotional state is angry, Angry, tense."
    assert parse_label_sentence(text) == ["angry", "tense"]


def test_articles_and_hyphens() -> None:
    text = "The character's emotional state is a bit self-conscious, an anxious one, the very tired."
    assert parse_label_sentence(text) == ["bit self-conscious", "anxious one", "tired"]


def test_nothing_parses_gives_empty() -> None:
    assert parse_label_sentence("") == []
    assert parse_label_sentence(None) == []
    assert parse_label_sentence(42) == []
    assert parse_label_sentence("In the text, the caption reads: I am fine.") == []
    assert parse_label_sentence("The character's emotional state is") == []
    assert parse_label_sentence("The character's emotional state is .") == []
    assert parse_label_sentence("The character's emotional state isn't clear") == []


def test_prose_pieces_are_dropped() -> None:
    text = "The character's emotional state is happy, because she finally got the job she wanted"
    assert parse_label_sentence(text) == ["happy"]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(text: str) -> None:
    out = parse_label_sentence(text)
    assert isinstance(out, list) and all(isinstance(x, str) and x for x in out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.from_regex(r"[a-z]{3,10}", fullmatch=True), min_size=1, max_size=6, unique=True))
def test_roundtrip_of_training_targets(labels: list[str]) -> None:
    # Labels that are themselves separators or articles are not emotion words; keep the property honest.
    labels = [x for x in labels if x not in ("and", "the", "very")]
    sentence = f"The character's emotional state is {', '.join(labels)}."
    assert parse_label_sentence(sentence) == labels

"""The LLM extractor end to end with a tiny random Qwen2 and the real (offline-built) Qwen2.5 tokenizer."""

import shutil

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from affectgpt.labels.llm_extractor import (
    ExtractionResult,
    LLMExtractor,
    SentimentResult,
    openset_prompt,
    parse_sentiment,
    sentiment_prompt,
)
from affectgpt.labels.postprocess import official_postprocess, parse_llm_list
from affectgpt.labels.sentiment import SENTIMENTS
from affectgpt.resources.qwen_tokenizer import ensure_qwen25_tokenizer

DESCRIPTIONS = [
    "In the video, the man smiles broadly and his voice is cheerful; he seems happy and relaxed.",
    "She frowns.",
    "The woman is crying in the rain, her shoulders trembling; the subtitle says she lost her job, so she is sad "
    "and anxious.",
]


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """A local instruct-model folder: random 1-layer Qwen2 + the Qwen2.5 tokenizer with its chat template.

    initializer_range=1.0 makes the random model's answers depend on the prompt, so order mix-ups show."""
    folder = tmp_path_factory.mktemp("llm") / "tiny-qwen2.5-instruct"
    shutil.copytree(ensure_qwen25_tokenizer(), folder)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        initializer_range=1.0,
    )
    Qwen2ForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def extractor(tiny_llm):
    return LLMExtractor(tiny_llm, batch_size=2, max_new_tokens=8, backend="transformers", progress=False)


# The official toolkit/utils/qwen.py strings (AffectGPT @d961cab), written out here in full.
OFFICIAL_OPENSET = (
    "Please assume the role of an expert in the field of emotions. We provide clues that may be related to the "
    "emotions of the characters. Based on the provided clues, please identify the emotional states of the main "
    "character. The main character is the one with the most detailed clues. Please separate different emotional "
    "categories with commas and output only the clearly identifiable emotional categories in a list format. If "
    "none are identified, please output an empty list. Input: We cannot recognize his emotional state; Output: [] "
    "Input: His emotional state is happy, sad, and angry; Output: [happy, sad, angry] Input: He is smiling.; Output: "
)
S12 = " " * 12  # each backslash-newline joint of the official triple-quoted f-string keeps the next line's indent
OFFICIAL_SENTIMENT = (
    "Please act as an expert in the field of emotions. "
    + S12
    + "We provide a few words to describe the emotions of a character. "
    + S12
    + "Please choose the most likely sentiment from the given candidates: [positive, negative, neutral] "
    + S12
    + "Please direct output answer without analyzing process. "
    + S12
    + "Input: [joyful]; Output: positive "
    + S12
    + "Input: []; Output: neutral "
    + S12
    + "Input: [happy, excited]; Output: "
)
# Qwen's ChatML around one user message with add_generation_prompt=True and no system message (reference §6);
# the system turn is the template's default (here that of the offline-built tokenizer).
CHAT_OPEN = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
CHAT_CLOSE = "<|im_end|>\n<|im_start|>assistant\n"


def test_openset_prompt_is_the_official_string_word_for_word():
    assert openset_prompt("He is smiling.") == OFFICIAL_OPENSET
    # the description goes in verbatim (braces included: it is a value, not part of the template)
    assert openset_prompt("{x} [y]").endswith("Output: [happy, sad, angry] Input: {x} [y]; Output: ")


def test_sentiment_prompt_is_the_official_string_with_its_12_space_joints():
    assert sentiment_prompt("[happy, excited]") == OFFICIAL_SENTIMENT
    assert sentiment_prompt(["happy", "excited"]) == OFFICIAL_SENTIMENT  # a list is stored as "[a, b]" first
    assert sentiment_prompt([]).endswith(S12 + "Input: []; Output: ")


def test_chat_rendering_is_one_user_turn_with_default_system(extractor):
    text = extractor.render(openset_prompt("He is smiling."))
    assert text == CHAT_OPEN + OFFICIAL_OPENSET + CHAT_CLOSE
    assert extractor.render(sentiment_prompt("[happy, excited]")) == CHAT_OPEN + OFFICIAL_SENTIMENT + CHAT_CLOSE
    assert {151645, 151643} <= set(extractor._eos_ids())  # <|im_end|> and <|endoftext|> stop generation


def test_extract_end_to_end_greedy_is_deterministic_and_ordered(extractor):
    first = extractor.extract(DESCRIPTIONS)
    assert len(first) == len(DESCRIPTIONS)
    for result in first:
        assert isinstance(result, ExtractionResult)
        assert isinstance(result.raw, str) and result.raw
        assert result.text == official_postprocess(result.raw)
        assert (result.labels, result.ok) == parse_llm_list(result.raw)
        assert all(isinstance(label, str) and label == label.strip() and label for label in result.labels)
    # the random model answers differently per prompt, so a reordering would be visible
    assert len({r.raw for r in first}) == len(DESCRIPTIONS)
    second = extractor.extract(DESCRIPTIONS)
    assert [r.raw for r in second] == [r.raw for r in first]
    # batches are sorted by length internally; each answer must still land at its own description
    alone = [extractor.extract([d])[0].raw for d in DESCRIPTIONS]
    assert alone == [r.raw for r in first]
    reversed_run = extractor.extract(DESCRIPTIONS[::-1])
    assert [r.raw for r in reversed_run] == [r.raw for r in first][::-1]
    assert extractor.extract([]) == []


def test_generation_respects_max_new_tokens(extractor):
    raw = extractor.extract(DESCRIPTIONS[:1])[0].raw
    assert (
        len(extractor.tokenizer(raw, add_special_tokens=False)["input_ids"]) <= 8 + 2
    )  # re-tokenising may merge/split


def test_official_sampling_flag_sets_the_official_parameters_and_is_seeded(tiny_llm):
    sampler = LLMExtractor(tiny_llm, official_sampling=True, seed=3, backend="transformers", progress=False)
    assert (sampler.greedy, sampler.temperature, sampler.top_p) == (False, 0.7, 0.8)
    assert (sampler.repetition_penalty, sampler.max_new_tokens, sampler.batch_size) == (1.05, 512, 8)
    sampler.max_new_tokens = 4  # keep the test fast; the sampling parameters stay official
    first = [r.raw for r in sampler.extract(DESCRIPTIONS[:2])]
    assert [r.raw for r in sampler.extract(DESCRIPTIONS[:2])] == first


def test_sentiment_end_to_end(extractor):
    results = extractor.to_sentiment(["[happy, excited]", [], ["sad"]])
    assert len(results) == 3
    for result in results:
        assert isinstance(result, SentimentResult)
        if result.ok:
            assert result.sentiment in SENTIMENTS
        else:  # a random model rarely says positive/negative/neutral: the answer is kept, not replaced
            assert result.sentiment == official_postprocess(result.raw)
    assert [r.raw for r in extractor.to_sentiment(["[happy, excited]", [], ["sad"]])] == [r.raw for r in results]


@pytest.mark.parametrize(
    ("answer", "sentiment", "ok"),
    [
        ("positive", "positive", True),
        ("Output: Negative.", "negative", True),
        ("The sentiment is neutral", "neutral", True),
        ("  NEUTRAL\n", "neutral", True),
        ("negative, then positive", "negative", True),
        ("mixed", "mixed", False),
        ("Output:\nmixed feelings", "mixed feelings", False),
        ("", "", False),
    ],
)
def test_parse_sentiment(answer, sentiment, ok):
    result = parse_sentiment(answer)
    assert (result.sentiment, result.ok, result.raw) == (sentiment, ok, answer)


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Qwen2.5-7B-Instruct"):
        LLMExtractor(tmp_path / "models" / "Qwen2.5-7B-Instruct")


def test_bad_backend_is_rejected(tiny_llm):
    with pytest.raises(ValueError, match="backend"):
        LLMExtractor(tiny_llm, backend="onnx")


def test_extraction_cache_is_keyed_by_the_prompt_text(tmp_path, monkeypatch):
    """A changed extraction prompt must never reuse answers cached under the old one (the key holds its hash)."""
    from affectgpt.labels import extract

    before = extract.LabelExtractor("llm", cache_dir=tmp_path, llm_path=tmp_path / "llm")
    monkeypatch.setattr(extract, "OPENSET_PROMPT", extract.OPENSET_PROMPT.replace("main character", "speaker"))
    after = extract.LabelExtractor("llm", cache_dir=tmp_path, llm_path=tmp_path / "llm")
    assert before.signature != after.signature and before.cache.path != after.cache.path
    parser = extract.LabelExtractor("parser").signature
    monkeypatch.setattr(extract, "PARSER_VERSION", extract.PARSER_VERSION + 1)
    assert extract.LabelExtractor("parser").signature != parser

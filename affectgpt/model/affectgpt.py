"""The AffectGPT module: frozen encoders -> trainable heads -> tokens spliced into a LoRA LLM.

Official behaviour (reference §1.5, §3.4, §7.1): the placeholder ids (<MultiHere>, <AudioHere>,
<FaceHere>, <FrameHere>, <ImageHere>) are replaced by id 0 before the embedding lookup (the
embedding matrix is NOT resized) and the looked-up rows at their positions are replaced by the
modality tokens; each placeholder must appear exactly `num_*_query_token` times, contiguously.

Speed: Qwen2.5 has 151,936 vocabulary rows, so the loss runs the decoder for hidden states and
applies lm_head only at positions whose next-token label is a target (not -100). The value equals
Hugging Face's own causal-LM loss (mean cross-entropy over target tokens, fp32 logits); with the
frozen head the loss is also chunked over the vocabulary (model/fused_loss.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from transformers import GenerationConfig, StoppingCriteriaList, StopStringCriteria

from affectgpt.data.dataset import IGNORE_INDEX
from affectgpt.data.modes import (
    FEATURE_KEYS,
    PLACEHOLDER_STREAM,
    PLACEHOLDERS,
    get_mode,
)
from affectgpt.model.encoders import AudioEncoder, VisualEncoder
from affectgpt.model.fused_loss import output_cross_entropy
from affectgpt.model.fusion import ModalityHeads
from affectgpt.model.tokenizer import placeholder_ids

STOP_STRING = "###"  # official answers end with "###" (target text = answer + '###')
ANSWER_MARK = "Assistant:"  # official decoding keeps the text after the last one (if the model wrote any)
# Qwen2.5-7B-Instruct's generation_config.json stops on [<|im_end|>, <|endoftext|>] (151645, 151643), and the
# official generate inherits that list; taken from the tokenizer by token string. Other families: LLaMA-3's
# turn / text ends (its Instruct generation_config stops on both); Mistral's eos is the tokenizer's own </s>.
EOS_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>")
# The official call passes no top_k, so transformers 4.49 keeps the LLM folder's (Qwen2.5-7B-Instruct: 20):
# its generate() starts from model.generation_config and overrides only the passed keys. Sampling only.
OFFICIAL_TOP_K = 20
# batch key of raw media / of precomputed encoder features, per placeholder stream (face, frame, audio, image)
MEDIA_KEYS = {name: (stream, FEATURE_KEYS[stream]) for name, stream in PLACEHOLDER_STREAM.items()}


class PlaceholderError(ValueError):
    """A prompt whose placeholder tokens do not match the modality tokens to splice in."""


def _sample_name(names: list[str] | None, index: int) -> str:
    return f"sample {index} ({names[index]!r})" if names and index < len(names) else f"sample {index}"


def check_placeholders(mask: torch.Tensor, expected: int, token: str, names: list[str] | None = None) -> None:
    """Every row of `mask` [B, L] must hold exactly `expected` contiguous True positions."""
    counts = mask.sum(dim=1)
    first = mask.int().argmax(dim=1)
    last = mask.shape[1] - 1 - mask.flip(dims=[1]).int().argmax(dim=1)
    for i, (count, lo, hi) in enumerate(zip(counts.tolist(), first.tolist(), last.tolist())):
        if count != expected:
            raise PlaceholderError(
                f"{_sample_name(names, i)}: expected {expected} x {token} in the prompt, found {count}"
            )
        if hi - lo + 1 != expected:
            raise PlaceholderError(
                f"{_sample_name(names, i)}: the {expected} x {token} placeholders are not contiguous "
                f"(positions {lo}..{hi})"
            )


def splice_embeddings(
    input_ids: torch.Tensor,
    embedding: nn.Module,
    tokens: dict[int, torch.Tensor],
    all_placeholder_ids: dict[str, int],
    names: list[str] | None = None,
) -> torch.Tensor:
    """Token embeddings [B, L, D] with the rows at each placeholder id replaced by `tokens[id]` [B, n, D]."""
    id_to_token = {pid: PLACEHOLDERS[m] for m, pid in all_placeholder_ids.items()}
    is_placeholder = torch.zeros_like(input_ids, dtype=torch.bool)
    for pid in id_to_token:
        is_placeholder |= input_ids == pid
    embeds = embedding(input_ids.masked_fill(is_placeholder, 0))
    for pid, toks in tokens.items():
        mask = input_ids == pid
        check_placeholders(mask, toks.shape[1], id_to_token[pid], names)
        # masked_scatter fills positions in row-major order: sample 0's n tokens, then sample 1's, ...
        embeds = embeds.masked_scatter(mask.unsqueeze(-1), toks.to(embeds.dtype))
    return embeds


def left_pad(input_ids: torch.Tensor, keep: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's kept tokens to the right end (left padding, as batched generation needs)."""
    lengths = keep.sum(dim=1)
    width = int(lengths.max())
    out = torch.full((input_ids.shape[0], width), pad_id, dtype=input_ids.dtype, device=input_ids.device)
    mask = torch.zeros_like(out)
    for i in range(input_ids.shape[0]):
        n = int(lengths[i])
        out[i, width - n :] = input_ids[i][keep[i]]
        mask[i, width - n :] = 1
    return out, mask


def eos_token_ids(tokenizer: Any) -> list[int]:
    """The tokenizer's eos id and those of EOS_TOKENS that the vocabulary has, in that order, no repeats."""
    ids = [tokenizer.eos_token_id]
    unk = getattr(tokenizer, "unk_token_id", None)
    for token in EOS_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is not None and token_id != unk:
            ids.append(token_id)
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def generation_config(
    max_new_tokens: int, do_sample: bool, temperature: float, top_p: float, top_k: int, eos_ids: list[int], pad_id: int
) -> GenerationConfig:
    """Every decoding setting of the official call (§7.1), explicit, so none comes from the LLM folder.

    repetition/length penalty 1.0, one beam, min_length 1 (a no-op with inputs_embeds: HF counts the prompt
    toward it, in 4.49 as in 5.x), no forced bos/eos. Greedy leaves the sampling knobs unset (unused).
    """
    sampling = {"temperature": temperature, "top_p": top_p, "top_k": top_k} if do_sample else {}
    return GenerationConfig(
        do_sample=do_sample,
        max_new_tokens=max_new_tokens,
        min_length=1,
        num_beams=1,
        repetition_penalty=1.0,
        length_penalty=1.0,
        no_repeat_ngram_size=0,
        eos_token_id=list(eos_ids),
        pad_token_id=pad_id,
        num_return_sequences=1,
        **sampling,
    )


@contextlib.contextmanager
def blank_generation_config(lm: nn.Module) -> Iterator[None]:
    """Hide `lm.generation_config` during a call: transformers fills every setting our config leaves None
    (min_p, suppress_tokens, bad_words_ids, ...) from it, i.e. from the LLM folder's generation_config.json."""
    saved = lm.generation_config
    lm.generation_config = GenerationConfig()
    try:
        yield
    finally:
        lm.generation_config = saved


class AffectGPT(nn.Module):
    """AffectGPT: `forward(batch)` -> loss on target tokens; `generate(batch)` -> list of answers."""

    def __init__(
        self,
        llama_model: nn.Module,
        heads: ModalityHeads,
        tokenizer: Any,
        visual_encoder: VisualEncoder | None = None,
        audio_encoder: AudioEncoder | None = None,
        face_or_frame: str = "multiface_audio_face_text",
        loss_vocab_chunk: int = 2048,
    ) -> None:
        super().__init__()
        self.llama_model = llama_model  # PeftModel over the frozen causal LM (official attribute name)
        self.heads = heads
        self.visual_encoder = visual_encoder
        self.audio_encoder = audio_encoder
        self.tokenizer = tokenizer
        self.face_or_frame = face_or_frame
        self.loss_vocab_chunk = loss_vocab_chunk  # 0 = plain full-logit loss (model/fused_loss.py)
        self.placeholder_ids = placeholder_ids(tokenizer)
        self._stop_criteria: StopStringCriteria | None = None

    # --- pieces of the LLM -------------------------------------------------------------------
    @property
    def causal_lm(self) -> nn.Module:
        """The underlying *ForCausalLM (LoRA layers injected in place by peft)."""
        lm = self.llama_model
        return lm.get_base_model() if hasattr(lm, "get_base_model") else lm

    @property
    def device(self) -> torch.device:
        return self.causal_lm.get_input_embeddings().weight.device

    # --- multimodal tokens -------------------------------------------------------------------
    def _features(self, batch: dict[str, Any], stream: str, cache: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, T, D] features of 'face' | 'frame' | 'audio' | 'image': precomputed if given, else encoded."""
        if stream in cache:
            return cache[stream]
        media_key, feat_key = MEDIA_KEYS[stream]
        if batch.get(feat_key) is not None:
            feats = batch[feat_key].to(self.device, torch.float32)
        elif batch.get(media_key) is not None:
            encoder = self.audio_encoder if stream == "audio" else self.visual_encoder
            if encoder is None:
                raise ValueError(
                    f"batch has raw '{media_key}' but the model was built without its encoder; pass '{feat_key}'"
                )
            feats = encoder(batch[media_key].to(self.device))
        else:
            raise ValueError(
                f"the prompts need {stream} input but the batch has neither '{media_key}' nor '{feat_key}' "
                f"(samples: {batch.get('names')})"
            )
        cache[stream] = feats
        return feats

    def _multi_visual_stream(self) -> str:
        """ "face" or "frame": the visual stream the mode fuses with audio into <Multi> (affectgpt.data.modes)."""
        visual = get_mode(self.face_or_frame).multi_visual
        if visual is None:
            raise PlaceholderError(
                f"the prompts hold <MultiHere> but face_or_frame={self.face_or_frame!r} has no <Multi> token"
            )
        return next(name for name, stream in PLACEHOLDER_STREAM.items() if stream == visual)

    def modality_tokens(self, batch: dict[str, Any], input_ids: torch.Tensor) -> dict[int, torch.Tensor]:
        """{placeholder id: [B, n, llm_dim]} for every placeholder that occurs in `input_ids`."""
        ids = self.placeholder_ids
        present = torch.stack([(input_ids == pid).any() for pid in ids.values()]).tolist()
        needed = {m for m, p in zip(ids, present) if p}
        cache: dict[str, torch.Tensor] = {}
        tokens: dict[int, torch.Tensor] = {}
        for stream in ("frame", "face"):
            if stream in needed:
                tokens[ids[stream]] = self.heads.video_tokens(self._features(batch, stream, cache))
        if "audio" in needed:
            tokens[ids["audio"]] = self.heads.audio_tokens(self._features(batch, "audio", cache))
        if "multi" in needed:
            visual = self._features(batch, self._multi_visual_stream(), cache)
            tokens[ids["multi"]] = self.heads.multi_tokens(visual, self._features(batch, "audio", cache))
        if "image" in needed:  # one CLIP vector per image [B, 1, D] (batch key "image" / "image_feats")
            tokens[ids["image"]] = self.heads.image_tokens(self._features(batch, "image", cache))
        return tokens

    def embed(self, batch: dict[str, Any], input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Input embeddings [B, L, D] with the modality tokens spliced in."""
        input_ids = (batch["input_ids"] if input_ids is None else input_ids).to(self.device)
        tokens = self.modality_tokens(batch, input_ids)
        embedding = self.causal_lm.get_input_embeddings()
        return splice_embeddings(input_ids, embedding, tokens, self.placeholder_ids, batch.get("names"))

    # --- training ------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Mean cross-entropy over target tokens (labels != -100), as HF's causal-LM loss."""
        embeds = self.embed(batch)
        attention_mask = batch["attention_mask"].to(self.device)
        labels = batch["labels"].to(self.device)
        hidden = self.causal_lm.get_decoder()(
            inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        targets = labels[:, 1:]
        selected = targets != IGNORE_INDEX
        if not bool(selected.any()):
            raise ValueError(
                f"batch has no target tokens (every label is {IGNORE_INDEX}); samples: {batch.get('names')}"
            )
        head = self.causal_lm.get_output_embeddings()
        return output_cross_entropy(hidden[:, :-1][selected], head, targets[selected], self.loss_vocab_chunk)

    # --- inference -----------------------------------------------------------------------------
    def _stopping(self) -> StoppingCriteriaList:
        if self._stop_criteria is None:  # builds a vocabulary table once (~2 s for Qwen2.5)
            self._stop_criteria = StopStringCriteria(self.tokenizer, [STOP_STRING])
        return StoppingCriteriaList([self._stop_criteria])

    @torch.no_grad()
    def generate_ids(
        self,
        batch: dict[str, Any],
        max_new_tokens: int = 256,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 0.9,
        top_k: int = OFFICIAL_TOP_K,
    ) -> torch.Tensor:
        """[B, <= max_new_tokens] new token ids (rows that stopped early are padded with the pad id).

        Any padding in; target tokens, if labels are given, are dropped. Stops on the eos ids and on "###".
        Only the settings passed here (and the official constants) apply: see `generation_config`.
        """
        ids = batch["input_ids"].to(self.device)
        keep = batch["attention_mask"].to(self.device).bool()
        if batch.get("labels") is not None:
            keep &= batch["labels"].to(self.device) == IGNORE_INDEX
        pad_id = self.tokenizer.pad_token_id
        ids, attention_mask = left_pad(ids, keep, pad_id)
        embeds = self.embed(batch, ids)
        config = generation_config(
            max_new_tokens, do_sample, temperature, top_p, top_k, eos_token_ids(self.tokenizer), pad_id
        )
        with blank_generation_config(self.causal_lm):
            return self.llama_model.generate(
                inputs_embeds=embeds,
                attention_mask=attention_mask,
                generation_config=config,
                stopping_criteria=self._stopping(),
            )

    def generate(self, batch: dict[str, Any], **settings: Any) -> list[str]:
        """Answers for a batch of prompts: `generate_ids(batch, **settings)`, then cut at eos, cut at "###",
        strip (§7.1)."""
        return [self._postprocess(row) for row in self.generate_ids(batch, **settings).tolist()]

    def _postprocess(self, ids: list[int]) -> str:
        """Official decoding: cut at the first eos id, decode, cut at "###", keep what follows "Assistant:", strip."""
        eos = set(eos_token_ids(self.tokenizer))
        end = next((i for i, token in enumerate(ids) if token in eos), len(ids))
        text = self.tokenizer.decode(ids[:end], skip_special_tokens=True)
        return text.split(STOP_STRING)[0].split(ANSWER_MARK)[-1].strip()

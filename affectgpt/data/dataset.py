"""The torch Dataset (record -> prompt/target ids + decoded media) and the batch collator.

Tokenisation follows the official recipe (reference §3.4): prompt and target are tokenised
separately without special tokens, `input_ids = prompt ⧺ target`, `labels = [-100]*len(prompt) ⧺
target`; the collator adds bos/eos and pads. Two deliberate departures, both for trust:
- a bad sample is raised or skipped-and-counted, never silently replaced by a random other sample;
- the attention mask is built from lengths, so the appended eos (== pad id) stays visible.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from affectgpt.config import DataConfig, ModelConfig, check_section
from affectgpt.data import prompts
from affectgpt.data.feature_cache import FeatureCache
from affectgpt.data.media import load_sample_media
from affectgpt.data.modes import FEATURE_KEYS, PLACEHOLDERS, STREAMS, get_mode
from affectgpt.data.probe import probe_unused
from affectgpt.data.records import DataError, Record, SkipLog, with_streams

# Prompts and targets are tokenised once per distinct text; hybrid training has 4 per sample (2 prompts, 2 targets),
# so 2**17 entries hold all of MER-Caption+ (~80 MB per process, keyed by a 16-byte digest).
TOKEN_MEMO_ENTRIES = 2**17

IGNORE_INDEX = -100
# Decoded media, and precomputed frozen-encoder features (feature cache; the model then skips its encoders).
BATCH_STREAM_KEYS = STREAMS + tuple(FEATURE_KEYS[s] for s in STREAMS)


MediaLoader = Callable[[Record, DataConfig], dict[str, np.ndarray]]


class AffectDataset(Dataset):
    """One item per record: prompt/target token ids and the media streams the prompt uses.

    split "train": the target is the description, the OV-label sentence, or (hybrid) either one,
    drawn per access from an RNG seeded by (seed, epoch, index, access count), so draws do not
    depend on which DataLoader worker serves the item. Any other split asks `question` (default:
    the OV-label question); when that is the OV-label question, the OV-label answer (when known) is
    kept as `target` text/ids for scoring, otherwise the target is empty.
    """

    def __init__(
        self,
        records: list[Record],
        data_cfg: DataConfig,
        model_cfg: ModelConfig,
        tokenizer: Any,
        split: str = "train",
        seed: int = 42,
        skips: SkipLog | None = None,
        media_loader: MediaLoader | None = None,
        feature_cache: FeatureCache | None = None,
        question: str | None = None,
    ):
        check_section(data_cfg, "data")  # the load-time rules, for a DataConfig built in code
        self.mode = get_mode(model_cfg.face_or_frame)
        if question is not None and split == "train":
            raise ValueError("question= is for evaluation splits; training asks the question of data.label_type")
        if question is not None and not question.strip():
            raise ValueError("question is empty")
        self.question = question.strip() if question is not None else prompts.QUESTIONS["ovlabel"]
        self.records = list(records)
        self.data_cfg = data_cfg
        self.model_cfg = model_cfg
        self.tokenizer = tokenizer
        self.split = split
        self.seed = seed
        self.skips = skips if skips is not None else SkipLog()
        self.media_loader = media_loader if media_loader is not None else load_sample_media
        # With a feature cache, items carry cached "*_feats" instead of decoded media. Opening checks
        # the cache fingerprint against these configs and loads its index once (no per-item scans).
        if feature_cache is None and data_cfg.feature_cache:
            feature_cache = FeatureCache.open(data_cfg.feature_cache, model_cfg, data_cfg)
        absent = [s for s in self.mode.streams if feature_cache is not None and s not in feature_cache.streams]
        if absent:
            raise ValueError(
                f"feature cache {feature_cache.folder} holds {sorted(feature_cache.streams)}, not {absent}"
            )
        self.feature_cache = feature_cache
        self.n_query = prompts.n_query_from_config(model_cfg)
        self.epoch = 0
        self._accesses: Counter = Counter()
        self._token_memo: dict[bytes, np.ndarray] = {}  # digest(text) -> ids: every epoch re-asks the same texts
        self.media_index = self._media_pairing() if data_cfg.shuffle_media else list(range(len(self.records)))
        # every placeholder: the mode's repeat count, 0 for the others (placeholder text inside a subtitle)
        counts = prompts.placeholder_counts(self.mode.name, self.n_query)
        self._placeholder_counts: dict[int, int] = {}
        for key in PLACEHOLDERS:
            token_id = tokenizer.convert_tokens_to_ids(PLACEHOLDERS[key])
            if token_id is None or token_id == tokenizer.unk_token_id:
                raise ValueError(
                    f"tokenizer lacks {PLACEHOLDERS[key]}: build it with affectgpt.model.tokenizer.load_tokenizer"
                )
            self._placeholder_counts[token_id] = counts.get(key, 0)

    def _media_pairing(self) -> list[int]:
        """A fixed seeded single-cycle permutation: every sample gets another sample's media (n >= 2)."""
        order = list(range(len(self.records)))
        random.Random(f"shuffle_media:{self.seed}").shuffle(order)
        pairing = list(range(len(order)))
        for k, idx in enumerate(order):
            pairing[idx] = order[(k + 1) % len(order)]
        return pairing

    def set_epoch(self, epoch: int) -> None:
        """Change the hybrid-target draws for a new epoch and restart the per-index access counts, so a
        draw depends only on (seed, epoch, index, access within the epoch), not on earlier epochs.
        Workers hold copies of the dataset, so call it before creating the epoch's DataLoader iterator
        (not with persistent_workers)."""
        self.epoch = epoch
        self._accesses.clear()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        """The item dict, or None for a bad sample when on_error == "skip" (counted in `self.skips`;
        inside DataLoader workers that log is a per-worker copy, so the trainer should also count
        the collator's `n_dropped`)."""
        record = self.records[index]
        try:
            return self._build(index, record)
        except DataError as err:
            self.skips.absorb(err, self.data_cfg.on_error)
            return None

    # -- text -------------------------------------------------------------------------------------

    def _choose_label_type(self, index: int, record: Record) -> str:
        label_type = self.data_cfg.label_type
        if label_type in ("description", "hybrid") and not (record.description and record.description.strip()):
            raise DataError(f"no description (track3 reason) for label_type={label_type!r}", sample=record.name)
        if label_type != "hybrid":
            return label_type
        count = self._accesses[index]
        self._accesses[index] += 1
        rng = random.Random(f"hybrid:{self.seed}:{self.epoch}:{index}:{count}")
        return rng.choice(("description", "ovlabel"))

    def _text(self, index: int, record: Record) -> tuple[str, str, str]:
        """(prompt, target, label_type). Texts are the CSV cells verbatim (official: no strip), so the
        description is the target as is. Outside training the target is the official answer when the
        question is an official one whose ground truth the record has (`prompts.reference_answer`),
        else "" with label_type "question"."""
        if not isinstance(record.subtitle, str):
            raise DataError(f"subtitle is {type(record.subtitle).__name__}, not text", sample=record.name)
        style = self.data_cfg.prompt_style
        if self.split == "train":
            label_type = self._choose_label_type(index, record)
            answer = record.description if label_type == "description" else prompts.ovlabel_answer(record.ovlabels)
            target = prompts.build_target(answer, style)
            question = prompts.QUESTIONS[label_type]
        else:
            question = self.question
            known = prompts.reference_answer(question, record)
            label_type, target = (known[0], prompts.build_target(known[1], style)) if known else ("question", "")
        prompt = prompts.build_prompt(
            self.model_cfg.face_or_frame, record.subtitle, question, self.n_query, style, self.tokenizer
        )
        return prompt, target, label_type

    def _ids(self, text: str) -> list[int]:
        if not text:
            return []
        key = hashlib.blake2b(text.encode(), digest_size=16).digest()
        ids = self._token_memo.get(key)
        if ids is None:
            if len(self._token_memo) >= TOKEN_MEMO_ENTRIES:
                self._token_memo.clear()
            ids = np.asarray(self.tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int32)
            self._token_memo[key] = ids
        return ids.tolist()

    # -- media ------------------------------------------------------------------------------------

    def _media(self, media_record: Record) -> dict[str, np.ndarray]:
        """Decode only the streams the mode's prompt uses (or read their cached features: the cache
        holds exactly these streams, checked in __init__); a mode without media reads nothing."""
        needed = self.mode.streams
        trimmed = with_streams(media_record, needed, f", needed by face_or_frame={self.mode.name!r}")
        if self.feature_cache is not None:  # (the cache build probed the files the mode does not decode)
            return self.feature_cache.features(media_record) if needed else {}
        probe_unused(media_record, needed, self.mode.name)  # a corrupt file is reported, even if not decoded
        if not needed:
            return {}
        media = self.media_loader(trimmed, self.data_cfg)
        absent = [key for key in needed if key not in media]
        if absent:
            raise DataError(f"media loader returned no {', '.join(absent)}", sample=media_record.name)
        return {key: media[key] for key in needed}

    # -- item -------------------------------------------------------------------------------------

    def _build(self, index: int, record: Record) -> dict[str, Any]:
        prompt, target, label_type = self._text(index, record)
        prompt_ids, target_ids = self._ids(prompt), self._ids(target)
        for token_id, n in self._placeholder_counts.items():
            if prompt_ids.count(token_id) != n:
                raise DataError(
                    f"prompt has {prompt_ids.count(token_id)} x {self.tokenizer.convert_ids_to_tokens(token_id)}, "
                    f"expected {n} (placeholder text inside the subtitle?)",
                    sample=record.name,
                )
        total = len(prompt_ids) + len(target_ids)
        if total > self.model_cfg.max_length:
            raise DataError(
                f"prompt+target is {total} tokens (prompt {len(prompt_ids)}, target {len(target_ids)}), "
                f"over model.max_length={self.model_cfg.max_length}",
                sample=record.name,
            )
        media_record = self.records[self.media_index[index]]
        item: dict[str, Any] = {
            "name": record.name,
            "media_name": media_record.name,
            "label_type": label_type,
            "prompt": prompt,
            "target": target,
            "prompt_ids": prompt_ids,
            "target_ids": target_ids,
            "input_ids": prompt_ids + target_ids,
            "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids,
        }
        item.update(self._media(media_record))
        return item


class Collator:
    """Pads a list of dataset items (None = skipped sample, dropped and counted) into a batch.

    Training (left_pad=False): official layout `bos ⧺ prompt ⧺ target ⧺ eos`, labels `-100 ⧺ -100*prompt
    ⧺ target ⧺ eos`, right padding with pad (= eos) / -100. The chatml style already starts with
    <|im_start|> and ends its target with <|im_end|>, so nothing is added there. attention_mask is 1
    on every real token; the official mask (`ids != pad`) also hides the appended eos since pad ==
    eos, which we do not reproduce.
    Generation (left_pad=True): prompt ids only, no bos (as official inference), left padding.
    """

    def __init__(
        self,
        tokenizer: Any,
        pad_to_multiple_of: int | None = None,
        left_pad: bool = False,
        prompt_style: str = "official",
    ):
        if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None or tokenizer.bos_token_id is None:
            raise ValueError(
                "the tokenizer needs bos, eos and pad tokens (use affectgpt.model.tokenizer.load_tokenizer)"
            )
        self.pad_id = tokenizer.pad_token_id
        self.bos_id = tokenizer.bos_token_id
        self.eos_id = tokenizer.eos_token_id
        self.pad_to_multiple_of = pad_to_multiple_of
        self.left_pad = left_pad
        self.add_bos_eos = prompt_style == "official"

    def _width(self, lengths: list[int]) -> int:
        width = max(lengths, default=0)
        m = self.pad_to_multiple_of
        return -(-width // m) * m if m else width

    def _sequences(self, items: list[dict[str, Any]]) -> tuple[list[list[int]], list[list[int]] | None]:
        if self.left_pad:
            return [list(it["prompt_ids"]) for it in items], None
        if self.add_bos_eos:
            ids = [[self.bos_id, *it["input_ids"], self.eos_id] for it in items]
            labels = [[IGNORE_INDEX, *it["labels"], self.eos_id] for it in items]
        else:
            ids = [list(it["input_ids"]) for it in items]
            labels = [list(it["labels"]) for it in items]
        return ids, labels

    def __call__(self, batch: list[dict[str, Any] | None]) -> dict[str, Any]:
        items = [it for it in batch if it is not None]
        ids, labels = self._sequences(items)
        width = self._width([len(seq) for seq in ids])
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        label_tensor = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        for row, seq in enumerate(ids):
            span = slice(width - len(seq), width) if self.left_pad else slice(0, len(seq))
            input_ids[row, span] = torch.tensor(seq, dtype=torch.long)
            attention_mask[row, span] = 1
            if labels is not None:
                label_tensor[row, span] = torch.tensor(labels[row], dtype=torch.long)
        out: dict[str, Any] = {
            "names": [it["name"] for it in items],
            "n_dropped": len(batch) - len(items),
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "targets": [it["target"] for it in items],
            "label_types": [it["label_type"] for it in items],
        }
        if labels is not None:
            out["labels"] = label_tensor
        out.update(self._stack_media(items))
        return out

    @staticmethod
    def _stack_media(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """frames/faces uint8 [B,8,224,224,3], image uint8 [B,1,224,224,3], audio float32 [B,8,32000],
        cached *_feats float32 [B,T,D]; every item must agree."""
        out = {}
        for key in BATCH_STREAM_KEYS:
            have = [key in it for it in items]
            if not any(have):
                continue
            if not all(have):
                names = [it["name"] for it in items if key not in it]
                raise ValueError(f"batch mixes samples with and without {key!r}: missing in {names}")
            if isinstance(items[0][key], torch.Tensor):
                out[key] = torch.stack([it[key] for it in items])
            else:
                out[key] = torch.from_numpy(np.stack([np.asarray(it[key]) for it in items]))
        return out

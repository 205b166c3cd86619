"""Modality ablation at inference (the paper's Table 6 from one trained model): what each variant feeds the model.

- `--drop audio`: the audio stream is zeros (raw waveform [B, 8, 32000], or cached HuBERT features) — the
  model still gets its audio tokens, computed from silence / zero features.
- `--drop face` / `--drop frame`: the face crops / video frames (or their cached CLIP features; `frame` also
  covers a still image) are zeros, so the visual tokens carry no content.
- `--drop text`: the subtitle is the empty string (the prompt keeps its template, with no subtitle text).
- `--shuffle-media`: each sample gets the video, audio, faces and image of another sample (a seeded
  derangement of the record set), with its own subtitle: media-text mismatch rather than missing media.
  Media are then decoded from the files (the feature cache is keyed by sample name).
Zeroing keeps every tensor shape and token count, so only the content changes; several drops combine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from affectgpt.data.modes import FEATURE_KEYS
from affectgpt.data.records import MEDIA_ATTR, Record

DROPS = ("audio", "face", "frame", "text")
_STREAMS = {"audio": ("audio",), "face": ("faces",), "frame": ("frames", "image")}
_MEDIA_FIELDS = tuple(MEDIA_ATTR.values())  # Record attributes holding media paths


@dataclass(frozen=True)
class Ablation:
    drop: tuple[str, ...] = ()
    shuffle_media: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [d for d in self.drop if d not in DROPS]
        if bad:
            raise ValueError(f"--drop {','.join(bad)}: expected one or more of {', '.join(DROPS)}")

    @property
    def active(self) -> bool:
        return bool(self.drop or self.shuffle_media)

    @property
    def label(self) -> str:
        """Suffix of the result folder ('' for the full model): drop-audio, drop-audio+text, shuffle-media."""
        parts = ["drop-" + "+".join(sorted(self.drop))] if self.drop else []
        return "-".join(parts + (["shuffle-media"] if self.shuffle_media else []))

    def to_dict(self) -> dict[str, Any]:
        return {"drop": sorted(self.drop), "shuffle_media": self.shuffle_media, "seed": self.seed}

    def records(self, records: list[Record]) -> list[Record]:
        """Copies with the subtitle emptied (drop text) and media of another sample (shuffle); names unchanged."""
        out = [dataclasses.replace(r, subtitle="") if "text" in self.drop else r for r in records]
        if self.shuffle_media and len(out) > 1:
            order = np.random.default_rng(self.seed).permutation(len(out))
            donor = {int(order[i]): int(order[(i + 1) % len(out)]) for i in range(len(out))}  # no fixed point
            out = [
                dataclasses.replace(r, **{f: getattr(records[donor[i]], f) for f in _MEDIA_FIELDS})
                for i, r in enumerate(out)
            ]
        return out

    def batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The collated batch with the dropped streams (raw or cached features) set to zeros of the same shape."""
        keys = [k for d in self.drop for s in _STREAMS.get(d, ()) for k in (s, FEATURE_KEYS[s])]
        return {k: torch.zeros_like(v) if k in keys and isinstance(v, torch.Tensor) else v for k, v in batch.items()}

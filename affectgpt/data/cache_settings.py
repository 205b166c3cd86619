"""What produced a feature cache's numbers: the settings spec, its fingerprint, and the per-shard check.

Split from affectgpt.data.feature_cache so the safety rule "a feature is only read under the settings that made
it" lives in one small module: `cache_spec` lists everything that determines the cached numbers, `fingerprint`
hashes it, and `shard_fingerprint_problem` reads a shard's own safetensors header (so the check does not depend
on meta.json surviving).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from affectgpt.data.modes import FEATURE_KEYS, get_mode

# Bump when encoder pre/post-processing code changes the numbers (old caches are then refused).
# 2: HuBERT's 4th averaged state is the post-final-LayerNorm one (the official transformers-4.49 convention).
CODE_VERSION = 2
# Bump when frame / face / audio-clip sampling rules in affectgpt.data.media change.
# 2: official audio clip starts (exact Fraction arithmetic), per-clip mean removal, resample-then-average channels,
#    cv2 face resize; images resized by PIL (bicubic).
SAMPLING_RULE_VERSION = 2
TINY = "tiny"
TINY_SEED = 0  # affectgpt.model.build.SEED: the tiny encoders are seeded with it


# --- fingerprint ---------------------------------------------------------------------------------
def _encoder_spec(model_cfg: Any, role: str) -> dict[str, Any]:
    value = getattr(model_cfg, role)
    # The class choice (model.visual_encoder / model.audio_encoder) and, for audio, the layers averaged.
    choice = (
        {"encoder": model_cfg.visual_encoder}
        if role == "clip"
        else {"encoder": model_cfg.audio_encoder, "layers": model_cfg.audio_layers}
    )
    if value == TINY:
        sizes = ("tiny_encoder_hidden", "tiny_encoder_layers") + (("tiny_clip_projection",) if role == "clip" else ())
        return {"kind": TINY, "seed": TINY_SEED, **choice, **{k: getattr(model_cfg, k) for k in sizes}}
    folder = Path(value).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model.{role}={value!r}: no config.json in {folder}; cannot fingerprint the encoder")
    files = {}
    for name in ("config.json", "preprocessor_config.json"):
        if (folder / name).is_file():
            files[name] = json.loads((folder / name).read_text(encoding="utf-8"))
    return {"kind": "folder", **choice, "path": str(folder), "files": files}


def cache_spec(model_cfg: Any, data_cfg: Any) -> dict[str, Any]:
    """Everything that determines the cached numbers (hashed into the fingerprint). The streams are
    exactly the ones the face_or_frame mode reads (affectgpt.data.modes)."""
    return {
        "code_version": CODE_VERSION,
        "sampling_rule_version": SAMPLING_RULE_VERSION,
        "streams": {stream: FEATURE_KEYS[stream] for stream in get_mode(model_cfg.face_or_frame).streams},
        "clip": _encoder_spec(model_cfg, "clip"),
        "hubert": _encoder_spec(model_cfg, "hubert"),
        "preprocessing": {
            k: getattr(data_cfg, k)
            for k in ("n_frames", "image_size", "face_channel_order", "n_audio_clips", "clip_seconds", "sample_rate")
        },
    }


def fingerprint(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def describe_mismatch(old: dict[str, Any], new: dict[str, Any]) -> str:
    a, b = _flatten(old), _flatten(new)
    diffs = [
        f"{k}: cache has {a.get(k, '<absent>')!r}, now {b.get(k, '<absent>')!r}"
        for k in sorted(a.keys() | b.keys())
        if a.get(k) != b.get(k)
    ]
    return "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")


def shard_fingerprint_problem(path: Path, spec: dict[str, Any]) -> str | None:
    """Why the shard's own header does not vouch for the settings `spec` (None when it does).

    A safetensors file starts with an 8-byte little-endian header length and that many bytes of JSON, whose
    `__metadata__` holds our fingerprint (and spec); read directly, so no mmap or tensor is touched."""
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if not 0 < length <= 100_000_000:
                return f"unreadable safetensors header (length {length})"
            metadata = json.loads(handle.read(length)).get("__metadata__") or {}
    except (OSError, ValueError, AttributeError) as err:
        return f"unreadable safetensors header ({type(err).__name__}: {err})"
    found = metadata.get("fingerprint")
    if found is None:
        return "shard has no settings fingerprint in its metadata (written by an unknown tool or version)"
    if found == fingerprint(spec):
        return None
    try:
        detail = describe_mismatch(json.loads(metadata["spec"]), spec)
    except (KeyError, ValueError, TypeError, AttributeError):
        detail = "its fingerprint differs"
    return f"shard was built with other settings ({detail})"

"""Single-clip inference: `infer.py --ckpt CKPT --video clip.mp4 [--audio a.wav] [--face f.npy] [--subtitle "..."]`,
and single images: `infer.py --ckpt CKPT --image photo.jpg` (face_or_frame="image").

The clip becomes an ordinary `Record` and goes through the same generation as a dataset, with
on_error="raise" so a bad file stops with its reason instead of being skipped. Without --audio the
video's own sound track is used; without --face the model reads frames (see runner.frame_fallback).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from affectgpt.data.records import DataError, Record
from affectgpt.infer.generate import GenerationSettings, generate_responses


def clip_record(
    video: str | Path, audio: str | Path | None = None, face: str | Path | None = None, subtitle: str = ""
) -> Record:
    """A record for one clip; every given file must exist."""
    video = Path(video)
    paths = {"video": video, "audio": Path(audio) if audio else video, "face": Path(face) if face else None}
    for kind, path in paths.items():
        if path is not None and not path.is_file():
            raise DataError(f"{kind} file not found", sample=video.stem, path=path)
    return Record(name=video.stem, dataset="clip", subtitle=subtitle or "", **paths)


def image_record(image: str | Path) -> Record:
    """A record for one still image (the "image" mode's prompt holds nothing else); the file must exist."""
    image = Path(image)
    if not image.is_file():
        raise DataError("image file not found", sample=image.stem, path=image)
    return Record(name=image.stem, dataset="image", image=image)


def answer_clip(
    model: Any,
    tokenizer: Any,
    cfg: Any,
    record: Record,
    question: str,
    settings: GenerationSettings,
    autocast: Any = None,
) -> str:
    """The model's answer for one clip; raises DataError naming the file when its media cannot be read."""
    cfg.data.on_error = "raise"
    single = GenerationSettings(**{**settings.to_dict(), "batch_size": 1})
    answers = generate_responses(model, [record], cfg, tokenizer, single, question=question, autocast=autocast)
    return answers[record.name]

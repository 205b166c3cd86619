"""The one `face_or_frame` table: what each official input mode puts in the prompt and which media it reads.

The official code supports 15 modes (reference "Corrections and additions (2026-12)"; paper Table 6 ablates
them); each is one frozen `Mode` row here, and every other module asks this table (prompt text, media
to decode, feature-cache streams, the <Multi> visual stream, the frame fallback) instead of deciding
on its own. Media streams are named as `affectgpt.data.media.load_sample_media` returns them.

Training and inference on datasets work with every video mode. The "image" mode needs `Record.image`,
which no dataset reader fills: it is for single images (`infer.py --image photo.jpg`).
"""

from __future__ import annotations

import string
import typing
from dataclasses import dataclass

from affectgpt.config import FaceOrFrame
from affectgpt.data.records import STREAMS as STREAM_TABLE

STREAMS = tuple(STREAM_TABLE)  # "faces", "frames", "audio", "image"
# Cached frozen-encoder output per stream (feature cache and batch key), float32 [T, D] per sample.
FEATURE_KEYS = {name: s.feature_key for name, s in STREAM_TABLE.items()}
# The AffectGPT modality placeholders, added to the tokenizer as special tokens after the base vocabulary
# (affectgpt.model.tokenizer); the model splices each modality token in at its placeholder.
PLACEHOLDERS = {
    "image": "<ImageHere>",
    "audio": "<AudioHere>",
    "frame": "<FrameHere>",
    "face": "<FaceHere>",
    "multi": "<MultiHere>",
}
# Placeholder (PLACEHOLDERS) -> the stream whose token replaces it; <Multi> fuses two.
PLACEHOLDER_STREAM = {s.placeholder: name for name, s in STREAM_TABLE.items()}

# Official prompt segments, verbatim. {face} etc. become the placeholder token repeated num_*_query_token
# times; {subtitle} is the CSV cell as is. The question segment (QUESTION_SEGMENT) always ends the prompt.
SEGMENTS = {
    "multi": "The audio and video merged info is: <Multi>{multi}</Multi>. ",
    "audio": "The audio content is as follows: <Audio>{audio}</Audio>. ",
    "face": "Meanwhile, we uniformly sample raw frames from the video and extract faces from these frames: "
    "<Video>{face}</Video>. ",
    "frame": "Meanwhile, we uniformly sample raw frames from the video: <Video>{frame}</Video>. ",
    "face_additionally": "Additionally, we uniformly sample raw frames from the video and extract faces from these "
    "frames: <Video>{face}</Video>. ",
    "face_alone": "We uniformly sample raw frames from the video and extract faces from these frames: "
    "<Video>{face}</Video>. ",
    "frame_alone": "We uniformly sample raw frames from the video: <Video>{frame}</Video>. ",
    "frame_alone_lower": "we uniformly sample raw frames from the video: <Video>{frame}</Video>. ",  # official case
    "image": "The image content is as follows: <Image>{image}</Image>. ",
    "subtitle": "The subtitle of this video is: <Subtitle>{subtitle}</Subtitle>. ",
}
QUESTION_SEGMENT = "Now, please answer my question based on all the provided information. {question}"
HUMAN_PREFIX = "###Human: "


@dataclass(frozen=True)
class Mode:
    name: str
    segments: tuple[str, ...]  # SEGMENTS keys in official prompt order
    streams: tuple[str, ...]  # media streams the prompt reads (and the feature cache stores)
    multi_visual: str | None = None  # visual stream fused with audio into the <Multi> token; None: no <Multi>
    # The official mode reading frames where this one reads faces, for clips without face crops (infer.py
    # without --face; faces and frames share the video weights). None: no such mode (faceframe and the
    # face+frame mode already read frames beside faces; multiface_text has no frame counterpart).
    frame_twin: str | None = None
    human_prefix: bool = True  # the official prompt starts with "###Human: " (not the three *_text ablations)

    @property
    def placeholders(self) -> tuple[str, ...]:
        """Placeholder names ("multi", "audio", "face", ...) in prompt order."""
        fields = (f for key in self.segments for _, f, _, _ in string.Formatter().parse(SEGMENTS[key]))
        return tuple(f for f in fields if f and f != "subtitle")


MODES: dict[str, Mode] = {
    mode.name: mode
    for mode in (
        Mode("faceframe", ("audio", "frame", "face_additionally", "subtitle"), ("audio", "frames", "faces")),
        Mode("face", ("audio", "face", "subtitle"), ("audio", "faces"), frame_twin="frame"),
        Mode("frame", ("audio", "frame", "subtitle"), ("audio", "frames")),
        Mode("audioonly", ("audio",), ("audio",)),
        Mode("textonly", ("subtitle",), ()),
        Mode("faceonly", ("face_alone",), ("faces",), frame_twin="frameonly"),
        Mode("frameonly", ("frame_alone",), ("frames",)),
        Mode("image", ("image",), ("image",)),
        Mode("audio_text", ("audio", "subtitle"), ("audio",), human_prefix=False),
        Mode("face_text", ("face_alone", "subtitle"), ("faces",), frame_twin="frame_text", human_prefix=False),
        Mode("frame_text", ("frame_alone_lower", "subtitle"), ("frames",), human_prefix=False),
        Mode("multiface_text", ("multi", "subtitle"), ("faces", "audio"), multi_visual="faces"),
        Mode(
            "multiface_audio_face_text",
            ("multi", "audio", "face", "subtitle"),
            ("faces", "audio"),
            multi_visual="faces",
            frame_twin="multiframe_audio_frame_text",
        ),  # the official headline recipe
        Mode(
            "multiframe_audio_frame_text",
            ("multi", "audio", "frame", "subtitle"),
            ("frames", "audio"),
            multi_visual="frames",
        ),
        Mode(
            "multiface_audio_face_frame_text",
            ("multi", "audio", "face", "frame", "subtitle"),
            ("faces", "frames", "audio"),
            multi_visual="faces",
        ),
    )
}


if set(MODES) != set(typing.get_args(FaceOrFrame)):  # the config's choices and this table must name the same modes
    raise RuntimeError(
        f"affectgpt.data.modes and config.FaceOrFrame disagree: {set(MODES) ^ set(typing.get_args(FaceOrFrame))}"
    )


def get_mode(face_or_frame: str) -> Mode:
    """The table row of `face_or_frame`; a clear error listing the supported modes otherwise."""
    mode = MODES.get(face_or_frame)
    if mode is None:
        raise ValueError(f"Unsupported face_or_frame {face_or_frame!r}; supported: {', '.join(MODES)}.")
    return mode


def without_faces(face_or_frame: str) -> str:
    """The mode to run when no face crops exist: the mode itself when it reads none, else its frame twin."""
    mode = get_mode(face_or_frame)
    if "faces" not in mode.streams:
        return mode.name
    if mode.frame_twin is None:
        raise ValueError(f"face_or_frame={mode.name!r} reads face crops and has no frame-reading twin: give face crops")
    return mode.frame_twin

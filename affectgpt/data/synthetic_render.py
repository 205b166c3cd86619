"""Rendering of one synthetic sample: frames, face crops, audio and the description text.

The generative rules are documented in affectgpt/data/synthetic.py (the dataset writer); this module
holds the cue tables and the pure rendering functions, so each can be read and tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

EMOTIONS = ("happy", "excited", "sad", "lonely", "angry", "annoyed", "worried", "scared", "surprised", "disgusted")
SECONDARY = {
    "happy": ("excited", "surprised"),
    "excited": ("happy", "surprised"),
    "sad": ("lonely", "worried"),
    "lonely": ("sad",),
    "angry": ("annoyed", "disgusted"),
    "annoyed": ("angry", "disgusted"),
    "worried": ("scared", "sad"),
    "scared": ("worried", "surprised"),
    "surprised": ("excited", "happy"),
    "disgusted": ("annoyed", "angry"),
}
FPS, N_FRAMES, SIZE, N_FACES, SECONDS, SAMPLE_RATE = 8, 24, 112, 12, 3.0, 16000
# Bump when the rules change, so ensure_demo_dataset regenerates old folders.
# 2: MELD audio in subaudio/, IEMOCAP audio in audio/ (the official releases' folder names).
VERSION = 2


@dataclass(frozen=True)
class Cue:
    colour: tuple[int, int, int]
    colour_word: str
    shape: str
    shape_colour: tuple[int, int, int]
    shape_word: str
    motion: str  # linear | shake | circle | tremble | grow | static
    motion_args: tuple[float, float]
    motion_phrase: str
    pitch: float  # Hz
    tempo: float  # beeps per second (0 = steady)
    loudness: float
    sound_phrase: str
    overtone: float  # Hz, used when this emotion is a secondary label


CUES = {
    "happy": Cue(
        (240, 210, 40),
        "warm yellow",
        "circle",
        (255, 255, 255),
        "a white circle",
        "linear",
        (0, -3),
        "bounces upward quickly",
        800,
        4,
        0.55,
        "a high-pitched tone in quick, bright beeps",
        2000,
    ),
    "excited": Cue(
        (250, 110, 20),
        "bright orange",
        "cross",
        (255, 255, 255),
        "a white cross",
        "linear",
        (4, -4),
        "darts diagonally at high speed",
        950,
        6,
        0.7,
        "a very high tone in rapid, loud beeps",
        2170,
    ),
    "sad": Cue(
        (20, 40, 150),
        "deep blue",
        "hbar",
        (160, 170, 200),
        "a pale bar",
        "linear",
        (0, 1),
        "sinks slowly downward",
        200,
        1,
        0.25,
        "a very low, quiet tone in slow beeps",
        2340,
    ),
    "lonely": Cue(
        (110, 60, 170),
        "muted purple",
        "ring",
        (200, 190, 220),
        "a hollow ring",
        "linear",
        (-1, 0),
        "drifts slowly to the left",
        240,
        1,
        0.2,
        "a low, faint tone in sparse beeps",
        2510,
    ),
    "angry": Cue(
        (200, 20, 20),
        "harsh red",
        "square",
        (20, 20, 20),
        "a black square",
        "shake",
        (7, 0),
        "shakes violently from side to side",
        400,
        5,
        0.7,
        "a mid-low tone in loud, hammering beeps",
        2680,
    ),
    "annoyed": Cue(
        (150, 70, 40),
        "dull brown",
        "triangle",
        (230, 200, 160),
        "a beige triangle",
        "linear",
        (2, 0),
        "jerks to the right",
        340,
        4,
        0.45,
        "a mid-low tone in clipped, insistent beeps",
        2850,
    ),
    "worried": Cue(
        (60, 140, 140),
        "murky teal",
        "diamond",
        (230, 230, 230),
        "a light diamond",
        "circle",
        (14, 0),
        "circles restlessly",
        475,
        3,
        0.35,
        "a wavering mid tone in uneasy beeps",
        3020,
    ),
    "scared": Cue(
        (20, 20, 20),
        "near-black",
        "vbar",
        (220, 220, 220),
        "a thin pale bar",
        "tremble",
        (3, 0),
        "trembles in place",
        565,
        6,
        0.5,
        "a high, tense tone in rapid beeps",
        3190,
    ),
    "surprised": Cue(
        (240, 100, 200),
        "vivid pink",
        "xshape",
        (255, 255, 255),
        "a white X",
        "grow",
        (1.6, 0),
        "pops out and grows fast",
        670,
        2,
        0.6,
        "a high tone in sudden, loud bursts",
        3360,
    ),
    "disgusted": Cue(
        (90, 150, 30),
        "sickly olive green",
        "dots",
        (60, 40, 20),
        "a cluster of dark dots",
        "linear",
        (-2, 2),
        "slides away down-left",
        285,
        2,
        0.35,
        "a low, nasal tone in sluggish beeps",
        3530,
    ),
    "neutral": Cue(
        (128, 128, 128),
        "plain grey",
        "square",
        (100, 100, 100),
        "a grey square",
        "static",
        (0, 0),
        "stays still",
        160,
        0,
        0.3,
        "a steady, soft mid tone",
        1800,
    ),
}
NEUTRAL_SUBTITLES = (
    ("I went to the station this morning.", "我今天早上去了车站。"),
    ("The meeting starts at three o'clock.", "会议三点开始。"),
    ("We walked along the river to the bridge.", "我们沿着河走到了桥边。"),
    ("She put the books back on the shelf.", "她把书放回了书架上。"),
    ("The bus stops in front of the library.", "公交车停在图书馆前面。"),
    ("He bought some bread and milk.", "他买了一些面包和牛奶。"),
    ("The window faces the street.", "窗户朝着街道。"),
    ("They moved the table into the kitchen.", "他们把桌子搬进了厨房。"),
    ("I will call you after lunch.", "我午饭后给你打电话。"),
    ("The train was on time today.", "今天火车准点。"),
    ("My brother lives on the fifth floor.", "我哥哥住在五楼。"),
    ("We need two more chairs for the room.", "这个房间还需要两把椅子。"),
)


@dataclass(frozen=True)
class Spec:
    name: str
    primary: str
    secondary: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        return [self.primary, *self.secondary]


# ---------------------------------------------------------------- rendering


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    ax, ay, d2 = np.abs(dx), np.abs(dy), dx * dx + dy * dy
    if shape == "circle":
        return d2 <= r * r
    if shape == "ring":
        return (d2 <= r * r) & (d2 >= (r * 0.55) ** 2)
    if shape == "square":
        return (ax <= r) & (ay <= r)
    if shape == "diamond":
        return ax + ay <= r
    if shape == "cross":
        return ((ax <= r / 3) & (ay <= r)) | ((ay <= r / 3) & (ax <= r))
    if shape == "xshape":
        return (np.abs(ax - ay) <= r / 3) & (ax <= r)
    if shape == "hbar":
        return (ax <= r * 1.3) & (ay <= r / 3)
    if shape == "vbar":
        return (ax <= r / 4) & (ay <= r * 1.3)
    if shape == "triangle":
        return (ay <= r) & (ax <= (dy + r) / 2)
    if shape == "dots":
        return np.any(
            [
                ((dx - ox) ** 2 + (dy - oy) ** 2) <= (r / 3) ** 2
                for ox, oy in [(-r / 2, -r / 2), (r / 2, -r / 2), (0, r / 2)]
            ],
            axis=0,
        )
    raise ValueError(f"unknown shape {shape!r}")


def render_images(spec: Spec, rng: np.random.Generator, n: int, size: int = SIZE) -> np.ndarray:
    """uint8 RGB [n, size, size, 3]: the primary's background, moving shape and the secondary markers."""
    cue = CUES[spec.primary]
    background = np.clip(np.array(cue.colour) + rng.integers(-10, 11, 3), 0, 255)
    x0, y0 = rng.uniform(0.3 * size, 0.7 * size, 2)
    radius = size * 0.14 * rng.uniform(0.85, 1.15)
    a, b = cue.motion_args
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - size / 2
    centred = _shape_mask(cue.shape, xx, yy, radius)
    images = np.empty((n, size, size, 3), dtype=np.int16)
    images[:] = background
    for t in range(n):
        x, y, mask = x0, y0, centred
        if cue.motion == "linear":
            x, y = x0 + a * t, y0 + b * t
        elif cue.motion == "shake":
            x = x0 + a * (1 if t % 2 else -1)
        elif cue.motion == "circle":
            x, y = x0 + a * np.cos(2 * np.pi * t / n), y0 + a * np.sin(2 * np.pi * t / n)
        elif cue.motion == "tremble":
            x, y = x0 + rng.uniform(-a, a), y0 + rng.uniform(-a, a)
        elif cue.motion == "grow":
            mask = _shape_mask(cue.shape, xx, yy, radius * (0.4 + a * t / max(n - 1, 1)))
        # rolling wraps around: a shape leaving one edge re-enters at the other
        mask = np.roll(mask, (round(y - size / 2), round(x - size / 2)), axis=(0, 1))
        frame = images[t]
        frame[mask] = cue.shape_colour
        m = max(size // 7, 4)
        for k, label in enumerate(spec.secondary[:2]):
            left = 4 if k == 0 else size - 4 - m
            frame[4 : 4 + m, left : left + m] = CUES[label].colour
    images += rng.integers(-4, 5, images.shape, dtype=np.int16)
    return np.clip(images, 0, 255).astype(np.uint8)


def render_audio(spec: Spec, rng: np.random.Generator, seconds: float = SECONDS, rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 mono [seconds * rate]: gated tone of the primary + faint overtones of the secondaries."""
    cue = CUES[spec.primary]
    t = np.arange(int(seconds * rate)) / rate
    pitch = cue.pitch * rng.uniform(0.98, 1.02)
    loud = cue.loudness * rng.uniform(0.9, 1.1)
    gate = 1.0
    if cue.tempo > 0:
        gate = (((t * cue.tempo * rng.uniform(0.9, 1.1)) + rng.uniform()) % 1.0 < 0.6).astype(np.float64)
    audio = loud * gate * np.sin(2 * np.pi * pitch * t + rng.uniform(0, 2 * np.pi))
    for label in spec.secondary:
        audio += 0.06 * np.sin(2 * np.pi * CUES[label].overtone * t)
    audio += rng.normal(0, 0.005, t.shape)
    return np.clip(audio, -0.99, 0.99).astype(np.float32)


def describe(spec: Spec, labels: list[str] | None = None) -> str:
    """The track3 `reason`: the cues in words, ending with the labels (`labels`: the annotator's, when they differ)."""
    cue = CUES[spec.primary]
    corners = ("top-left", "top-right")
    markers = "".join(
        f"; a small {CUES[s].colour_word} marker sits in the {c} corner" for s, c in zip(spec.secondary, corners)
    )
    khz = [f"{CUES[s].overtone / 1000:.2f}" for s in spec.secondary]
    overtones = f", with a faint overtone at {' and '.join(khz)} kHz" if khz else ""
    return (
        f"In the video, the background glows {cue.colour_word} and {cue.shape_word} {cue.motion_phrase}{markers}. "
        f"The audio is {cue.sound_phrase}{overtones}. Overall, the character feels {', '.join(labels or spec.labels)}."
    )


# ---------------------------------------------------------------- writing


def _write_video(path: Path, frames: np.ndarray, audio: np.ndarray | None) -> None:
    """h264 mp4 with an AAC track (the same audio), or mpeg4 avi (video only) when path ends in .avi."""
    path.parent.mkdir(parents=True, exist_ok=True)
    avi = path.suffix == ".avi"
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4" if avi else "libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if not avi:
            video.options = {"preset": "veryfast", "crf": "20"}
        sound = None
        if not avi and audio is not None:
            sound = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
            sound.options = {"aac_coder": "fast"}  # 3x faster than the default coder, plenty for tones
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        if sound is not None:
            for start in range(0, len(audio), 1024):
                chunk = av.AudioFrame.from_ndarray(audio[None, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())

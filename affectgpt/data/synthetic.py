"""Synthetic demo dataset in the exact MER2025 (and MER-UniBench) layouts, whose labels are learnable from media.

Why: the demo and the tests need a dataset that runs on CPU in seconds, exercises every reader and
decoder on real files (h264 mp4 with an AAC track, 16 kHz wav, OpenFace-style npy crops, CSV/npz
labels), and on which a model can visibly learn. The subtitles carry no emotion, so anything a
model learns must come from the video, faces or audio.

Generative rules (one sample):
- Labels: a primary emotion (balanced over the 10 below) plus 0-2 secondary labels drawn from the
  primary's co-occurrence group (`SECONDARY`); 1-3 labels, primary first: `[happy, excited]`.
  All are words of the official emotion wheels. UniBench sets also use a `neutral` cue set.
- Video (24 frames, 8 fps, 112x112 h264): the primary sets the background colour, the shape, its
  colour and its motion (`CUES`); each secondary label puts a small marker square of *its* background
  colour in the top-left (1st) / top-right (2nd) corner. Jitter: background colour +-10 per
  channel, shape start position and size, uniform pixel noise (+-4).
- Faces (12 crops, 112x112, uint8): drawn by the same rules and stored **BGR**, like the official
  cv2-made npys (so `face_channel_order="bgr_to_rgb"` recovers the true colours).
- Audio (3 s, 16 kHz mono; also the mp4's AAC track): a tone at the primary's pitch, gated into
  beeps at its tempo (on 60% of each period; neutral: steady), at its loudness; each secondary
  label adds a faint continuous overtone at its own frequency (2.0-3.5 kHz); jitter: pitch +-2%,
  tempo and loudness +-10%, beep phase, white noise. No speech (identical output on every machine).
- Subtitle: a neutral sentence (English + Chinese); description (track3 `reason`): the cues in
  words, ending "Overall, the character feels <labels>."
Every sample draws from its own RNG seeded by (seed, dataset, index), so output is deterministic.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd
import soundfile

from affectgpt.data.safe_npz import save_npz_object

EMOTIONS = ("happy", "excited", "sad", "lonely", "angry", "annoyed", "worried", "scared", "surprised", "disgusted")
SECONDARY = {
    "happy": ("excited", "surprised"), "excited": ("happy", "surprised"), "sad": ("lonely", "worried"),
    "lonely": ("sad",), "angry": ("annoyed", "disgusted"), "annoyed": ("angry", "disgusted"),
    "worried": ("scared", "sad"), "scared": ("worried", "surprised"), "surprised": ("excited", "happy"),
    "disgusted": ("annoyed", "angry"),
}  # fmt: skip
FPS, N_FRAMES, SIZE, N_FACES, SECONDS, SAMPLE_RATE = 8, 24, 112, 12, 3.0, 16000
VERSION = 1  # bump when the rules change, so ensure_demo_dataset regenerates old folders


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
    "happy": Cue((240, 210, 40), "warm yellow", "circle", (255, 255, 255), "a white circle", "linear", (0, -3),
                 "bounces upward quickly", 800, 4, 0.55, "a high-pitched tone in quick, bright beeps", 2000),
    "excited": Cue((250, 110, 20), "bright orange", "cross", (255, 255, 255), "a white cross", "linear", (4, -4),
                   "darts diagonally at high speed", 950, 6, 0.7, "a very high tone in rapid, loud beeps", 2170),
    "sad": Cue((20, 40, 150), "deep blue", "hbar", (160, 170, 200), "a pale bar", "linear", (0, 1),
               "sinks slowly downward", 200, 1, 0.25, "a very low, quiet tone in slow beeps", 2340),
    "lonely": Cue((110, 60, 170), "muted purple", "ring", (200, 190, 220), "a hollow ring", "linear", (-1, 0),
                  "drifts slowly to the left", 240, 1, 0.2, "a low, faint tone in sparse beeps", 2510),
    "angry": Cue((200, 20, 20), "harsh red", "square", (20, 20, 20), "a black square", "shake", (7, 0),
                 "shakes violently from side to side", 400, 5, 0.7, "a mid-low tone in loud, hammering beeps", 2680),
    "annoyed": Cue((150, 70, 40), "dull brown", "triangle", (230, 200, 160), "a beige triangle", "linear", (2, 0),
                   "jerks to the right", 340, 4, 0.45, "a mid-low tone in clipped, insistent beeps", 2850),
    "worried": Cue((60, 140, 140), "murky teal", "diamond", (230, 230, 230), "a light diamond", "circle", (14, 0),
                   "circles restlessly", 475, 3, 0.35, "a wavering mid tone in uneasy beeps", 3020),
    "scared": Cue((20, 20, 20), "near-black", "vbar", (220, 220, 220), "a thin pale bar", "tremble", (3, 0),
                  "trembles in place", 565, 6, 0.5, "a high, tense tone in rapid beeps", 3190),
    "surprised": Cue((240, 100, 200), "vivid pink", "xshape", (255, 255, 255), "a white X", "grow", (1.6, 0),
                     "pops out and grows fast", 670, 2, 0.6, "a high tone in sudden, loud bursts", 3360),
    "disgusted": Cue((90, 150, 30), "sickly olive green", "dots", (60, 40, 20), "a cluster of dark dots", "linear",
                     (-2, 2), "slides away down-left", 285, 2, 0.35, "a low, nasal tone in sluggish beeps", 3530),
    "neutral": Cue((128, 128, 128), "plain grey", "square", (100, 100, 100), "a grey square", "static", (0, 0),
                   "stays still", 160, 0, 0.3, "a steady, soft mid tone", 1800),
}  # fmt: skip

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
        return np.any([((dx - ox) ** 2 + (dy - oy) ** 2) <= (r / 3) ** 2 for ox, oy in
                       [(-r / 2, -r / 2), (r / 2, -r / 2), (0, r / 2)]], axis=0)  # fmt: skip
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


def describe(spec: Spec) -> str:
    """The track3 `reason`: the cues in words, ending with the labels."""
    cue = CUES[spec.primary]
    corners = ("top-left", "top-right")
    markers = "".join(f"; a small {CUES[s].colour_word} marker sits in the {c} corner" for s, c in zip(spec.secondary, corners))
    khz = [f"{CUES[s].overtone / 1000:.2f}" for s in spec.secondary]
    overtones = f", with a faint overtone at {' and '.join(khz)} kHz" if khz else ""
    return (
        f"In the video, the background glows {cue.colour_word} and {cue.shape_word} {cue.motion_phrase}{markers}. "
        f"The audio is {cue.sound_phrase}{overtones}. Overall, the character feels {', '.join(spec.labels)}."
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


def _write_sample(root: Path, spec: Spec, seed_key: list[int], *, video_dir: str = "video", video_ext: str = "mp4",
                  audio_dir: str = "audio", nested_face: bool = False) -> None:  # fmt: skip
    rng = np.random.default_rng(seed_key)
    frames = render_images(spec, rng, N_FRAMES)
    faces = render_images(spec, rng, N_FACES)[..., ::-1]  # stored BGR, like the official cv2-made npys
    audio = render_audio(spec, rng)
    _write_video(root / video_dir / f"{spec.name}.{video_ext}", frames, audio)
    (root / audio_dir).mkdir(parents=True, exist_ok=True)
    soundfile.write(root / audio_dir / f"{spec.name}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    face_path = root / "openface_face" / (f"{spec.name}/{spec.name}.npy" if nested_face else f"{spec.name}.npy")
    face_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(face_path, np.ascontiguousarray(faces))


def _specs(prefix: str, n: int, rng: np.random.Generator) -> list[Spec]:
    """Balanced primaries (shuffled) with 0-2 secondaries from the primary's group."""
    specs = []
    for i, k in enumerate(rng.permutation(n)):
        primary = EMOTIONS[k % len(EMOTIONS)]
        group = SECONDARY[primary]
        picks = rng.permutation(len(group))[: rng.integers(0, min(2, len(group)) + 1)]
        specs.append(Spec(f"{prefix}{i:08d}", primary, tuple(group[j] for j in sorted(picks))))
    return specs


def _subtitles(names: list[str], rng: np.random.Generator) -> list[tuple[str, str, str]]:
    return [(name, *NEUTRAL_SUBTITLES[int(rng.integers(len(NEUTRAL_SUBTITLES)))][::-1]) for name in names]


def _csv(path: Path, columns: list[str], rows: list) -> None:
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)


def _openset(spec: Spec) -> str:
    return "[" + ", ".join(spec.labels) + "]"


def write_mer2025(out: Path, n: int, seed: int) -> list[Spec]:
    """The MER2025 folder: media + subtitle/track2/track3 CSVs; the last n//5 names form OV-MERD."""
    rng = np.random.default_rng([seed, 0])
    specs = _specs("sample_", n, rng)
    for i, spec in enumerate(specs):
        _write_sample(out, spec, [seed, 0, i], nested_face=True)
    n_ovmerd = max(n // 5, 1) if n > 1 else 0
    caption, ovmerd = specs[: n - n_ovmerd], specs[n - n_ovmerd :]
    names = [s.name for s in specs]
    _csv(out / "subtitle_chieng.csv", ["name", "chinese", "english"], _subtitles(names, rng))
    _csv(out / "track_all_candidates.csv", ["name"], [[name] for name in names])
    for tag, part in (("mercaptionplus", caption), ("ovmerd", ovmerd)):
        _csv(out / f"track2_train_{tag}.csv", ["name", "openset"], [(s.name, _openset(s)) for s in part])
        _csv(out / f"track3_train_{tag}.csv", ["name", "reason"], [(s.name, describe(s)) for s in part])
    return specs


# ---------------------------------------------------------------- MER-UniBench

MER6 = ("happy", "sad", "neutral", "angry", "worried", "surprise")
MELD7 = ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise")
IEMOCAP4 = ("happy", "sad", "neutral", "anger")
TO_CUE = {"surprise": "surprised", "joy": "happy", "anger": "angry", "sadness": "sad", "disgust": "disgusted", "fear": "scared"}
SENTIMENT = ("happy", "sad", "excited", "angry", "lonely", "happy", "scared", "neutral", "excited", "disgusted", "annoyed", "worried")
POSITIVE = {"happy", "excited", "surprised"}
SENTIMENT_SETS = {"CMUMOSI": "subvideo", "CMUMOSEI": "subvideo_new", "SIMS": "video", "SIMSv2": "video_new"}
UNIBENCH = ("OVMERDPlus", "MER2023", "MER2024", "MELD", "IEMOCAPFour", *SENTIMENT_SETS)
N_UNIBENCH = 12


def _valence(emotion: str, rng: np.random.Generator) -> float:
    if emotion == "neutral":
        return 0.0
    magnitude = round(float(rng.uniform(0.4, 3.0)), 2)
    return magnitude if emotion in POSITIVE else -magnitude


def write_unibench(root: Path, dataset: str, seed: int) -> None:
    """One small MER-UniBench test folder in the official format of `dataset` (reference §3.2-3.3)."""
    key = UNIBENCH.index(dataset) + 1
    rng = np.random.default_rng([seed, key])
    video_dir, video_ext, audio_dir, sub_file = "video", "mp4", "audio", "transcription-engchi-polish.csv"
    n = N_UNIBENCH
    if dataset == "OVMERDPlus":
        specs = _specs("sample_", n, rng)
    elif dataset in ("MER2023", "MER2024"):
        prefix = "sample_" if dataset == "MER2023" else "samplenew3_"
        words = [MER6[i % 6] for i in range(n)]
        specs = [Spec(f"{prefix}{i:08d}", TO_CUE.get(w, w)) for i, w in enumerate(words)]
        corpus = {s.name: {"emo": w, "val": _valence(s.primary, rng)} for s, w in zip(specs, words)}
        save_npz_object(root / "label-6way.npz", train_corpus={}, test1_corpus=corpus)
        sub_file = "transcription-engchi-polish.csv" if dataset == "MER2023" else "transcription_merge.csv"
    elif dataset == "MELD":
        video_dir = "subvideo"
        idx = [i % 7 for i in range(n)]
        specs = [Spec(f"test_dia{i // 3}_utt{i % 3}", TO_CUE.get(MELD7[k], MELD7[k])) for i, k in enumerate(idx)]
        save_npz_object(root / "label.npz", train_corpus={}, val_corpus={},
                        test_corpus={s.name: {"emo": k} for s, k in zip(specs, idx)})  # fmt: skip
    elif dataset == "IEMOCAPFour":
        video_dir, video_ext, audio_dir = "subvideo-tgt", "avi", "subaudio"
        gender = ["FM"[i % 2] for i in range(n)]
        names = [f"Ses05{g}_impro0{1 + i // 6}_{g}{i % 6:03d}" for i, g in enumerate(gender)]
        names += ["Ses01F_impro01_F000", "Ses01M_script02_M001"]
        idx = [i % 4 for i in range(len(names))]
        specs = [Spec(name, TO_CUE.get(IEMOCAP4[k], IEMOCAP4[k])) for name, k in zip(names, idx)]
        save_npz_object(root / "label_4way.npz", whole_corpus={s.name: {"emo": k} for s, k in zip(specs, idx)})
    else:
        video_dir = SENTIMENT_SETS[dataset]
        specs = [Spec(f"{dataset.lower()}_{i:05d}", SENTIMENT[i % len(SENTIMENT)]) for i in range(n)]
        save_npz_object(root / "label.npz", train_corpus={}, val_corpus={},
                        test_corpus={s.name: {"val": _valence(s.primary, rng)} for s in specs})  # fmt: skip
    for i, spec in enumerate(specs):
        _write_sample(root, spec, [seed, key, i], video_dir=video_dir, video_ext=video_ext, audio_dir=audio_dir)
    subs = _subtitles([s.name for s in specs], rng)
    if dataset == "OVMERDPlus":
        _csv(root / "ovlabel.csv", ["name", "openset"], [(s.name, _openset(s)) for s in specs])
        _csv(root / "subtitle_eng.csv", ["name", "sentence"], [(name, eng) for name, _, eng in subs])
    else:
        _csv(root / sub_file, ["name", "chinese", "english"], subs)


# ---------------------------------------------------------------- entry points

MARKER, IN_PROGRESS, README = ".complete", ".generating", "DEMO_DATASET.md"


def _params(n: int, seed: int, unibench: bool) -> dict:
    return {"version": VERSION, "n": n, "seed": seed, "unibench": unibench}


def _clear(out: Path) -> None:
    """Remove a previous (possibly partial) demo folder; refuse to delete anything that is not ours."""
    if not out.exists():
        return
    ours = any((out / f).exists() for f in (MARKER, IN_PROGRESS, README)) or not any(out.iterdir())
    if not ours:
        raise FileExistsError(f"{out} exists and is not a generated demo dataset; refusing to overwrite it")
    shutil.rmtree(out)


def _readme(n: int, seed: int, unibench: bool) -> str:
    rows = "\n".join(
        f"| {e} | {c.colour_word} {c.colour} | {c.shape_word}, {c.motion_phrase} | {c.pitch:g} Hz, "
        f"{c.tempo:g} beeps/s, loudness {c.loudness:g} | {c.overtone:g} Hz |"
        for e, c in CUES.items()
    )
    doc = (__doc__ or "").split("Generative rules", 1)[-1]
    return (
        f"# Synthetic demo dataset\n\nGenerated by `python -m affectgpt.data.synthetic --n {n} --seed {seed}`"
        f"{'' if unibench else ' --no-unibench'} (rules version {VERSION}).\n\n"
        "MER2025 layout: `video/`, `audio/`, `openface_face/<name>/<name>.npy`, `subtitle_chieng.csv`, "
        "`track2_train_{mercaptionplus,ovmerd}.csv`, `track3_train_{mercaptionplus,ovmerd}.csv` (OV-MERD = the last "
        "n//5 names, disjoint from MER-Caption+), `track_all_candidates.csv` (all names).\n"
        f"{'MER-UniBench-style test folders: `unibench/<Dataset>/` for ' + ', '.join(UNIBENCH) + '.' if unibench else ''}\n\n"
        f"## Generative rules{doc.split(':', 1)[-1]}\n"
        "| emotion | background | shape and motion | tone | overtone as secondary |\n|---|---|---|---|---|\n"
        f"{rows}\n\nCo-occurrence groups for secondary labels: "
        + "; ".join(f"{k}: {', '.join(v)}" for k, v in SECONDARY.items())
        + ".\n\nUniBench labels use the official vocabularies (MER2023/2024: "
        + ", ".join(MER6) + "; MELD: " + ", ".join(MELD7) + "; IEMOCAPFour: " + ", ".join(IEMOCAP4)
        + "), drawn with the cues of " + ", ".join(f"{k}->{v}" for k, v in TO_CUE.items())
        + "; sentiment sets (valence in [-3, 3]) are positive for happy/excited, 0.0 for neutral, else negative.\n"
    )


def generate(out: str | Path, n: int = 240, seed: int = 0, unibench: bool = True) -> Path:
    """(Re)generate the demo dataset at `out`; the `.complete` marker is written last."""
    out = Path(out)
    _clear(out)
    out.mkdir(parents=True)
    (out / IN_PROGRESS).write_text("generation in progress or interrupted\n")
    write_mer2025(out, n, seed)
    if unibench:
        for dataset in UNIBENCH:
            write_unibench(out / "unibench" / dataset, dataset, seed)
    (out / README).write_text(_readme(n, seed, unibench), encoding="utf-8")
    (out / MARKER).write_text(json.dumps(_params(n, seed, unibench)) + "\n")
    (out / IN_PROGRESS).unlink()
    return out


def ensure_demo_dataset(out: str | Path, n: int = 240, seed: int = 0, unibench: bool = True) -> Path:
    """Generate only when `out` lacks a complete dataset with these parameters (partial folders are redone)."""
    out = Path(out)
    marker = out / MARKER
    if marker.is_file() and not (out / IN_PROGRESS).exists():
        try:
            if json.loads(marker.read_text()) == _params(n, seed, unibench):
                return out
        except json.JSONDecodeError:
            pass
    return generate(out, n, seed, unibench)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the synthetic MER2025-layout demo dataset.")
    parser.add_argument("--out", default="data/demo", help="output folder (a previous demo folder there is replaced)")
    parser.add_argument("--n", type=int, default=240, help="number of MER2025-layout samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-unibench", action="store_true", help="skip the small MER-UniBench test folders")
    args = parser.parse_args(argv)
    path = generate(args.out, args.n, args.seed, unibench=not args.no_unibench)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

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
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile

from affectgpt.data.safe_npz import save_npz_object
from affectgpt.data.synthetic_render import (
    CUES,
    EMOTIONS,
    N_FACES,
    N_FRAMES,
    NEUTRAL_SUBTITLES,
    SAMPLE_RATE,
    SECONDARY,
    VERSION,
    Spec,
    _write_video,
    describe,
    render_audio,
    render_images,
)

__all__ = [
    "CUES",
    "EMOTIONS",
    "N_FACES",
    "N_FRAMES",
    "ensure_demo_dataset",
    "generate",
    "write_mer2025",
    "write_unibench",
]


def _write_sample(
    root: Path,
    spec: Spec,
    seed_key: list[int],
    *,
    video_dir: str = "video",
    video_ext: str = "mp4",
    audio_dir: str = "audio",
    nested_face: bool = False,
) -> None:
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


def _openset(labels: list[str]) -> str:
    return "[" + ", ".join(labels) + "]"


# The label a biased automatic annotator adds (caption_bias): it maps to its own level-1 group in every wheel
# but W4 of the demo wheel, so an answer that repeats it loses precision on every sample that lacks it.
BIAS_LABEL = "surprised"


def machine_labels(specs: list[Spec], bias: float, seed: int) -> dict[str, list[str]]:
    """MER-Caption+ labels as a biased automatic annotator writes them: with probability `bias` per sample it
    appends BIAS_LABEL, which no cue supports. Drawn from their own RNG, so bias 0 leaves every other output as is."""
    rng = np.random.default_rng([seed, 7])
    draws = rng.random(len(specs))
    return {
        s.name: s.labels + [BIAS_LABEL] if draw < bias and BIAS_LABEL not in s.labels else s.labels
        for s, draw in zip(specs, draws)
    }


def write_mer2025(out: Path, n: int, seed: int, caption_bias: float = 0.0) -> list[Spec]:
    """The MER2025 folder: media + subtitle/track2/track3 CSVs; the last n//5 names form OV-MERD (always the
    true labels); `caption_bias` > 0 gives the MER-Caption+ part the labels of a biased annotator."""
    rng = np.random.default_rng([seed, 0])
    specs = _specs("sample_", n, rng)
    for i, spec in enumerate(specs):
        _write_sample(out, spec, [seed, 0, i], nested_face=True)
    n_ovmerd = max(n // 5, 1) if n > 1 else 0
    caption, ovmerd = specs[: n - n_ovmerd], specs[n - n_ovmerd :]
    labels = {s.name: s.labels for s in specs} | machine_labels(caption, caption_bias, seed)
    names = [s.name for s in specs]
    _csv(out / "subtitle_chieng.csv", ["name", "chinese", "english"], _subtitles(names, rng))
    _csv(out / "track_all_candidates.csv", ["name"], [[name] for name in names])
    for tag, part in (("mercaptionplus", caption), ("ovmerd", ovmerd)):
        _csv(out / f"track2_train_{tag}.csv", ["name", "openset"], [(s.name, _openset(labels[s.name])) for s in part])
        rows = [(s.name, describe(s, labels[s.name])) for s in part]
        _csv(out / f"track3_train_{tag}.csv", ["name", "reason"], rows)
    return specs


# ---------------------------------------------------------------- MER-UniBench

MER6 = ("happy", "sad", "neutral", "angry", "worried", "surprise")
MELD7 = ("anger", "joy", "sadness", "neutral", "disgust", "fear", "surprise")
IEMOCAP4 = ("happy", "sad", "neutral", "anger")
TO_CUE = {
    "surprise": "surprised",
    "joy": "happy",
    "anger": "angry",
    "sadness": "sad",
    "disgust": "disgusted",
    "fear": "scared",
}
SENTIMENT = (
    "happy",
    "sad",
    "excited",
    "angry",
    "lonely",
    "happy",
    "scared",
    "neutral",
    "excited",
    "disgusted",
    "annoyed",
    "worried",
)
POSITIVE = {"happy", "excited", "surprised"}
SENTIMENT_SETS = {"CMUMOSI": "subvideo", "CMUMOSEI": "subvideo_new", "SIMS": "video", "SIMSv2": "video_new"}
UNIBENCH = ("OVMERDPlus", "MER2023", "MER2024", "MELD", "IEMOCAPFour", *SENTIMENT_SETS)
N_UNIBENCH = 12


def _valence(emotion: str, rng: np.random.Generator) -> float:
    if emotion == "neutral":
        return 0.0
    magnitude = round(float(rng.uniform(0.4, 3.0)), 2)
    return magnitude if emotion in POSITIVE else -magnitude


def write_unibench(root: Path, dataset: str, seed: int, n_ovmerdplus: int = N_UNIBENCH) -> None:
    """One small MER-UniBench test folder in the official format of `dataset` (reference §3.2-3.3): the official
    releases' folder names (video `video` / `subvideo` / `subvideo-tgt` (.avi) / `subvideo_new` / `video_new`;
    audio `subaudio` for MELD, else `audio`) and label / subtitle files."""
    key = UNIBENCH.index(dataset) + 1
    rng = np.random.default_rng([seed, key])
    video_dir, video_ext, audio_dir, sub_file = "video", "mp4", "audio", "transcription-engchi-polish.csv"
    n = n_ovmerdplus if dataset == "OVMERDPlus" else N_UNIBENCH
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
        video_dir, audio_dir = "subvideo", "subaudio"
        idx = [i % 7 for i in range(n)]
        specs = [Spec(f"test_dia{i // 3}_utt{i % 3}", TO_CUE.get(MELD7[k], MELD7[k])) for i, k in enumerate(idx)]
        save_npz_object(
            root / "label.npz",
            train_corpus={},
            val_corpus={},
            test_corpus={s.name: {"emo": k} for s, k in zip(specs, idx)},
        )
    elif dataset == "IEMOCAPFour":
        video_dir, video_ext = "subvideo-tgt", "avi"
        gender = ["FM"[i % 2] for i in range(n)]
        names = [f"Ses05{g}_impro0{1 + i // 6}_{g}{i % 6:03d}" for i, g in enumerate(gender)]
        names += ["Ses01F_impro01_F000", "Ses01M_script02_M001"]
        idx = [i % 4 for i in range(len(names))]
        specs = [Spec(name, TO_CUE.get(IEMOCAP4[k], IEMOCAP4[k])) for name, k in zip(names, idx)]
        save_npz_object(root / "label_4way.npz", whole_corpus={s.name: {"emo": k} for s, k in zip(specs, idx)})
    else:
        video_dir = SENTIMENT_SETS[dataset]
        specs = [Spec(f"{dataset.lower()}_{i:05d}", SENTIMENT[i % len(SENTIMENT)]) for i in range(n)]
        save_npz_object(
            root / "label.npz",
            train_corpus={},
            val_corpus={},
            test_corpus={s.name: {"val": _valence(s.primary, rng)} for s in specs},
        )
    for i, spec in enumerate(specs):
        _write_sample(root, spec, [seed, key, i], video_dir=video_dir, video_ext=video_ext, audio_dir=audio_dir)
    subs = _subtitles([s.name for s in specs], rng)
    if dataset == "OVMERDPlus":
        _csv(root / "ovlabel.csv", ["name", "openset"], [(s.name, _openset(s.labels)) for s in specs])
        _csv(root / "subtitle_eng.csv", ["name", "sentence"], [(name, eng) for name, _, eng in subs])
    else:
        _csv(root / sub_file, ["name", "chinese", "english"], subs)


# ---------------------------------------------------------------- entry points

MARKER, IN_PROGRESS, README = ".complete", ".generating", "DEMO_DATASET.md"


# The named demo worlds train.py generates on first use (data/<name>): `demo` is the SFT demo; `demo_rl` gives RL
# something SFT cannot learn from its own labels: a biased MER-Caption+ annotator (80% of its samples carry an
# unsupported "surprised"), clean OV-MERD labels for the GRPO prompts and a 48-sample OV-MERD+ set to validate on.
DEMO_WORLDS: dict[str, dict] = {"demo": {}, "demo_rl": {"caption_bias": 0.8, "n_ovmerdplus": 48}}


def demo_world(root: str | Path) -> dict | None:
    """The generation settings when `root` is a demo world's location (`data/demo`, `data/demo_rl`), else None."""
    path = Path(root).as_posix().rstrip("/")
    return next((dict(kw) for name, kw in DEMO_WORLDS.items() if path.endswith(f"data/{name}")), None)


def _params(n: int, seed: int, unibench: bool, caption_bias: float = 0.0, n_ovmerdplus: int = N_UNIBENCH) -> dict:
    params = {"version": VERSION, "n": n, "seed": seed, "unibench": unibench}
    if caption_bias or n_ovmerdplus != N_UNIBENCH:  # only then, so the markers of existing demo folders stay valid
        params |= {"caption_bias": caption_bias, "n_ovmerdplus": n_ovmerdplus}
    return params


def _clear(out: Path) -> None:
    """Remove a previous (possibly partial) demo folder; refuse to delete anything that is not ours."""
    if not out.exists():
        return
    ours = any((out / f).exists() for f in (MARKER, IN_PROGRESS, README)) or not any(out.iterdir())
    if not ours:
        raise FileExistsError(f"{out} exists and is not a generated demo dataset; refusing to overwrite it")
    shutil.rmtree(out)


def _world_flags(caption_bias: float, n_ovmerdplus: int) -> str:
    flags = f" --caption-bias {caption_bias:g}" if caption_bias else ""
    return flags + (f" --n-ovmerdplus {n_ovmerdplus}" if n_ovmerdplus != N_UNIBENCH else "")


def _bias_note(caption_bias: float) -> str:
    if not caption_bias:
        return ""
    return (
        f"**Biased MER-Caption+ labels**: a simulated automatic annotator appended `{BIAS_LABEL}` (supported by no "
        f"cue) to {caption_bias:.0%} of the MER-Caption+ samples that lack it; OV-MERD and MER-UniBench labels are "
        "the true ones. A model fine-tuned on MER-Caption+ learns to add it; the RL demo removes it.\n\n"
    )


def _readme(n: int, seed: int, unibench: bool, caption_bias: float = 0.0, n_ovmerdplus: int = N_UNIBENCH) -> str:
    rows = "\n".join(
        f"| {e} | {c.colour_word} {c.colour} | {c.shape_word}, {c.motion_phrase} | {c.pitch:g} Hz, "
        f"{c.tempo:g} beeps/s, loudness {c.loudness:g} | {c.overtone:g} Hz |"
        for e, c in CUES.items()
    )
    doc = (__doc__ or "").split("Generative rules", 1)[-1]
    folders = "MER-UniBench-style test folders: `unibench/<Dataset>/` for " + ", ".join(UNIBENCH) + "."
    unibench_line = folders if unibench else ""
    return (
        f"# Synthetic demo dataset\n\nGenerated by `python -m affectgpt.data.synthetic --n {n} --seed {seed}"
        f"{'' if unibench else ' --no-unibench'}{_world_flags(caption_bias, n_ovmerdplus)}`"
        f" (rules version {VERSION}).\n\n"
        f"{_bias_note(caption_bias)}"
        "MER2025 layout: `video/`, `audio/`, `openface_face/<name>/<name>.npy`, `subtitle_chieng.csv`, "
        "`track2_train_{mercaptionplus,ovmerd}.csv`, `track3_train_{mercaptionplus,ovmerd}.csv` (OV-MERD = the last "
        "n//5 names, disjoint from MER-Caption+), `track_all_candidates.csv` (all names).\n"
        f"{unibench_line}\n\n"
        f"## Generative rules{doc.split(':', 1)[-1]}\n"
        "| emotion | background | shape and motion | tone | overtone as secondary |\n|---|---|---|---|---|\n"
        f"{rows}\n\nCo-occurrence groups for secondary labels: "
        + "; ".join(f"{k}: {', '.join(v)}" for k, v in SECONDARY.items())
        + ".\n\nUniBench labels use the official vocabularies (MER2023/2024: "
        + ", ".join(MER6)
        + "; MELD: "
        + ", ".join(MELD7)
        + "; IEMOCAPFour: "
        + ", ".join(IEMOCAP4)
        + "), drawn with the cues of "
        + ", ".join(f"{k}->{v}" for k, v in TO_CUE.items())
        + "; sentiment sets (valence in [-3, 3]) are positive for happy/excited, 0.0 for neutral, else negative.\n"
    )


def generate(
    out: str | Path,
    n: int = 240,
    seed: int = 0,
    unibench: bool = True,
    caption_bias: float = 0.0,
    n_ovmerdplus: int = N_UNIBENCH,
) -> Path:
    """(Re)generate the demo dataset at `out`; the `.complete` marker is written last."""
    out = Path(out)
    _clear(out)
    out.mkdir(parents=True)
    (out / IN_PROGRESS).write_text("generation in progress or interrupted\n")
    write_mer2025(out, n, seed, caption_bias)
    if unibench:
        for dataset in UNIBENCH:
            write_unibench(out / "unibench" / dataset, dataset, seed, n_ovmerdplus)
    (out / README).write_text(_readme(n, seed, unibench, caption_bias, n_ovmerdplus), encoding="utf-8")
    (out / MARKER).write_text(json.dumps(_params(n, seed, unibench, caption_bias, n_ovmerdplus)) + "\n")
    (out / IN_PROGRESS).unlink()
    return out


def is_demo_root(root: str | Path) -> bool:
    """True for a demo world's location (`data/demo`, `data/demo_rl`: generated on first use by train.py)."""
    return demo_world(root) is not None


def ensure_demo_dataset(
    out: str | Path,
    n: int = 240,
    seed: int = 0,
    unibench: bool = True,
    caption_bias: float = 0.0,
    n_ovmerdplus: int = N_UNIBENCH,
) -> Path:
    """Generate only when `out` lacks a complete dataset with these parameters (partial folders are redone)."""
    out = Path(out)
    marker = out / MARKER
    if marker.is_file() and not (out / IN_PROGRESS).exists():
        try:
            if json.loads(marker.read_text()) == _params(n, seed, unibench, caption_bias, n_ovmerdplus):
                return out
        except json.JSONDecodeError:
            pass
    return generate(out, n, seed, unibench, caption_bias, n_ovmerdplus)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the synthetic MER2025-layout demo dataset.")
    parser.add_argument("--out", default="data/demo", help="output folder (a previous demo folder there is replaced)")
    parser.add_argument("--n", type=int, default=240, help="number of MER2025-layout samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-unibench", action="store_true", help="skip the small MER-UniBench test folders")
    parser.add_argument("--caption-bias", type=float, default=0.0, help=f"MER-Caption+ samples given {BIAS_LABEL!r}")
    parser.add_argument("--n-ovmerdplus", type=int, default=N_UNIBENCH, help="samples of the OV-MERD+ test folder")
    args = parser.parse_args(argv)
    if not 0.0 <= args.caption_bias <= 1.0:
        parser.error(f"--caption-bias must be in [0, 1], got {args.caption_bias}")
    path = generate(args.out, args.n, args.seed, not args.no_unibench, args.caption_bias, args.n_ovmerdplus)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

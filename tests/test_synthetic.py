"""Synthetic demo dataset: exact MER2025 / MER-UniBench layouts, decodable media, determinism, learnable labels."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import av
import decord
import numpy as np
import pandas as pd
import pytest
import soundfile

from affectgpt.data import synthetic
from affectgpt.data.media import load_audio_clips, load_faces, load_frames
from affectgpt.data.safe_npz import load_npz_object

WHEEL_DIR = Path(__file__).resolve().parents[2] / "shared" / "emotion_wheel"
N = 24


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("demo") / "demo", n=N, seed=0)


@pytest.fixture(scope="module")
def decoded(demo) -> dict[str, dict[str, np.ndarray]]:
    """Every MER2025 sample read back through the loaders once: frames, faces (RGB), wav clips."""
    out = {}
    for i in range(N):
        name = f"sample_{i:08d}"
        out[name] = {
            "frames": load_frames(demo / "video" / f"{name}.mp4", sample=name),
            "faces": load_faces(demo / "openface_face" / name / f"{name}.npy", channel_order="bgr_to_rgb", sample=name),
            "audio": load_audio_clips(demo / "audio" / f"{name}.wav", sample=name),
        }
    return out


def parse_openset(text: str) -> list[str]:
    return [w.strip() for w in text.strip("[]").split(",") if w.strip()]


def wheel_words() -> set[str]:
    words: set[str] = set()
    for i in range(1, 6):
        table = pd.read_excel(WHEEL_DIR / f"wheel{i}.xlsx")
        for column in table.columns:
            words |= {str(v).strip().lower() for v in table[column].dropna()}
    return words


def test_mer2025_layout_and_csvs(demo):
    names = [f"sample_{i:08d}" for i in range(N)]
    subs = pd.read_csv(demo / "subtitle_chieng.csv")
    assert list(subs.columns) == ["name", "chinese", "english"] and subs.name.tolist() == names
    assert pd.read_csv(demo / "track_all_candidates.csv").name.tolist() == names
    seen = []
    for tag in ("mercaptionplus", "ovmerd"):
        track2 = pd.read_csv(demo / f"track2_train_{tag}.csv")
        track3 = pd.read_csv(demo / f"track3_train_{tag}.csv")
        assert list(track2.columns) == ["name", "openset"] and list(track3.columns) == ["name", "reason"]
        assert track2.name.tolist() == track3.name.tolist() and len(track2) > 0
        for openset, reason in zip(track2.openset, track3.reason):
            labels = parse_openset(openset)
            assert 1 <= len(labels) <= 3 and len(set(labels)) == len(labels)
            assert reason.startswith("In the video,") and reason.endswith(f"feels {', '.join(labels)}.")
        seen += track2.name.tolist()
    assert sorted(seen) == names  # OV-MERD and MER-Caption+ partition the names
    assert len(pd.read_csv(demo / "track2_train_ovmerd.csv")) == N // 5
    for name in names:
        assert (demo / "video" / f"{name}.mp4").is_file() and (demo / "audio" / f"{name}.wav").is_file()
        assert (demo / "openface_face" / name / f"{name}.npy").is_file()
    assert (demo / ".complete").is_file() and not (demo / ".generating").exists()
    assert "Generative rules" in (demo / "DEMO_DATASET.md").read_text()


def test_media_files_are_real_and_decodable(demo, decoded):
    for i in range(N):
        name = f"sample_{i:08d}"
        video = demo / "video" / f"{name}.mp4"
        with av.open(str(video)) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            assert len(container.streams.audio) == 1 and container.streams.audio[0].codec_context.name == "aac"
        assert len(decord.VideoReader(str(video))) == synthetic.N_FRAMES
        info = soundfile.info(str(demo / "audio" / f"{name}.wav"))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        faces = np.load(demo / "openface_face" / name / f"{name}.npy", allow_pickle=False)
        assert faces.shape == (synthetic.N_FACES, 112, 112, 3) and faces.dtype == np.uint8
        media = decoded[name]
        assert media["frames"].shape == (8, 224, 224, 3) and media["frames"].dtype == np.uint8
        assert media["faces"].shape == (8, 224, 224, 3) and media["faces"].dtype == np.uint8
        assert media["audio"].shape == (8, 32000) and media["audio"].dtype == np.float32
        if i < 4:  # the mp4's AAC track carries the same audio as the wav
            from_mp4 = load_audio_clips(video, sample=name)
            assert from_mp4.shape == (8, 32000)
            peak = lambda clips: np.argmax(np.abs(np.fft.rfft(clips[0])))  # noqa: E731
            assert abs(peak(from_mp4) - peak(media["audio"])) <= 4


def test_deterministic(demo, tmp_path):
    again = synthetic.generate(tmp_path / "again", n=N, seed=0, unibench=False)
    for csv in sorted(demo.glob("*.csv")):
        assert (again / csv.name).read_bytes() == csv.read_bytes()
    for npy in sorted((demo / "openface_face").rglob("*.npy")):
        assert (again / npy.relative_to(demo)).read_bytes() == npy.read_bytes()
    for wav in sorted((demo / "audio").glob("*.wav")):
        assert (again / wav.relative_to(demo)).read_bytes() == wav.read_bytes()
    small = [synthetic.generate(tmp_path / f"seed{seed}", n=3, seed=seed, unibench=False) for seed in (0, 1)]
    face = Path("openface_face/sample_00000000/sample_00000000.npy")
    assert (small[0] / face).read_bytes() != (small[1] / face).read_bytes()  # the seed matters


def test_labels_are_wheel_words_and_subtitles_are_neutral(demo):
    words = wheel_words()
    labels = set()
    for tag in ("mercaptionplus", "ovmerd"):
        for openset in pd.read_csv(demo / f"track2_train_{tag}.csv").openset:
            labels |= set(parse_openset(openset))
    assert labels <= words and len(labels) >= 8
    assert set(synthetic.EMOTIONS) <= words
    subs = pd.read_csv(demo / "subtitle_chieng.csv")
    for english in subs.english:
        tokens = set(re.findall(r"[a-z']+", english.lower()))
        assert not tokens & (words | set(synthetic.EMOTIONS)), english
    assert all(isinstance(c, str) and c for c in subs.chinese)


def primaries(demo: Path) -> dict[str, str]:
    out = {}
    for tag in ("mercaptionplus", "ovmerd"):
        table = pd.read_csv(demo / f"track2_train_{tag}.csv")
        out.update({n: parse_openset(o)[0] for n, o in zip(table.name, table.openset)})
    return out


def leave_one_out_accuracy(features: np.ndarray, labels: list[str]) -> float:
    """Nearest centroid, each sample scored against centroids computed without it (held out)."""
    labels_arr = np.array(labels)
    correct = 0
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        classes = sorted(set(labels_arr[keep]))
        centroids = np.stack([features[keep & (labels_arr == c)].mean(axis=0) for c in classes])
        correct += classes[int(np.argmin(np.linalg.norm(centroids - features[i], axis=1)))] == labels[i]
    return correct / len(labels)


def test_primary_emotion_is_learnable_from_media(demo, decoded):
    truth = primaries(demo)
    names = sorted(truth)
    labels = [truth[n] for n in names]
    assert len(set(labels)) == len(synthetic.EMOTIONS)  # balanced: every emotion appears (>= 2 times)
    colour = np.stack([decoded[n]["frames"].reshape(-1, 3).mean(axis=0) for n in names])
    face_colour = np.stack([decoded[n]["faces"].reshape(-1, 3).mean(axis=0) for n in names])
    clips = [decoded[n]["audio"][0] for n in names]
    pitch = np.array([[np.argmax(np.abs(np.fft.rfft(c))) * 16000 / len(c)] for c in clips])
    assert leave_one_out_accuracy(colour, labels) >= 0.9
    assert leave_one_out_accuracy(face_colour, labels) >= 0.9
    assert leave_one_out_accuracy(np.log(pitch), labels) >= 0.9
    # faces are stored BGR: as stored, the channels are the reverse of the colour-correct ones
    first = names[0]
    stored = load_faces(demo / "openface_face" / first / f"{first}.npy")
    np.testing.assert_array_equal(stored[..., ::-1], decoded[first]["faces"])


def test_secondary_labels_are_in_the_media(demo, decoded):
    """Each secondary label shows as a corner marker in its colour and a faint overtone at its frequency."""
    table = pd.read_csv(demo / "track2_train_mercaptionplus.csv")
    checked = 0
    for name, openset in zip(table.name, table.openset):
        labels = parse_openset(openset)
        frames = decoded[name]["frames"].astype(float)  # 112 px video at 224: markers span 8..40 px from the top/side
        spectrum = np.abs(np.fft.rfft(decoded[name]["audio"][0]))
        for k, label in enumerate(labels[1:]):
            corner = frames[:, 12:36, 12:36] if k == 0 else frames[:, 12:36, -36:-12]
            assert np.abs(corner.mean(axis=(0, 1, 2)) - synthetic.CUES[label].colour).max() < 25, (name, label)
            bin_ = int(synthetic.CUES[label].overtone * 2)
            assert spectrum[bin_ - 2 : bin_ + 3].max() > 20 * np.median(spectrum), (name, label)
            checked += 1
    assert checked >= 5


UNIBENCH_VIDEO = {  # the official releases' video folders (reference §3.3)
    "OVMERDPlus": "video",
    "MER2023": "video",
    "MER2024": "video",
    "MELD": "subvideo",
    "IEMOCAPFour": "subvideo-tgt",
    "CMUMOSI": "subvideo",
    "CMUMOSEI": "subvideo_new",
    "SIMS": "video",
    "SIMSv2": "video_new",
}


def npz_dicts(path: Path) -> dict[str, dict]:
    keys = [k[: -len(".npy")] for k in zipfile.ZipFile(path).namelist()]
    return {k: load_npz_object(path, k) for k in keys}


def test_unibench_folders(demo):
    root = demo / "unibench"
    assert sorted(p.name for p in root.iterdir()) == sorted(UNIBENCH_VIDEO)
    for dataset, video_dir in UNIBENCH_VIDEO.items():
        folder = root / dataset
        audio_dir = "subaudio" if dataset == "MELD" else "audio"  # the official releases' audio folders
        assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted({video_dir, audio_dir, "openface_face"})
        ext = "avi" if dataset == "IEMOCAPFour" else "mp4"
        if dataset == "OVMERDPlus":
            labels = pd.read_csv(folder / "ovlabel.csv")
            assert list(labels.columns) == ["name", "openset"]
            assert list(pd.read_csv(folder / "subtitle_eng.csv").columns) == ["name", "sentence"]
            names = labels.name.tolist()
            assert all(set(parse_openset(o)) <= set(synthetic.EMOTIONS) for o in labels.openset)
        else:
            sub_file = "transcription_merge.csv" if dataset == "MER2024" else "transcription-engchi-polish.csv"
            subs = pd.read_csv(folder / sub_file)
            assert list(subs.columns) == ["name", "chinese", "english"]
            names = subs.name.tolist()
            if dataset in ("MER2023", "MER2024"):
                corpora = npz_dicts(folder / "label-6way.npz")
                assert corpora["train_corpus"] == {} and sorted(corpora["test1_corpus"]) == sorted(names)
                assert {v["emo"] for v in corpora["test1_corpus"].values()} == set(synthetic.MER6)
                assert all(isinstance(v["val"], float) for v in corpora["test1_corpus"].values())
            elif dataset == "MELD":
                corpora = npz_dicts(folder / "label.npz")
                assert set(corpora) == {"train_corpus", "val_corpus", "test_corpus"}
                assert sorted(corpora["test_corpus"]) == sorted(names) and all(n.startswith("test_dia") for n in names)
                assert {v["emo"] for v in corpora["test_corpus"].values()} == set(range(7))
            elif dataset == "IEMOCAPFour":
                whole = npz_dicts(folder / "label_4way.npz")["whole_corpus"]
                assert sorted(whole) == sorted(names) and {v["emo"] for v in whole.values()} == {0, 1, 2, 3}
                assert sum(n.startswith("Ses01") for n in names) == 2 and sum(n[4] == "5" for n in names) >= 10
            else:
                corpora = npz_dicts(folder / "label.npz")
                values = [v["val"] for v in corpora["test_corpus"].values()]
                assert sorted(corpora["test_corpus"]) == sorted(names) and corpora["train_corpus"] == {}
                assert min(values) < 0 < max(values) and values.count(0.0) == 1
                assert all(-3 <= v <= 3 for v in values)
        assert len(names) >= 12
        for name in names:
            assert (folder / video_dir / f"{name}.{ext}").is_file() and (folder / audio_dir / f"{name}.wav").is_file()
            assert (folder / "openface_face" / f"{name}.npy").is_file()  # flat, as in the official roots
        first = names[0]
        assert load_frames(folder / video_dir / f"{first}.{ext}").shape == (8, 224, 224, 3)
        assert load_faces(folder / "openface_face" / f"{first}.npy").shape == (8, 224, 224, 3)
        assert load_audio_clips(folder / audio_dir / f"{first}.wav").shape == (8, 32000)


def test_unibench_labels_match_media(demo):
    """MELD's integer labels index the official order, and the frames show that emotion's cue colour."""
    folder = demo / "unibench" / "MELD"
    corpus = npz_dicts(folder / "label.npz")["test_corpus"]
    for name, entry in corpus.items():
        word = synthetic.MELD7[entry["emo"]]
        cue = synthetic.CUES[synthetic.TO_CUE.get(word, word)]
        frames = load_frames(folder / "subvideo" / f"{name}.mp4", size=112)
        background = np.median(frames.reshape(-1, 3), axis=0)  # the shape covers well under half the frame
        assert np.abs(background - cue.colour).max() < 20, (name, word)


def test_ensure_is_idempotent_and_redoes_partial_folders(tmp_path):
    out = tmp_path / "d"
    synthetic.ensure_demo_dataset(out, n=3, seed=0, unibench=False)
    sentinel = out / "sentinel.txt"
    sentinel.write_text("x")
    synthetic.ensure_demo_dataset(out, n=3, seed=0, unibench=False)
    assert sentinel.exists()  # complete with the same parameters: untouched
    (out / ".complete").unlink()
    (out / ".generating").write_text("interrupted")
    synthetic.ensure_demo_dataset(out, n=3, seed=0, unibench=False)
    assert not sentinel.exists() and (out / ".complete").is_file() and not (out / ".generating").exists()
    sentinel.write_text("x")
    synthetic.ensure_demo_dataset(out, n=4, seed=0, unibench=False)  # other parameters: regenerated
    assert not sentinel.exists() and len(pd.read_csv(out / "subtitle_chieng.csv")) == 4


def test_refuses_to_overwrite_foreign_folder(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("important")
    with pytest.raises(FileExistsError, match="not a generated demo dataset"):
        synthetic.generate(foreign, n=2)
    assert (foreign / "thesis.tex").read_text() == "important"


def test_cli(tmp_path, capsys):
    synthetic.main(["--out", str(tmp_path / "cli"), "--n", "2", "--seed", "3", "--no-unibench"])
    assert "wrote" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "cli" / "track_all_candidates.csv")) == 2
    assert not (tmp_path / "cli" / "unibench").exists()


def test_biased_caption_world_keeps_media_and_clean_sets(tmp_path):
    """caption_bias: MER-Caption+ labels gain the unsupported BIAS_LABEL at the configured rate; the media, the
    OV-MERD labels and every other file equal the unbiased world's; the marker records the world."""
    clean = synthetic.generate(tmp_path / "clean", n=40, seed=3, unibench=False)
    biased = synthetic.generate(tmp_path / "biased", n=40, seed=3, unibench=False, caption_bias=1.0)
    truth = pd.read_csv(clean / "track2_train_mercaptionplus.csv").set_index("name")["openset"]
    noisy = pd.read_csv(biased / "track2_train_mercaptionplus.csv").set_index("name")["openset"]
    assert list(truth.index) == list(noisy.index)
    bias = synthetic.BIAS_LABEL
    for name in truth.index:
        true_labels = truth[name].strip("[]").split(", ")
        expected = true_labels if bias in true_labels else [*true_labels, bias]  # bias 1.0: every sample lacking it
        assert noisy[name] == "[" + ", ".join(expected) + "]", name
    reasons = pd.read_csv(biased / "track3_train_mercaptionplus.csv").set_index("name")["reason"]
    assert all(reasons[n].endswith(f"feels {noisy[n].strip('[]')}.") for n in noisy.index)
    for same in ("track2_train_ovmerd.csv", "track3_train_ovmerd.csv", "subtitle_chieng.csv"):
        assert (clean / same).read_bytes() == (biased / same).read_bytes(), same
    name = truth.index[0]
    assert (clean / "audio" / f"{name}.wav").read_bytes() == (biased / "audio" / f"{name}.wav").read_bytes()
    assert json.loads((biased / ".complete").read_text())["caption_bias"] == 1.0
    assert "caption_bias" not in json.loads((clean / ".complete").read_text())  # old demo markers stay valid
    specs = [s for s in synthetic._specs("s", 4000, np.random.default_rng(0)) if bias not in s.labels]
    half = synthetic.machine_labels(specs, 0.5, seed=1)
    rate = np.mean([half[s.name] == [*s.labels, bias] for s in specs])
    assert abs(rate - 0.5) < 0.03, rate  # 3 sigma of a binomial rate over >= 3000 draws is <= 0.027


def test_demo_worlds_are_located_by_folder_name():
    assert synthetic.demo_world("data/demo") == {}
    assert synthetic.demo_world("./data/demo_rl/")["caption_bias"] == 0.8
    assert synthetic.demo_world("data/mer2025") is None

"""AffectDataset + Collator: official prompts/targets, label masking, padding, hybrid draws, errors."""

from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from affectgpt.config import DataConfig, ModelConfig
from affectgpt.data.dataset import AffectDataset, Collator
from affectgpt.data.media import load_sample_media
from affectgpt.data.prompts import build_prompt, build_target, ovlabel_answer
from affectgpt.data.records import DataError, Record, SkipLog
from affectgpt.model.tokenizer import load_tokenizer, placeholder_ids

EOS, BOS = 151645, 151644
SUBTITLES = ["I can't believe we won!", "Leave me alone.", "我不知道。"]

FACE_PROMPT = (
    "###Human: The audio and video merged info is: <Multi><MultiHere></Multi>. "
    "The audio content is as follows: <Audio><AudioHere></Audio>. "
    "Meanwhile, we uniformly sample raw frames from the video and extract faces from these frames: "
    "<Video><FaceHere></Video>. "
    "The subtitle of this video is: <Subtitle>{sub}</Subtitle>. "
    "Now, please answer my question based on all the provided information. {q} ###Assistant: "
)
FRAME_PROMPT = FACE_PROMPT.replace(
    "raw frames from the video and extract faces from these frames: <Video><FaceHere></Video>",
    "raw frames from the video: <Video><FrameHere></Video>",
)
DESC_Q = "Please infer the person's emotional state and provide your reasoning process."
OV_Q = "Please recognize all possible emotional states of the character."


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(ModelConfig())


def _mp4(path: Path, value: int) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(16):
            img = np.full((48, 64, 3), value, np.uint8)
            img[..., 0] = i * 15
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[Record]:
    root = tmp_path_factory.mktemp("media")
    out = []
    for k, sub in enumerate(SUBTITLES):
        name = f"sample_{k:08d}"
        _mp4(root / f"{name}.mp4", 40 * k)
        t = np.arange(16000 * 3) / 16000
        sf.write(root / f"{name}.wav", (0.1 * (k + 1) * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
        np.save(root / f"{name}.npy", np.full((5, 32, 32, 3), 10 + 50 * k, np.uint8))
        out.append(
            Record(
                name=name,
                dataset="test",
                video=root / f"{name}.mp4",
                audio=root / f"{name}.wav",
                face=root / f"{name}.npy",
                subtitle=sub,
                description=f"In the text, the caption reads: {sub}",
                ovlabels=[["happy", "excited"], [], ["confused"]][k],
            )
        )
    return out


def text_only_loader(record: Record, data_cfg: DataConfig) -> dict[str, np.ndarray]:
    """Stand-in for tokenisation-only tests (many accesses): constant arrays of the real shapes."""
    out = {"audio": np.zeros((8, 32000), np.float32)}
    if record.face is not None:
        out["faces"] = np.zeros((8, 224, 224, 3), np.uint8)
    if record.video is not None:
        out["frames"] = np.zeros((8, 224, 224, 3), np.uint8)
    return out


def make(records, tok, label_type="ovlabel", mode="multiface_audio_face_text", loader=None, **data_kw):
    model_cfg = ModelConfig(face_or_frame=mode, max_length=data_kw.pop("max_length", 1024))
    data_cfg = DataConfig(label_type=label_type, **data_kw)
    return AffectDataset(records, data_cfg, model_cfg, tok, media_loader=loader)


def test_official_face_prompt_real_media(records, tok):
    ds = make(records, tok, label_type="ovlabel", on_error="raise")
    item = ds[0]
    assert item["prompt"] == FACE_PROMPT.format(sub=SUBTITLES[0], q=OV_Q)
    assert item["target"] == "The character's emotional state is happy, excited.###"
    ids = item["prompt_ids"]
    pid = placeholder_ids(tok)
    assert (ids.count(pid["multi"]), ids.count(pid["audio"]), ids.count(pid["face"])) == (1, 1, 1)  # E17
    assert ids.count(pid["frame"]) == 0
    assert item["input_ids"] == ids + item["target_ids"]
    assert item["labels"] == [-100] * len(ids) + item["target_ids"]
    assert tok.decode(item["target_ids"]) == item["target"]
    # Only the streams this prompt uses were decoded, through the real loader.
    assert set(k for k in ("frames", "faces", "audio") if k in item) == {"faces", "audio"}
    expected = load_sample_media(records[0], ds.data_cfg)
    np.testing.assert_array_equal(item["faces"], expected["faces"])
    np.testing.assert_array_equal(item["audio"], expected["audio"])
    assert item["faces"].shape == (8, 224, 224, 3) and item["audio"].shape == (8, 32000)


def test_official_frame_prompt_and_description(records, tok):
    ds = make(records, tok, label_type="description", mode="multiframe_audio_frame_text", on_error="raise")
    item = ds[1]
    assert item["prompt"] == FRAME_PROMPT.format(sub=SUBTITLES[1], q=DESC_Q)
    assert item["target"] == f"In the text, the caption reads: {SUBTITLES[1]}###"
    assert placeholder_ids(tok)["frame"] in item["prompt_ids"]
    assert "frames" in item and "faces" not in item
    assert item["frames"].dtype == np.uint8 and item["frames"].shape == (8, 224, 224, 3)


def test_collator_official_layout(records, tok):
    ds = make(records, tok, label_type="ovlabel", on_error="raise")
    items = [ds[0], ds[1]]
    batch = Collator(tok)(items)
    lengths = [len(it["input_ids"]) + 2 for it in items]
    width = max(lengths)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, width)
    for row, (it, n) in enumerate(zip(items, lengths)):
        ids, labels, mask = batch["input_ids"][row], batch["labels"][row], batch["attention_mask"][row]
        assert ids[0] == BOS and ids[n - 1] == EOS
        assert ids[1 : n - 1].tolist() == it["input_ids"]
        n_prompt = len(it["prompt_ids"])
        assert (labels[: 1 + n_prompt] == -100).all()
        assert labels[1 + n_prompt : n - 1].tolist() == it["target_ids"]
        assert labels[n - 1] == EOS  # E17: collated labels end with the eos id
        # Right padding: pad (= eos) ids, -100 labels, mask 0; the appended eos stays visible.
        assert (ids[n:] == tok.pad_token_id).all() and (labels[n:] == -100).all()
        assert mask[:n].tolist() == [1] * n and mask[n:].sum() == 0
    assert batch["faces"].dtype == torch.uint8 and batch["faces"].shape == (2, 8, 224, 224, 3)
    assert batch["audio"].dtype == torch.float32 and batch["audio"].shape == (2, 8, 32000)
    assert batch["names"] == ["sample_00000000", "sample_00000001"] and batch["n_dropped"] == 0
    padded = Collator(tok, pad_to_multiple_of=64)(items)
    assert padded["input_ids"].shape[1] % 64 == 0 and padded["attention_mask"].sum() == sum(lengths)


def test_empty_ovlabels_become_neutral(records, tok):
    assert ovlabel_answer([]) == "The character's emotional state is neutral."
    assert ovlabel_answer(None) == ovlabel_answer([" "])
    ds = make(records, tok, label_type="ovlabel", loader=text_only_loader)
    assert ds[1]["target"] == "The character's emotional state is neutral.###"


def test_hybrid_reproducible_and_varied(records, tok):
    def draws(ds, epochs=(0, 1), n=12):
        out = []
        for epoch in epochs:
            ds.set_epoch(epoch)
            out.append([ds[i % 3]["label_type"] for i in range(n)])
        return out

    a = draws(make(records, tok, label_type="hybrid", loader=text_only_loader))
    b = draws(make(records, tok, label_type="hybrid", loader=text_only_loader))
    assert a == b
    assert a[0] != a[1]  # epochs differ
    assert set(a[0]) == {"description", "ovlabel"}  # accesses vary
    assert set(a[0][0::3]) == {"description", "ovlabel"}  # the same sample gets both over accesses
    other = draws(make(records, tok, label_type="hybrid", loader=text_only_loader), epochs=(0,))
    other_seed = make(records, tok, label_type="hybrid", loader=text_only_loader)
    other_seed.seed = 7
    assert draws(other_seed, epochs=(0,)) != other
    item = make(records, tok, label_type="hybrid", loader=text_only_loader)[0]
    question = DESC_Q if item["label_type"] == "description" else OV_Q
    assert item["prompt"] == FACE_PROMPT.format(sub=SUBTITLES[0], q=question)


def test_token_memo_returns_the_tokenizer_ids_and_stays_bounded(records, tok, monkeypatch):
    ds = make(records, tok, label_type="hybrid", loader=text_only_loader)
    items = [ds[i % 3] for i in range(24)]  # both label types for every sample: 4 distinct texts each
    assert len(ds._token_memo) == 12
    for item in items:
        assert item["prompt_ids"] == tok(item["prompt"], add_special_tokens=False)["input_ids"]
        assert item["target_ids"] == tok(item["target"], add_special_tokens=False)["input_ids"]
    item = items[0]
    item["prompt_ids"].append(-1)  # callers get their own list: editing it cannot corrupt the memo
    assert ds._ids(item["prompt"]) == tok(item["prompt"], add_special_tokens=False)["input_ids"]
    monkeypatch.setattr("affectgpt.data.dataset.TOKEN_MEMO_ENTRIES", 5)
    small = make(records, tok, label_type="hybrid", loader=text_only_loader)
    again = [small[i % 3] for i in range(24)]
    assert len(small._token_memo) <= 5
    for item in again:
        assert item["prompt_ids"] == tok(item["prompt"], add_special_tokens=False)["input_ids"]
        assert item["target_ids"] == tok(item["target"], add_special_tokens=False)["input_ids"]


def test_set_epoch_restarts_the_access_counts(records, tok):
    """A draw depends on (seed, epoch, index, access within the epoch), not on earlier epochs' accesses."""

    def epoch_draws(ds, epoch, n=12):
        ds.set_epoch(epoch)
        return [ds[i % 3]["label_type"] for i in range(n)]

    reused = make(records, tok, label_type="hybrid", loader=text_only_loader)
    first = [epoch_draws(reused, 0), epoch_draws(reused, 1)]
    assert epoch_draws(reused, 0) == first[0]  # the same epoch again draws the same
    assert epoch_draws(reused, 1) == first[1]
    fresh = make(records, tok, label_type="hybrid", loader=text_only_loader)
    assert epoch_draws(fresh, 1) == first[1]  # a fresh dataset (one per pass in the trainer) agrees


def test_evaluation_question(records, tok):
    """question=None asks the OV-label question (target kept for scoring); another question has no target."""
    data_cfg = DataConfig(label_type="description")
    default = AffectDataset(records, data_cfg, ModelConfig(), tok, split="test", media_loader=text_only_loader)[0]
    explicit = AffectDataset(
        records, data_cfg, ModelConfig(), tok, split="test", media_loader=text_only_loader, question=OV_Q
    )[0]
    assert default["prompt"] == explicit["prompt"] == FACE_PROMPT.format(sub=SUBTITLES[0], q=OV_Q)
    assert default["target"] == explicit["target"] == "The character's emotional state is happy, excited.###"
    asked = AffectDataset(
        records, data_cfg, ModelConfig(), tok, split="test", media_loader=text_only_loader, question=DESC_Q
    )[0]
    assert asked["prompt"] == FACE_PROMPT.format(sub=SUBTITLES[0], q=DESC_Q)
    assert asked["target"] == "" and asked["target_ids"] == [] and asked["label_type"] == "question"
    with pytest.raises(ValueError, match="evaluation splits"):
        AffectDataset(records, data_cfg, ModelConfig(), tok, split="train", question=DESC_Q)
    with pytest.raises(ValueError, match="empty"):
        AffectDataset(records, data_cfg, ModelConfig(), tok, split="test", question="  ")


def test_overlong_sample_error_and_skip(records, tok):
    ds = make(records, tok, label_type="ovlabel", loader=text_only_loader, on_error="raise", max_length=80)
    with pytest.raises(DataError) as err:
        ds[0]
    full = make(records, tok, label_type="ovlabel", loader=text_only_loader)[0]
    total = len(full["input_ids"])
    assert total > 80
    message = str(err.value)
    assert "sample_00000000" in message and f"{total} tokens" in message and "max_length=80" in message

    skips = SkipLog()
    ds = AffectDataset(
        records,
        DataConfig(label_type="ovlabel", on_error="skip"),
        ModelConfig(max_length=80),
        tok,
        skips=skips,
        media_loader=text_only_loader,
    )
    assert ds[0] is None and skips.total == 1
    batch = Collator(tok)([ds[0], full, None])
    assert batch["n_dropped"] == 2 and batch["names"] == ["sample_00000000"]
    assert batch["input_ids"].shape == (1, total + 2) and skips.total == 2


def test_bad_samples_named(records, tok, tmp_path):
    no_face = Record(name="noface", dataset="t", audio=records[0].audio, subtitle="x", ovlabels=["sad"])
    broken = Record(name="broken", dataset="t", audio=records[0].audio, face=tmp_path / "missing.npy", subtitle="x")
    not_text = Record(name="nantext", dataset="t", audio=records[0].audio, face=records[0].face, subtitle=float("nan"))
    no_desc = Record(name="nodesc", dataset="t", audio=records[0].audio, face=records[0].face, subtitle="x")
    ds = make([no_face, broken, not_text], tok, label_type="ovlabel", on_error="raise")
    for index, (name, reason) in enumerate([("noface", "faces"), ("broken", "missing.npy"), ("nantext", "subtitle")]):
        with pytest.raises(DataError, match=reason) as err:
            ds[index]
        assert name in str(err.value)
    with pytest.raises(DataError, match="no description"):
        make([no_desc], tok, label_type="description", on_error="raise")[0]
    skipping = make([no_face, broken, not_text, records[0]], tok, label_type="ovlabel")
    batch = Collator(tok)([skipping[i] for i in range(4)])
    assert batch["n_dropped"] == 3 and skipping.skips.total == 3 and batch["names"] == [records[0].name]


def test_shuffle_media_pairs_with_other_sample(records, tok):
    ds = make(records, tok, label_type="ovlabel", shuffle_media=True, on_error="raise")
    again = make(records, tok, label_type="ovlabel", shuffle_media=True, on_error="raise")
    assert ds.media_index == again.media_index
    assert sorted(ds.media_index) == [0, 1, 2] and all(ds.media_index[i] != i for i in range(3))
    for i in range(3):
        item = ds[i]
        partner = records[ds.media_index[i]]
        assert item["name"] == records[i].name and item["media_name"] == partner.name
        assert SUBTITLES[i] in item["prompt"]
        assert int(item["faces"][0, 0, 0, 0]) == int(np.load(partner.face)[0, 0, 0, 0])


def test_chatml_style(records, tok):
    ds = make(records, tok, label_type="ovlabel", prompt_style="chatml", loader=text_only_loader)
    item = ds[0]
    content = FACE_PROMPT.format(sub=SUBTITLES[0], q=OV_Q)[len("###Human: ") : -len(" ###Assistant: ")]
    assert item["prompt"] == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert item["target"] == "The character's emotional state is happy, excited.<|im_end|>"
    assert build_target("a", "chatml") == "a<|im_end|>" and build_target("a", "official") == "a###"
    batch = Collator(tok, prompt_style="chatml")([item])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    assert ids == item["input_ids"] and ids[0] == BOS and ids.count(BOS) == 3
    assert labels[-1] == EOS and labels[-2] != EOS and batch["attention_mask"].all()


def test_inference_left_padding(records, tok):
    data_cfg = DataConfig(label_type="description")
    ds = AffectDataset(records, data_cfg, ModelConfig(), tok, split="val", media_loader=text_only_loader)
    items = [ds[0], ds[2]]
    assert all(it["label_type"] == "ovlabel" and it["prompt"].endswith(OV_Q + " ###Assistant: ") for it in items)
    assert items[0]["target"] == "The character's emotional state is happy, excited.###"
    batch = Collator(tok, left_pad=True)(items)
    assert "labels" not in batch
    lengths = [len(it["prompt_ids"]) for it in items]
    width = max(lengths)
    for row, (it, n) in enumerate(zip(items, lengths)):
        assert batch["input_ids"][row, width - n :].tolist() == it["prompt_ids"]  # no bos at inference
        assert batch["attention_mask"][row].tolist() == [0] * (width - n) + [1] * n
    assert batch["targets"][0].startswith("The character's emotional state is")


def test_config_errors(records, tok):
    with pytest.raises(
        ValueError, match="Unsupported face_or_frame 'facefram'; supported: faceframe, .*_face_frame_text"
    ):
        make(records, tok, mode="facefram")
    with pytest.raises(ValueError, match="label_type"):
        make(records, tok, label_type="hybrd")  # ("hybird" is normalised when a config is loaded: test_modes.py)
    repeated = build_prompt("multiface_audio_face_text", "s", OV_Q, {"multi": 2, "audio": 3, "video": 4})
    assert "<Multi><MultiHere><MultiHere></Multi>" in repeated and repeated.count("<FaceHere>") == 4
    assert repeated.count("<AudioHere>") == 3


def test_subtitle_and_description_go_in_verbatim(records, tok):
    """Official: CSV cells are used as is (no strip) in the prompt, and the description is the target as is."""
    record = replace(records[1], subtitle="  Leave me alone.  ", description="In the text, the caption reads: no.   ")
    item = make([record], tok, label_type="description", loader=text_only_loader, on_error="raise")[0]
    prompt = (
        "###Human: The audio and video merged info is: <Multi><MultiHere></Multi>. The audio content is as follows: "
        "<Audio><AudioHere></Audio>. Meanwhile, we uniformly sample raw frames from the video and extract faces from "
        "these frames: <Video><FaceHere></Video>. The subtitle of this video is: <Subtitle>  Leave me alone.  "
        "</Subtitle>. Now, please answer my question based on all the provided information. Please infer the "
        "person's emotional state and provide your reasoning process. ###Assistant: "
    )
    target = "In the text, the caption reads: no.   ###"
    assert item["prompt_ids"] == tok(prompt, add_special_tokens=False)["input_ids"]
    assert item["target_ids"] == tok(target, add_special_tokens=False)["input_ids"]
    assert item["target_ids"] != tok("In the text, the caption reads: no.###", add_special_tokens=False)["input_ids"]
    with pytest.raises(DataError, match="no description"):  # emptiness is still checked (on the stripped text)
        make(
            [replace(record, description=" \t ")],
            tok,
            label_type="description",
            loader=text_only_loader,
            on_error="raise",
        )[0]


def test_placeholder_text_of_another_mode_inside_a_subtitle_is_an_error(records, tok):
    """Every placeholder is counted: the mode's ones must appear num_*_query_token times, the others never."""
    record = replace(records[0], subtitle="see <FaceHere>")
    with pytest.raises(DataError, match=r"sample_00000000.*prompt has 1 x <FaceHere>, expected 0"):
        make([record], tok, mode="textonly", loader=text_only_loader, on_error="raise")[0]
    with pytest.raises(DataError, match=r"prompt has 2 x <FaceHere>, expected 1"):
        make([record], tok, mode="face", loader=text_only_loader, on_error="raise")[0]

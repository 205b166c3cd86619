"""Prompts, questions and answers against the official strings, written out here verbatim (task brief / reference §3.4).

Every expected string below is typed from the official templates, never produced by our code.
"""

from __future__ import annotations

import pytest

from affectgpt.config import ModelConfig
from affectgpt.data import prompts
from affectgpt.data.modes import MODES
from affectgpt.data.records import Record
from affectgpt.infer.generate import resolve_question
from affectgpt.model.tokenizer import load_tokenizer

SUB = "  I can't believe we won!  "  # leading/trailing spaces: the CSV cell goes in verbatim
Q = "Please recognize all possible emotional states of the character."
N1 = {"multi": 1, "audio": 1, "video": 1}

A = "The audio content is as follows: <Audio><AudioHere></Audio>. "
M = "The audio and video merged info is: <Multi><MultiHere></Multi>. "
F = "Meanwhile, we uniformly sample raw frames from the video and extract faces from these frames: <Video><FaceHere></Video>. "  # noqa: E501
R = "Meanwhile, we uniformly sample raw frames from the video: <Video><FrameHere></Video>. "
S = "The subtitle of this video is: <Subtitle>  I can't believe we won!  </Subtitle>. "
END = (
    "Now, please answer my question based on all the provided information. "
    "Please recognize all possible emotional states of the character. ###Assistant: "
)
OFFICIAL = {
    "faceframe": "###Human: " + A + R + "Additionally, we uniformly sample raw frames from the video and extract faces "
    "from these frames: <Video><FaceHere></Video>. " + S + END,
    "face": "###Human: " + A + F + S + END,
    "frame": "###Human: " + A + R + S + END,
    "audioonly": "###Human: " + A + END,
    "textonly": "###Human: " + S + END,
    "faceonly": "###Human: We uniformly sample raw frames from the video and extract faces from these frames: "
    "<Video><FaceHere></Video>. " + END,
    "frameonly": "###Human: We uniformly sample raw frames from the video: <Video><FrameHere></Video>. " + END,
    "image": "###Human: The image content is as follows: <Image><ImageHere></Image>. " + END,
    "audio_text": A + S + END,
    "face_text": "We uniformly sample raw frames from the video and extract faces from these frames: "
    "<Video><FaceHere></Video>. " + S + END,
    "frame_text": "we uniformly sample raw frames from the video: <Video><FrameHere></Video>. " + S + END,
    "multiface_text": "###Human: " + M + S + END,
    "multiface_audio_face_text": "###Human: " + M + A + F + S + END,
    "multiframe_audio_frame_text": "###Human: " + M + A + R + S + END,
    "multiface_audio_face_frame_text": "###Human: " + M + A + F + R + S + END,
}

# The headline prompt typed in one piece (no shared fragments), so a typo in A/M/F/S/END above cannot hide.
HEADLINE = (
    "###Human: The audio and video merged info is: <Multi><MultiHere></Multi>. The audio content is as follows: "
    "<Audio><AudioHere></Audio>. Meanwhile, we uniformly sample raw frames from the video and extract faces from "
    "these frames: <Video><FaceHere></Video>. The subtitle of this video is: <Subtitle>  I can't believe we won!  "
    "</Subtitle>. Now, please answer my question based on all the provided information. Please recognize all "
    "possible emotional states of the character. ###Assistant: "
)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(ModelConfig())


def test_the_table_has_exactly_the_15_official_modes():
    assert set(MODES) == set(OFFICIAL) and len(OFFICIAL) == 15
    assert OFFICIAL["multiface_audio_face_text"] == HEADLINE


@pytest.mark.parametrize("mode", list(OFFICIAL))
def test_every_mode_renders_the_official_prompt(mode):
    assert prompts.build_prompt(mode, SUB, Q, N1) == OFFICIAL[mode]
    assert prompts.build_prompt(mode, SUB, Q, N1, style="official") == OFFICIAL[mode]


@pytest.mark.parametrize("mode", ["multiface_audio_face_text", "audio_text", "frame_text"])
def test_chatml_renders_the_same_content_as_one_user_turn(mode, tok):
    content = OFFICIAL[mode].removeprefix("###Human: ").removesuffix(" ###Assistant: ")
    assert prompts.prompt_content(mode, SUB, Q, N1) == content
    assert prompts.build_prompt(mode, SUB, Q, N1, "chatml", tok) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        f"<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"
    )
    with pytest.raises(ValueError, match="needs the tokenizer"):
        prompts.build_prompt(mode, SUB, Q, N1, "chatml")


def test_placeholders_repeat_num_query_tokens():
    n = {"multi": 2, "audio": 3, "video": 4}
    text = prompts.build_prompt("multiface_audio_face_frame_text", "s", Q, n)
    assert "<Multi><MultiHere><MultiHere></Multi>" in text
    assert "<Audio>" + "<AudioHere>" * 3 + "</Audio>" in text
    assert "<Video>" + "<FaceHere>" * 4 + "</Video>" in text and "<Video>" + "<FrameHere>" * 4 + "</Video>" in text
    assert prompts.placeholder_counts("multiface_audio_face_frame_text", n) == {
        "multi": 2,
        "audio": 3,
        "face": 4,
        "frame": 4,
    }
    assert prompts.placeholder_counts("image", n) == {"image": 1}  # one image token, whatever the video count
    assert prompts.build_prompt("image", "s", Q, n).count("<ImageHere>") == 1
    assert prompts.placeholder_counts("textonly", n) == {}
    assert prompts.placeholder_counts("frame_text", {}) == {"frame": 1}  # knobs default to 1
    for knob, mode in (("video", "faceonly"), ("audio", "audioonly"), ("multi", "multiface_text")):
        with pytest.raises(ValueError, match=f"num_{knob}_query_token must be >= 1, got 0"):
            prompts.build_prompt(mode, "s", Q, {**N1, knob: 0})
    cfg = ModelConfig(num_multi_query_token=5, num_audio_query_token=6, num_video_query_token=7)
    assert prompts.n_query_from_config(cfg) == {"multi": 5, "audio": 6, "video": 7}


def test_unknown_mode_and_style_are_clear_errors():
    with pytest.raises(ValueError, match="Unsupported face_or_frame 'multiface'; supported: faceframe, face, frame,"):
        prompts.build_prompt("multiface", "s", Q, N1)
    for call in (
        lambda: prompts.build_prompt("face", "s", Q, N1, style="raw"),
        lambda: prompts.build_target("a", "raw"),
    ):
        with pytest.raises(ValueError, match="Unknown prompt_style 'raw'; supported: official, chatml"):
            call()
    assert prompts.build_target(" a  ") == " a  ###" and prompts.build_target("a", "chatml") == "a<|im_end|>"


VALENCE_3 = (
    "Please identify the overall positive or negative emotional polarity of the main characters. The output should "
    "be a \ufb02oating-point number ranging from -3 to 3. Here, -3 indicates extremely negative emotions, 0 indicates "
    "neutral emotions, and 3 indicates extremely positive emotions. Please provide your judgment as a "
    "\ufb02oating-point number."
)
VALENCE_1 = (
    "Please identify the overall positive or negative emotional polarity of the main characters. The output should "
    "be a \ufb02oating-point number ranging from -1 to 1. Here, -1 indicates extremely negative emotions, 0 indicates "
    "neutral emotions, and 1 indicates extremely positive emotions. Please provide your judgment as a "
    "\ufb02oating-point number."
)


def test_official_questions_verbatim():
    assert (
        prompts.DESCRIPTION_QUESTION == "Please infer the person's emotional state and provide your reasoning process."
    )
    assert prompts.OVLABEL_QUESTION == "Please recognize all possible emotional states of the character."
    assert prompts.SENTIMENT_QUESTION == (
        "Please select the most likely sentiment label that can best describe the "
        "person's emotional state: positive, negative, neutral."
    )
    assert (
        prompts.onehot_question()
        == prompts.onehot_question([])
        == ("Please recognize the character's most likely emotional state.")
    )
    assert prompts.onehot_question(["happy", "sad", "neutral", "anger"]) == (
        "Please select the label that can best describe the person's emotional state from the provided candidate "
        "labels: happy,sad,neutral,anger."
    )
    assert prompts.valence_question(-3, 3) == VALENCE_3
    assert prompts.valence_question(-1, 1) == VALENCE_1
    assert VALENCE_3.count("\ufb02") == 2 and "floating" not in VALENCE_3  # the official ligature, twice
    assert prompts.QUESTIONS == {"description": prompts.DESCRIPTION_QUESTION, "ovlabel": prompts.OVLABEL_QUESTION}


def test_official_answers_verbatim():
    assert prompts.ovlabel_answer(["excited", " nervous ", "", "hopeful"]) == (
        "The character's emotional state is excited, nervous, hopeful."
    )
    assert (
        prompts.ovlabel_answer([])
        == prompts.ovlabel_answer(None)
        == prompts.ovlabel_answer([" "])
        == ("The character's emotional state is neutral.")
    )
    assert prompts.sentiment_answer("positive") == "The character's sentiment state is positive."
    assert prompts.onehot_answer("worried", with_candidates=True) == "The most likely label is worried."
    assert prompts.onehot_answer("worried", with_candidates=False) == "The character's emotional state is worried."
    assert prompts.valence_answer(2.4) == "The valence score is 2.40."  # '%.2f' % 2.4
    assert prompts.valence_answer(-0.333) == "The valence score is -0.33."


def test_reference_answer_only_for_official_questions_with_known_ground_truth():
    def rec(**kw) -> Record:
        return Record(name="s", dataset="d", **kw)

    with_cands = prompts.onehot_question(["happy", "sad"])
    valence = prompts.valence_question(-1, 1)
    assert prompts.reference_answer(Q, rec(ovlabels=[])) == ("ovlabel", "The character's emotional state is neutral.")
    assert prompts.reference_answer(Q, rec(onehot="happy")) is None  # OV labels unknown
    assert prompts.reference_answer(prompts.ONEHOT_QUESTION, rec(onehot="happy")) == (
        "onehot",
        "The character's emotional state is happy.",
    )
    assert prompts.reference_answer(with_cands, rec(onehot="happy")) == ("onehot", "The most likely label is happy.")
    assert prompts.reference_answer(with_cands, rec(onehot="")) is None
    assert prompts.reference_answer(with_cands, rec(valence=1.0)) is None
    assert prompts.reference_answer(valence, rec(valence=-1.2)) == ("valence", "The valence score is -1.20.")
    assert prompts.reference_answer(valence, rec(valence=0.0)) == ("valence", "The valence score is 0.00.")
    assert prompts.reference_answer(valence, rec(onehot="sad")) is None
    for question in (prompts.DESCRIPTION_QUESTION, prompts.SENTIMENT_QUESTION, "Why?"):
        assert prompts.reference_answer(question, rec(ovlabels=["a"], onehot="a", valence=1.0, description="d")) is None


def test_infer_question_aliases_give_the_official_texts():
    assert resolve_question("ovlabel") == resolve_question(" OVLABEL ") == prompts.OVLABEL_QUESTION
    assert resolve_question("description") == prompts.DESCRIPTION_QUESTION
    assert resolve_question("sentiment") == prompts.SENTIMENT_QUESTION
    assert resolve_question("onehot", "MELD") == "Please recognize the character's most likely emotional state."
    cands = (
        "Please select the label that can best describe the person's emotional state from the provided "
        "candidate labels: "
    )
    assert resolve_question("onehot-candidates", "MER2023") == cands + "neutral,angry,happy,sad,worried,surprise."
    assert resolve_question("onehot-candidates", "mer2024") == cands + "neutral,angry,happy,sad,worried,surprise."
    assert resolve_question("onehot-candidates", "MELD") == cands + "anger,joy,sadness,neutral,disgust,fear,surprise."
    assert resolve_question("onehot-candidates", "IEMOCAPFour") == cands + "happy,sad,neutral,anger."
    assert resolve_question("valence", "CMUMOSI") == resolve_question("valence", "cmumosei") == VALENCE_3
    assert resolve_question("valence", "SIMS") == resolve_question("valence", "SIMSv2") == VALENCE_1
    with pytest.raises(
        ValueError, match="label set: ask it of one of MER2023, MER2024, MELD, IEMOCAPFour .not OVMERDPlus"
    ):
        resolve_question("onehot-candidates", "OVMERDPlus")
    with pytest.raises(
        ValueError, match="valence range: ask it of one of CMUMOSI, CMUMOSEI, SIMS, SIMSv2 .not a single"
    ):
        resolve_question("valence")
    assert resolve_question(" What colour is the sky? ") == "What colour is the sky?"
    with pytest.raises(ValueError, match="empty"):
        resolve_question("  ")

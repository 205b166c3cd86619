"""Instruction prompts and targets, exactly as the official AffectGPT builds them (reference §3.4).

The official model is trained on a raw "###Human: ... ###Assistant: " format (no chat template),
so a released checkpoint only behaves well with these exact strings. `style="chatml"` is our
alternative for models trained from scratch: the same content as one user turn of Qwen's chat
template, with the target closed by <|im_end|> instead of "###".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from affectgpt.model.tokenizer import PLACEHOLDERS

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from affectgpt.config import ModelConfig

PROMPT_STYLES = ("official", "chatml")

# Official questions (exact strings).
DESCRIPTION_QUESTION = "Please infer the person's emotional state and provide your reasoning process."
OVLABEL_QUESTION = "Please recognize all possible emotional states of the character."
# The reference records only the gist of these two (unused by the headline model); ours, not verbatim.
SENTIMENT_QUESTION = (
    "Please select the most likely sentiment of the person from the candidate labels: positive, negative, neutral."
)

QUESTIONS = {"description": DESCRIPTION_QUESTION, "ovlabel": OVLABEL_QUESTION, "sentiment": SENTIMENT_QUESTION}


def onehot_question(candidates: list[str] | None = None) -> str:
    """Discrete-label question, with or without a candidate set (not verbatim official text)."""
    if candidates:
        return (
            "Please select the label that can best describe the person's emotional state "
            f"from the provided candidate labels: {', '.join(candidates)}."
        )
    return "Please recognize the person's most likely emotional state and answer with a single label."


def ovlabel_answer(labels: list[str] | None) -> str:
    """"The character's emotional state is a, b." Empty or missing labels become "neutral" (official)."""
    labels = [label.strip() for label in (labels or []) if label and label.strip()]
    return f"The character's emotional state is {', '.join(labels) if labels else 'neutral'}."


def _rep(modality: str, n: int) -> str:
    if n < 1:
        raise ValueError(f"num_{modality}_query_token must be >= 1, got {n}")
    return PLACEHOLDERS[modality] * n


def _face_segment(n: dict[str, int]) -> str:
    video = _rep("face", n.get("video", 1))
    return f"Meanwhile, we uniformly sample raw frames from the video and extract faces from these frames: <Video>{video}</Video>. "


def _frame_segment(n: dict[str, int]) -> str:
    return f"Meanwhile, we uniformly sample raw frames from the video: <Video>{_rep('frame', n.get('video', 1))}</Video>. "


# face_or_frame -> (visual segment builder, which visual stream the prompt needs).
MODES = {
    "multiface_audio_face_text": (_face_segment, "faces"),
    "multiframe_audio_frame_text": (_frame_segment, "frames"),
}


def check_mode(face_or_frame: str) -> str:
    """The media key ("faces" or "frames") the mode needs; a clear error for unsupported modes."""
    if face_or_frame not in MODES:
        raise ValueError(
            f"Unsupported face_or_frame {face_or_frame!r}; supported: {', '.join(MODES)}."
        )
    return MODES[face_or_frame][1]


def n_query_from_config(model_cfg: ModelConfig) -> dict[str, int]:
    """Placeholder repeat counts {"multi", "audio", "video"} from the model config."""
    return {
        "multi": model_cfg.num_multi_query_token,
        "audio": model_cfg.num_audio_query_token,
        "video": model_cfg.num_video_query_token,
    }


def prompt_content(face_or_frame: str, subtitle: str, question: str, n_query: dict[str, int]) -> str:
    """The instruction body (official segments 1-5 without the ###Human/###Assistant markers)."""
    check_mode(face_or_frame)
    visual_segment = MODES[face_or_frame][0]
    return (
        f"The audio and video merged info is: <Multi>{_rep('multi', n_query.get('multi', 1))}</Multi>. "
        f"The audio content is as follows: <Audio>{_rep('audio', n_query.get('audio', 1))}</Audio>. "
        + visual_segment(n_query)
        + f"The subtitle of this video is: <Subtitle>{subtitle}</Subtitle>. "
        f"Now, please answer my question based on all the provided information. {question}"
    )


def build_prompt(
    face_or_frame: str,
    subtitle: str,
    question: str,
    n_query: dict[str, int],
    style: str = "official",
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> str:
    """The full prompt text. "official": "###Human: <content> ###Assistant: ".
    "chatml": the content as one user message through `tokenizer.apply_chat_template`
    (default system prompt, generation prompt appended), so `tokenizer` is required."""
    content = prompt_content(face_or_frame, subtitle, question, n_query)
    if style == "official":
        return f"###Human: {content} ###Assistant: "
    if style == "chatml":
        if tokenizer is None:
            raise ValueError("prompt_style 'chatml' needs the tokenizer (its chat template renders the prompt)")
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
    raise ValueError(f"Unknown prompt_style {style!r}; supported: {', '.join(PROMPT_STYLES)}.")


def build_target(answer: str, style: str = "official") -> str:
    """The target text: official `answer + "###"`; chatml `answer + "<|im_end|>"`."""
    if style == "official":
        return answer + "###"
    if style == "chatml":
        return answer + "<|im_end|>"
    raise ValueError(f"Unknown prompt_style {style!r}; supported: {', '.join(PROMPT_STYLES)}.")

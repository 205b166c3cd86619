"""Instruction prompts, questions and answers, exactly as the official AffectGPT builds them (reference §3.4).

The official model is trained on a raw "###Human: ... ###Assistant: " format (no chat template),
so a released checkpoint only behaves well with these exact strings. Which segments a prompt has is
the `face_or_frame` mode's (affectgpt.data.modes). `style="chatml"` is our alternative for models
trained from scratch: the same content as one user turn of Qwen's chat template, with the target
closed by <|im_end|> instead of "###".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from affectgpt.data.modes import (
    HUMAN_PREFIX,
    PLACEHOLDERS,
    QUESTION_SEGMENT,
    SEGMENTS,
    get_mode,
)

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from affectgpt.config import ModelConfig
    from affectgpt.data.records import Record

PROMPT_STYLES = ("official", "chatml")
ASSISTANT_SUFFIX = " ###Assistant: "

# Official questions, verbatim.
DESCRIPTION_QUESTION = "Please infer the person's emotional state and provide your reasoning process."
OVLABEL_QUESTION = "Please recognize all possible emotional states of the character."
SENTIMENT_QUESTION = (
    "Please select the most likely sentiment label that can best describe the person's emotional state: "
    "positive, negative, neutral."
)
ONEHOT_QUESTION = "Please recognize the character's most likely emotional state."
ONEHOT_CANDIDATES_PREFIX = (
    "Please select the label that can best describe the person's emotional state from the provided candidate labels: "
)
VALENCE_PREFIX = "Please identify the overall positive or negative emotional polarity of the main characters. "
FLOATING = "\ufb02oating"  # the official text writes "ﬂoating" with the ligature U+FB02 (twice): kept

QUESTIONS = {"description": DESCRIPTION_QUESTION, "ovlabel": OVLABEL_QUESTION}  # training targets' questions


def onehot_question(candidates: Sequence[str] = ()) -> str:
    """The discrete-label question: with the dataset's label set joined by "," (no space), or without one."""
    if candidates:
        return f"{ONEHOT_CANDIDATES_PREFIX}{','.join(candidates)}."
    return ONEHOT_QUESTION


def valence_question(minval: float, maxval: float) -> str:
    """The valence question for a dataset whose scores range over [minval, maxval]."""
    return (
        f"{VALENCE_PREFIX}The output should be a {FLOATING}-point number ranging from {minval} to {maxval}. "
        f"Here, {minval} indicates extremely negative emotions, 0 indicates neutral emotions, "
        f"and {maxval} indicates extremely positive emotions. "
        f"Please provide your judgment as a {FLOATING}-point number."
    )


def ovlabel_answer(labels: list[str] | None) -> str:
    """ "The character's emotional state is a, b." Empty or missing labels become "neutral" (official)."""
    labels = [label.strip() for label in (labels or []) if label and label.strip()]
    return f"The character's emotional state is {', '.join(labels) if labels else 'neutral'}."


def sentiment_answer(sentiment: str) -> str:
    return f"The character's sentiment state is {sentiment}."


def onehot_answer(label: str, with_candidates: bool) -> str:
    """The answer to `onehot_question(candidates)` (with_candidates) or to `onehot_question()`."""
    return f"The most likely label is {label}." if with_candidates else f"The character's emotional state is {label}."


def valence_answer(valence: float) -> str:
    return f"The valence score is {valence:.2f}."  # official '%.2f' % valence


def reference_answer(question: str, record: Record) -> tuple[str, str] | None:
    """(kind, official answer) when `question` is an official question whose ground truth `record` holds
    (evaluation keeps it as the target text), else None. Sentiment words are not a record field."""
    if question == OVLABEL_QUESTION and record.ovlabels is not None:
        return "ovlabel", ovlabel_answer(record.ovlabels)
    if record.onehot and (question == ONEHOT_QUESTION or question.startswith(ONEHOT_CANDIDATES_PREFIX)):
        return "onehot", onehot_answer(record.onehot, with_candidates=question != ONEHOT_QUESTION)
    if record.valence is not None and question.startswith(VALENCE_PREFIX):
        return "valence", valence_answer(record.valence)
    return None


def n_query_from_config(model_cfg: ModelConfig) -> dict[str, int]:
    """Placeholder repeat counts {"multi", "audio", "video"} from the model config."""
    return {
        "multi": model_cfg.num_multi_query_token,
        "audio": model_cfg.num_audio_query_token,
        "video": model_cfg.num_video_query_token,
    }


# placeholder -> its num_*_query_token knob (faces and frames share num_video_query_token; images: one token)
_QUERY_KNOB = {"multi": "multi", "audio": "audio", "face": "video", "frame": "video"}


def placeholder_counts(face_or_frame: str, n_query: dict[str, int]) -> dict[str, int]:
    """placeholder name -> how many times the mode's prompt repeats it."""
    counts = {}
    for name in get_mode(face_or_frame).placeholders:
        knob = _QUERY_KNOB.get(name)
        n = n_query.get(knob, 1) if knob else 1
        if n < 1:
            raise ValueError(f"num_{knob}_query_token must be >= 1, got {n}")
        counts[name] = n
    return counts


def prompt_content(face_or_frame: str, subtitle: str, question: str, n_query: dict[str, int]) -> str:
    """The instruction body: the mode's segments then the question, without "###Human: " / " ###Assistant: "."""
    mode = get_mode(face_or_frame)
    tokens = {name: PLACEHOLDERS[name] * n for name, n in placeholder_counts(face_or_frame, n_query).items()}
    body = "".join(SEGMENTS[key].format(subtitle=subtitle, **tokens) for key in mode.segments)
    return body + QUESTION_SEGMENT.format(question=question)


def build_prompt(
    face_or_frame: str,
    subtitle: str,
    question: str,
    n_query: dict[str, int],
    style: str = "official",
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> str:
    """The full prompt text. "official": ["###Human: "] <content> " ###Assistant: " (the prefix as the mode
    has it). "chatml": the content as one user message through `tokenizer.apply_chat_template`
    (default system prompt, generation prompt appended), so `tokenizer` is required."""
    content = prompt_content(face_or_frame, subtitle, question, n_query)
    if style == "official":
        prefix = HUMAN_PREFIX if get_mode(face_or_frame).human_prefix else ""
        return f"{prefix}{content}{ASSISTANT_SUFFIX}"
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

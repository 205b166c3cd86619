"""The official OV-label extractor: an instruct LLM turns a description into a label list (reference §6).

Officially Qwen2.5-7B-Instruct (no LoRA) under vLLM, batches of 8, one user message per prompt
rendered with the chat template (no system message, so the template adds its default), sampled with
temperature 0.7 / top_p 0.8 / repetition_penalty 1.05 / 512 new tokens. The official sampling is
stochastic (the README notes that scores move between runs), so we default to greedy decoding and
keep the official parameters one flag away (`official_sampling=True`). The two prompts are the official
`reason_to_openset` and `openset_to_sentiment` strings of `toolkit/utils/qwen.py` (AffectGPT @d961cab), word
for word, spaces included; only the placeholder names differ.

Backends: transformers (batched, left padding; always available) or vLLM (imported lazily, used by
`backend="auto"` when installed and a GPU is present).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from affectgpt.data.records import list_to_string
from affectgpt.labels.postprocess import official_postprocess, parse_llm_list

log = logging.getLogger(__name__)

# reason_to_openset of the official toolkit/utils/qwen.py, word for word: one string whose source line
# continuations each become a single space. {description} stands for the official {reason}.
OPENSET_PROMPT = (
    "Please assume the role of an expert in the field of emotions. "
    "We provide clues that may be related to the emotions of the characters. "
    "Based on the provided clues, please identify the emotional states of the main character. "
    "The main character is the one with the most detailed clues. "
    "Please separate different emotional categories with commas and output only the clearly identifiable "
    "emotional categories in a list format. "
    "If none are identified, please output an empty list. "
    "Input: We cannot recognize his emotional state; Output: [] "
    "Input: His emotional state is happy, sad, and angry; Output: [happy, sad, angry] "
    "Input: {description}; Output: "
)

# openset_to_sentiment of the same file: a triple-quoted f-string whose continuation lines are indented by
# 12 spaces and end with a backslash-newline, so each joint keeps those 12 spaces. {openset} = the official
# {reason}, i.e. the `-openset` string ("[happy, sad]").
_SOURCE_INDENT = " " * 12
SENTIMENT_PROMPT = _SOURCE_INDENT.join(
    (
        "Please act as an expert in the field of emotions. ",
        "We provide a few words to describe the emotions of a character. ",
        "Please choose the most likely sentiment from the given candidates: [positive, negative, neutral] ",
        "Please direct output answer without analyzing process. ",
        "Input: [joyful]; Output: positive ",
        "Input: []; Output: neutral ",
        "Input: {openset}; Output: ",
    )
)

DEFAULT_MODEL_DIR = "models/Qwen2.5-7B-Instruct"
_SENTIMENT_WORD = re.compile(r"\b(positive|negative|neutral)\b", re.IGNORECASE)


@dataclass
class ExtractionResult:
    """One description's extraction: the raw answer, its official post-processed form, the parsed labels,
    and whether a list could be read from it (False = the labels are [] because the answer was unusable)."""

    raw: str
    text: str
    labels: list[str]
    ok: bool


@dataclass
class SentimentResult:
    """One openset's sentiment. `sentiment` is positive/negative/neutral when `ok`; otherwise the
    post-processed answer itself (the official files keep such answers too, e.g. "mixed")."""

    raw: str
    sentiment: str
    ok: bool


def openset_prompt(description: str) -> str:
    """The user message asking for the label list of one description."""
    return OPENSET_PROMPT.format(description=description)


def sentiment_prompt(openset: str | list[str]) -> str:
    """The user message asking for the sentiment of one `-openset` string ("[a, b]")."""
    if isinstance(openset, (list, tuple)):
        openset = list_to_string(list(openset))
    return SENTIMENT_PROMPT.format(openset=openset)


def parse_sentiment(answer: str) -> SentimentResult:
    """The first of positive/negative/neutral in the answer (lower-cased); none -> not ok, answer kept."""
    text = official_postprocess(answer)
    match = _SENTIMENT_WORD.search(text)
    if match:
        return SentimentResult(raw=answer, sentiment=match.group(1).lower(), ok=True)
    return SentimentResult(raw=answer, sentiment=text, ok=False)


def _resolve_backend(backend: str) -> Literal["transformers", "vllm"]:
    if backend not in ("auto", "transformers", "vllm"):
        raise ValueError(f"backend={backend!r}: expected 'auto', 'transformers' or 'vllm'")
    if backend != "auto":
        return backend  # type: ignore[return-value]
    import importlib.util

    import torch

    return "vllm" if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available() else "transformers"


class LLMExtractor:
    """Batched label (and sentiment) extraction with a local instruct LLM folder."""

    def __init__(
        self,
        model_path: str | Path = DEFAULT_MODEL_DIR,
        batch_size: int = 8,
        max_new_tokens: int = 512,
        greedy: bool = True,
        temperature: float = 0.7,
        top_p: float = 0.8,
        repetition_penalty: float = 1.05,
        seed: int = 0,
        backend: str = "auto",
        official_sampling: bool = False,
        device: str | None = None,
        progress: bool = True,
    ):
        folder = Path(model_path).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"LLM extractor: no model folder at {folder} (config.json missing). Put a local Hugging Face "
                f"copy of Qwen2.5-7B-Instruct in {DEFAULT_MODEL_DIR} (or pass its path); nothing is downloaded. "
                f"Without an LLM, use the offline lexicon extractor (affectgpt.labels.lexicon.Lexicon)."
            )
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError(f"batch_size ({batch_size}) and max_new_tokens ({max_new_tokens}) must be >= 1")
        if official_sampling:  # the official SamplingParams, verbatim (reference §6)
            greedy, temperature, top_p, repetition_penalty, max_new_tokens = False, 0.7, 0.8, 1.05, 512
        self.model_path = folder
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.greedy = greedy
        self.temperature = temperature
        self.top_p = top_p
        self.repetition_penalty = repetition_penalty
        self.seed = seed
        self.progress = progress
        self.backend = _resolve_backend(backend)

        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.tokenizer.padding_side = "left"  # decoder-only batching: prompts end where generation starts
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.backend == "vllm":
            self._load_vllm()
        else:
            self._load_transformers(device)

    # ---------------------------------------------------------------- loading
    def _load_transformers(self, device: str | None) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.model = AutoModelForCausalLM.from_pretrained(str(self.model_path), local_files_only=True, dtype=dtype)
        self.model.to(self.device).eval()

    def _load_vllm(self) -> None:
        try:
            from vllm import LLM
        except ImportError as err:  # only reachable with backend="vllm" explicitly
            raise ImportError(
                "backend='vllm' needs the vllm package (pip install vllm); or use backend='transformers'"
            ) from err
        self.model = LLM(model=str(self.model_path), seed=self.seed)

    # ---------------------------------------------------------------- generation
    def render(self, content: str) -> str:
        """One user message through the chat template, ending with the assistant turn opener."""
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )

    def _eos_ids(self) -> list[int]:
        """Stop on the tokenizer's eos and on Qwen's <|im_end|> / <|endoftext|> when present (cached)."""
        if getattr(self, "_eos_cache", None) is None:
            config_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
            candidates = [self.tokenizer.eos_token_id, *(config_eos if isinstance(config_eos, list) else [config_eos])]
            unk = self.tokenizer.unk_token_id
            for token in ("<|im_end|>", "<|endoftext|>"):
                token_id = self.tokenizer.convert_tokens_to_ids(token)
                candidates.append(None if token_id == unk else token_id)
            self._eos_cache = list(dict.fromkeys(int(i) for i in candidates if i is not None))
        return self._eos_cache

    def _generate_transformers(self, prompts: list[str]) -> list[str]:
        import torch
        from transformers import GenerationConfig

        if self.greedy:  # neutral sampling values so no "ignored flag" warnings; the model config is not consulted
            sampling = {"do_sample": False, "temperature": 1.0, "top_p": 1.0, "top_k": 50}
        else:  # top_k=0 disables top-k, as vLLM's SamplingParams default does
            sampling = {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p, "top_k": 0}
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            repetition_penalty=self.repetition_penalty,
            eos_token_id=self._eos_ids(),
            pad_token_id=self.tokenizer.pad_token_id,
            **sampling,
        )
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with torch.inference_mode():
            output = self.model.generate(**batch, generation_config=config)
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def _generate_vllm(self, prompts: list[str]) -> list[str]:
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=0.0 if self.greedy else self.temperature,
            top_p=1.0 if self.greedy else self.top_p,
            repetition_penalty=self.repetition_penalty,
            max_tokens=self.max_new_tokens,
            seed=self.seed,
        )
        outputs = self.model.generate(prompts, params, use_tqdm=False)
        return [out.outputs[0].text for out in outputs]

    def generate(self, contents: list[str], desc: str = "LLM") -> list[str]:
        """Raw answers to user messages, in input order. Batches hold prompts of similar length (longest
        first, so an out-of-memory shows up at once); with sampling, results are reproducible for the
        same seed, batch size and device."""
        from tqdm.auto import tqdm
        from transformers import set_seed

        if not contents:
            return []
        set_seed(self.seed)
        prompts = [self.render(content) for content in contents]
        lengths = [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: (-lengths[i], i))
        answers: list[str] = [""] * len(prompts)
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc=desc, unit="batch", disable=not self.progress):
            index = order[start : start + self.batch_size]
            batch = [prompts[i] for i in index]
            generated = self._generate_vllm(batch) if self.backend == "vllm" else self._generate_transformers(batch)
            for i, answer in zip(index, generated):
                answers[i] = answer
        return answers

    # ---------------------------------------------------------------- tasks
    def extract(self, descriptions: list[str]) -> list[ExtractionResult]:
        """Label lists for descriptions (official reason_to_openset), in input order. An answer with no
        readable list gives labels [] and ok=False; the count is logged."""
        raws = self.generate([openset_prompt(str(d)) for d in descriptions], desc="OV labels")
        results = []
        for raw in raws:
            labels, ok = parse_llm_list(raw)
            results.append(ExtractionResult(raw=raw, text=official_postprocess(raw), labels=labels, ok=ok))
        failed = sum(not r.ok for r in results)
        if failed:
            log.warning(
                "LLM extractor: %d of %d answers had no readable label list (labels set to [])", failed, len(results)
            )
        return results

    def to_sentiment(self, opensets: list[str | list[str]]) -> list[SentimentResult]:
        """Sentiment of `-openset` strings (official openset_to_sentiment), in input order. The first of
        positive/negative/neutral in an answer wins; other answers are kept as given (ok=False) and counted
        in a warning, never silently turned into "neutral"."""
        raws = self.generate([sentiment_prompt(o) for o in opensets], desc="sentiment")
        results = [parse_sentiment(raw) for raw in raws]
        failed = [r.sentiment for r in results if not r.ok]
        if failed:
            log.warning(
                "LLM sentiment: %d of %d answers were not positive/negative/neutral, kept as is: %s",
                len(failed),
                len(results),
                failed[:5],
            )
        return results

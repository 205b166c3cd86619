"""AffectGPT.generate against decoding written out by hand, on a tiny LLM loaded from a real model folder whose
generation_config.json would change every answer if any of it leaked in (official §7.1: the call passes its
settings explicitly; eos list <|im_end|>/<|endoftext|>; stop on "###"; cut at eos, cut at "###", strip)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import Qwen2ForCausalLM

from affectgpt.config import Config
from affectgpt.data import prompts
from affectgpt.model.affectgpt import OFFICIAL_TOP_K, eos_token_ids, generation_config, left_pad
from affectgpt.model.build import build_model, tiny_config

N_NEW = 12
IM_END, END_OF_TEXT = 151645, 151643  # Qwen2.5's ids (reference §1.5 / Qwen2.5 generation_config.json)
# What a hostile folder sets: each entry changes greedy or sampled answers if inherited.
FOLDER_GENERATION_CONFIG = {
    "do_sample": True,
    "temperature": 0.01,
    "top_k": 3,
    "top_p": 0.5,
    "repetition_penalty": 1.5,
    "no_repeat_ngram_size": 1,
    "min_p": 0.9,
    "eos_token_id": [IM_END, END_OF_TEXT],
    "bos_token_id": END_OF_TEXT,
    "pad_token_id": END_OF_TEXT,
}


@pytest.fixture(scope="module")
def folder_model(tmp_path_factory):
    """(model, tokenizer) built by build_model from a saved tiny Qwen2 folder with the hostile generation_config."""
    cfg = Config()
    folder = tmp_path_factory.mktemp("models") / "Qwen2.5-7B-Instruct"
    torch.manual_seed(0)
    llm = Qwen2ForCausalLM(tiny_config("llm", cfg.model))
    with torch.no_grad():  # peaked logits as the demo LLM's; a tenth of the input embedding makes it repeat tokens
        emb = llm.get_input_embeddings().weight  # as real LMs do greedily, so a repetition penalty would show
        llm.lm_head.weight.normal_(std=cfg.model.tiny_llm_head_std).add_(
            0.3 * cfg.model.tiny_llm_head_std * emb / emb.std()
        )
    llm.save_pretrained(folder)
    (folder / "generation_config.json").write_text(json.dumps(FOLDER_GENERATION_CONFIG), encoding="utf-8")
    cfg.model.llm = str(folder)
    model, tok = build_model(cfg, with_encoders=False)  # the 7B code path: from_pretrained(local folder)
    model.eval()
    loaded = model.causal_lm.generation_config
    assert loaded.repetition_penalty == 1.5 and loaded.top_k == 3 and loaded.min_p == 0.9  # the folder was read
    return model, tok


def prompt_batch(model, tok, subtitles: list[str], seed: int = 0) -> dict:
    """Left-padded official prompts (no bos, as official inference) with random encoder features."""
    n_query = {"multi": 1, "audio": 1, "video": 1}
    rows = [
        tok(
            prompts.build_prompt("multiface_audio_face_text", s, prompts.OVLABEL_QUESTION, n_query),
            add_special_tokens=False,
        ).input_ids
        for s in subtitles
    ]
    width = max(map(len, rows))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    g = torch.Generator().manual_seed(seed)
    b = len(subtitles)
    visual, audio = model.heads.multi_video_embs.in_features, model.heads.multi_audio_embs.in_features
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "names": [f"s{i}" for i in range(b)],
        "face_feats": torch.randn(b, 8, visual, generator=g),
        "audio_feats": torch.randn(b, 8, audio, generator=g),
    }


def row(batch: dict, i: int) -> dict:
    """Sample i alone, padding removed."""
    keep = batch["attention_mask"][i].bool()
    out = {k: v[i : i + 1] for k, v in batch.items() if torch.is_tensor(v)}
    out.update(input_ids=batch["input_ids"][i : i + 1, keep], attention_mask=batch["attention_mask"][i : i + 1, keep])
    return out


def hand_decode(model, single: dict, steps: int, pick) -> list[int]:
    """Decode without transformers' generate: full forward on the growing inputs_embeds, `pick(logits)` each step."""
    table = model.causal_lm.get_input_embeddings()
    ids: list[int] = []
    with torch.no_grad():
        embeds = model.embed(single)
        for _ in range(steps):
            logits = model.causal_lm(inputs_embeds=embeds).logits[0, -1].float()
            ids.append(int(pick(logits)))
            embeds = torch.cat([embeds, table(torch.tensor([[ids[-1]]]))], dim=1)
    return ids


def sampler(temperature: float, top_k: int, top_p: float):
    """Multinomial sampling by definition: logits / T, keep the k largest (k=0: all), keep the smallest set of most
    probable tokens whose mass reaches top_p, renormalise, draw once (one torch.multinomial call per step, as
    transformers draws)."""

    def pick(logits: torch.Tensor) -> int:
        scores = logits / temperature
        if top_k:
            kth = torch.topk(scores, top_k).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        probs = scores.softmax(-1)
        order = probs.argsort(descending=True)
        mass_before = probs[order].cumsum(0) - probs[order]  # mass of the strictly more probable tokens
        drop = order[mass_before >= top_p]
        scores[drop] = float("-inf")
        return int(torch.multinomial(scores.softmax(-1), 1))

    return pick


def test_eos_ids_are_both_qwen_end_tokens(folder_model):
    _, tok = folder_model
    assert tok.eos_token == "<|im_end|>" and tok.pad_token_id == IM_END
    assert eos_token_ids(tok) == [IM_END, END_OF_TEXT]


def test_eos_ids_skip_tokens_the_vocabulary_lacks():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    for unk in ("[UNK]", None):
        vocab = {"[UNK]": 0, "</s>": 1, "hi": 2} if unk else {"</s>": 0, "hi": 1}
        backend = Tokenizer(models.WordLevel(vocab, unk_token=unk))
        tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token=unk)
        assert eos_token_ids(tok) == [vocab["</s>"]]  # neither the unk id nor None for the missing Qwen tokens


def test_generation_config_holds_the_official_settings():
    greedy = generation_config(30, False, 0.5, 0.5, 7, [IM_END, END_OF_TEXT], IM_END)
    sample = generation_config(1200, True, 1.0, 0.9, OFFICIAL_TOP_K, [IM_END, END_OF_TEXT], IM_END)
    for config in (greedy, sample):  # official answer_sample: these are passed explicitly
        assert (config.repetition_penalty, config.length_penalty, config.num_beams, config.min_length) == (
            1.0,
            1.0,
            1,
            1,
        )
        assert config.eos_token_id == [IM_END, END_OF_TEXT] and config.pad_token_id == IM_END
        assert config.no_repeat_ngram_size == 0 and config.forced_bos_token_id is None and config.min_new_tokens is None
    assert greedy.max_new_tokens == 30 and greedy.do_sample is False
    assert (sample.max_new_tokens, sample.do_sample, sample.temperature, sample.top_p) == (1200, True, 1.0, 0.9)
    # not passed by the official call, so 4.49 keeps Qwen2.5-7B-Instruct's generation_config value
    assert OFFICIAL_TOP_K == 20 and sample.top_k == 20


def test_greedy_is_plain_argmax_whatever_the_folder_says(folder_model):
    model, tok = folder_model
    batch = prompt_batch(model, tok, ["I am fine.", "What a long day at the office it has been, honestly."])
    assert len(set(batch["attention_mask"].sum(1).tolist())) == 2  # left padding exercised
    out = model.generate_ids(batch, max_new_tokens=N_NEW)
    changed = []
    for i in range(2):
        expected = hand_decode(model, row(batch, i), N_NEW, torch.argmax)
        assert not set(expected) & {IM_END, END_OF_TEXT} and "###" not in tok.decode(expected)  # no early stop here
        assert out[i].tolist() == expected
        with torch.no_grad():  # the call without our config: the folder's penalty 1.5 / no repeated token apply
            inherited = model.llama_model.generate(
                inputs_embeds=model.embed(row(batch, i)), max_new_tokens=N_NEW, do_sample=False
            )
        changed.append(inherited[0].tolist() != expected)
    assert any(changed)  # the test can fail: a leaked folder setting changes an answer
    assert model.causal_lm.generation_config.repetition_penalty == 1.5  # restored after the call


@pytest.mark.parametrize(("temperature", "top_p", "top_k"), [(1.0, 0.9, OFFICIAL_TOP_K), (1.3, 1.0, 0), (1.5, 0.8, 5)])
def test_sampling_uses_our_temperature_top_p_top_k_only(folder_model, temperature, top_p, top_k):
    model, tok = folder_model
    single = row(prompt_batch(model, tok, ["Leave me alone."], seed=1), 0)
    torch.manual_seed(123)
    ours = model.generate_ids(
        single, max_new_tokens=N_NEW, do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k
    )[0].tolist()
    torch.manual_seed(123)
    expected = hand_decode(model, single, N_NEW, sampler(temperature, top_k, top_p))
    assert not set(expected) & {IM_END, END_OF_TEXT} and "###" not in tok.decode(expected)
    assert ours == expected
    # the folder (T 0.01, top-k 3, min-p 0.9) would have decoded (nearly) greedily; ours did not
    assert expected != hand_decode(model, single, N_NEW, torch.argmax)


def force_token_at(model, single: dict, token: int, step: int) -> torch.Tensor:
    """Make `token` the argmax at decode `step` (its lm_head row = 2 x the row of the token chosen there); returns
    the original row to restore."""
    greedy = hand_decode(model, single, step + 1, torch.argmax)
    weight = model.causal_lm.get_output_embeddings().weight
    saved = weight[token].clone()
    with torch.no_grad():
        weight[token] = 2 * weight[greedy[step]]
    return saved


def until_stop(tok, seq: list[int]) -> list[int]:
    """`seq` up to and including the first eos id or the token that completes "###" (official stopping)."""
    for k, token in enumerate(seq):
        if token in (IM_END, END_OF_TEXT) or "###" in tok.decode(seq[: k + 1]):
            return seq[: k + 1]
    return seq


@pytest.mark.parametrize("stop", ["<|endoftext|>", "###"])
def test_stops_on_the_second_eos_id_and_on_the_stop_string(folder_model, stop):
    model, tok = folder_model
    batch = prompt_batch(model, tok, ["Fine.", "This sentence is a good deal longer than the other one."], seed=2)
    token = tok.convert_tokens_to_ids(stop)
    assert isinstance(token, int) and tok.decode([token]) == stop  # one token in the Qwen2.5 vocabulary
    weight = model.causal_lm.get_output_embeddings().weight
    saved = force_token_at(model, row(batch, 0), token, step=3)
    try:
        expected = [until_stop(tok, hand_decode(model, row(batch, i), N_NEW, torch.argmax)) for i in range(2)]
        out = model.generate_ids(batch, max_new_tokens=N_NEW)
        texts = model.generate(batch, max_new_tokens=N_NEW)
    finally:
        with torch.no_grad():
            weight[token] = saved
    assert expected[0][-1] == token and len(expected[0]) < N_NEW  # the forced stop happens
    width = max(map(len, expected))
    # a row that stopped is padded with pad (= <|im_end|>) while the other runs on
    assert out.tolist() == [seq + [tok.pad_token_id] * (width - len(seq)) for seq in expected]
    assert texts[0] == tok.decode(expected[0][:-1], skip_special_tokens=True).strip()


def test_postprocess_cuts_at_any_eos_then_stop_string_then_answer_mark(folder_model):
    model, tok = folder_model

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False).input_ids

    assert model._postprocess(ids("  The character is happy. ###junk")) == "The character is happy."
    assert model._postprocess(ids(" calm, tired.") + [END_OF_TEXT] + ids(" more ###")) == "calm, tired."
    assert model._postprocess(ids("sad") + [IM_END] + ids("x") + [END_OF_TEXT]) == "sad"
    assert model._postprocess(ids("Human: hi ###Assistant: angry ### rest")) == "Human: hi"
    assert model._postprocess(ids("noise Assistant: angry, upset. ###")) == "angry, upset."
    assert model._postprocess([tok.bos_token_id] + ids(" relaxed")) == "relaxed"  # special tokens dropped
    assert model._postprocess([IM_END] + ids("ignored")) == ""


def test_left_pad_moves_kept_tokens_right_with_a_zero_one_mask() -> None:
    """Batched generation's prompt layout, written out by hand: each row's kept tokens in order at the right end,
    pad_id before them, the attention mask exactly 1 on tokens and 0 on padding (an int mask of the ids' dtype)."""
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    keep = torch.tensor([[True, False, True, True], [False, True, False, False]])
    out, mask = left_pad(ids, keep, pad_id=0)
    assert out.tolist() == [[5, 7, 8], [0, 0, 10]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]] and mask.dtype == ids.dtype

"""Swappable backbones: every model.visual_encoder / model.audio_encoder choice and a LLaMA LLM, each a tiny
random model of the real class saved to a folder by `affectgpt.model.tiny_folders`, loaded through the real
builder: preprocessing equals the class's own HF processor, one training step moves the loss, greedy
generation equals the LLM's own argmax, the feature cache round-trips, and fingerprints differ per choice."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor

from affectgpt.cache import build_cache
from affectgpt.config import Config, ConfigError, load_config
from affectgpt.data import synthetic
from affectgpt.data.dataset import AffectDataset, Collator
from affectgpt.data.feature_cache import cache_spec, fingerprint
from affectgpt.data.sources import split_records
from affectgpt.model.affectgpt import eos_token_ids
from affectgpt.model.backbones import AUDIO_ENCODERS, VISUAL_ENCODERS
from affectgpt.model.build import build_audio_encoder, build_model, build_skeleton, build_visual_encoder
from affectgpt.model.tiny_folders import write_all
from affectgpt.model.tokenizer import load_tokenizer, placeholder_ids

CHOICES = [("visual_encoder", "clip", k) for k in VISUAL_ENCODERS] + [
    ("audio_encoder", "hubert", k) for k in AUDIO_ENCODERS
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("tiny_folders"))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return synthetic.generate(tmp_path_factory.mktemp("bb_data") / "d", n=6, seed=0, unibench=False)


def _cfg(folders, field: str, role: str, kind: str, root: Path | None = None, llm: str = "llama") -> Config:
    overrides = [f"model.{field}={kind}", f"model.{role}={folders[kind]}"]
    if llm == "llama":
        overrides += [f"model.llm={folders['llama']}", "model.tokenizer="]
    if root is not None:
        overrides += [f"data.root={root}", "data.val_fraction=0.3", "data.label_type=ovlabel"]
    return load_config(None, overrides)


def test_unknown_choice_is_refused_at_load():
    with pytest.raises(ConfigError, match="siglip"):
        load_config(None, ["model.visual_encoder=sigclip"])
    with pytest.raises(ConfigError, match="audio_layers"):
        load_config(None, ["model.audio_layers=0"])


@pytest.mark.parametrize("kind", ["siglip", "dinov2"])
def test_pixels_follow_the_folders_preprocessor(folders, kind):
    """Our batched torch preprocessing == the folder's own HF image processor (sizes chosen so that only the
    crop / rescale / normalise steps run, which are exact; resize interpolation is covered for CLIP elsewhere)."""
    enc = build_visual_encoder(_cfg(folders, "visual_encoder", "clip", kind).model)
    side = 224 if kind == "siglip" else 256  # SigLIP: resize to 224x224; DINOv2: shortest edge 256, crop 224
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, side, side, 3), dtype=np.uint8)
    reference = AutoImageProcessor.from_pretrained(str(folders[kind]))(list(images), return_tensors="pt")
    ours = enc.preprocess(torch.from_numpy(images))
    assert ours.shape == reference.pixel_values.shape == (2, 3, 224, 224)
    # fp32 (x * 1/255 - mean) / std vs HF's numpy float32 steps in another order: a few ulps of values ~|2|
    assert torch.allclose(ours, reference.pixel_values, atol=1e-5)


@pytest.mark.parametrize("field,role,kind", CHOICES)
def test_encoder_vector_per_choice(folders, field, role, kind):
    """Shape/width per choice and the documented per-image / per-clip vector, from the class's own outputs."""
    cfg = _cfg(folders, field, role, kind)
    torch.manual_seed(0)
    if role == "clip":
        enc = build_visual_encoder(cfg.model)
        images = torch.randint(0, 256, (1, 2, 240, 320, 3), dtype=torch.uint8)
        got = enc(images)
        pixels = enc.preprocess(images[0])
        with torch.no_grad():
            out = enc.clip(pixel_values=pixels)
        # CLIP: the projected CLS; SigLIP: the attention-pooled vector; DINOv2: the CLS after the final norm
        if kind == "clip":
            expected = out.image_embeds
        else:
            expected = out.pooler_output if kind == "siglip" else out.last_hidden_state[:, 0]
        width = enc.clip.config.projection_dim if kind == "clip" else enc.clip.config.hidden_size
    else:
        enc = build_audio_encoder(cfg.model)
        audio = torch.randn(1, 2, 32000)
        got = enc(audio)
        width = enc.hubert.config.hidden_size
        if kind == "whisper":
            mel = enc.feature_extractor(list(audio[0].numpy()), sampling_rate=16000, return_tensors="pt")
            assert mel.input_features.shape[-1] == 3000  # padded to 30 s
            with torch.no_grad():
                out = enc.hubert(input_features=mel.input_features, output_hidden_states=True)
            states = [*out.hidden_states[-4:-1], out.last_hidden_state]
            frames = torch.stack(states).mean(0)
            assert frames.shape[1] == 1500
            expected = frames[:, :100].mean(1)  # 2 s = 200 mel frames = 100 encoder frames (stride 2)
            assert not torch.allclose(expected, frames.mean(1), atol=1e-3)  # the padding would change it
        else:
            with torch.no_grad():
                out = enc.hubert(input_values=enc.normalize(audio)[0], output_hidden_states=True)
            expected = torch.stack([*out.hidden_states[-4:-1], out.last_hidden_state]).mean(0).mean(1)
    assert enc.dim == width and got.shape == (1, 2, width)
    assert torch.allclose(got[0], expected.float(), atol=1e-6)


def test_audio_layers_is_configurable(folders):
    cfg = _cfg(folders, "audio_encoder", "hubert", "wavlm")
    cfg.model.audio_layers = 1
    enc = build_audio_encoder(cfg.model)
    audio = torch.randn(1, 1, 16000)
    with torch.no_grad():
        last = enc.hubert(input_values=enc.normalize(audio)[0]).last_hidden_state.mean(1)
    assert torch.allclose(enc(audio)[0], last, atol=1e-6)


def test_fingerprints_differ_across_choices(folders):
    specs = {}
    for field, role, kind in CHOICES:
        for path in ("tiny", str(folders[kind])):
            cfg = load_config(None, [f"model.{field}={kind}", f"model.{role}={path}"])
            m = cfg.model  # keyed by the settings, so the default (clip, hubert, tiny) counts once
            specs[(m.visual_encoder, m.clip, m.audio_encoder, m.hubert)] = fingerprint(cache_spec(m, cfg.data))
    assert len(specs) == 2 * len(CHOICES) - 1
    cfg = load_config(None, ["model.audio_layers=3"])
    specs["layers3"] = fingerprint(cache_spec(cfg.model, cfg.data))
    assert len(set(specs.values())) == len(specs)


def test_folder_of_another_kind_is_refused(folders):
    cfg = load_config(None, ["model.visual_encoder=siglip", f"model.clip={folders['dinov2']}"])
    with pytest.raises(ValueError, match="holds a 'dinov2' model, but model.visual_encoder='siglip'"):
        build_visual_encoder(cfg.model)


def test_llama_tokenizer_and_lora_targets(folders):
    cfg = load_config(None, [f"model.llm={folders['llama']}", "model.tokenizer="])
    tok = load_tokenizer(cfg.model)
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|begin_of_text|>", "<|eot_id|>", "<|eot_id|>")
    ids = placeholder_ids(tok)
    assert len(set(ids.values())) == 5 and min(ids.values()) >= len(tok) - 5
    assert eos_token_ids(tok) == [tok.convert_tokens_to_ids("<|eot_id|>"), tok.convert_tokens_to_ids("<|end_of_text|>")]
    bad = copy.deepcopy(cfg)
    bad.model.lora_targets = ["q_proj", "query_key_value"]
    with pytest.raises(ValueError, match=r"\['query_key_value'\] not in LlamaForCausalLM"):
        build_model(bad)
    mismatched = load_config(None, [f"model.llm={folders['llama']}"])  # the Qwen tokenizer with a LLaMA
    with pytest.raises(ValueError, match="model.tokenizer=''"):
        build_model(mismatched)


@pytest.mark.parametrize("field,role,kind", CHOICES)
def test_train_step_generation_and_cache_round_trip(folders, data_root, tmp_path, field, role, kind):
    cfg = _cfg(folders, field, role, kind, data_root)
    cfg.data.feature_cache = str(tmp_path / "cache")
    records = split_records(cfg.data, "train")
    report = build_cache(cfg, records, batch_size=4, progress=False)
    assert report.computed == len(records) and report.failed == 0
    torch.manual_seed(0)
    model, tok = build_model(cfg)
    collate = Collator(tok)
    cached = AffectDataset(records, cfg.data, cfg.model, tok, seed=1)
    live_cfg = copy.deepcopy(cfg)
    live_cfg.data.feature_cache = ""
    live = AffectDataset(records, live_cfg.data, cfg.model, tok, seed=1)
    cached_batch, live_batch = collate([cached[0], cached[1]]), collate([live[0], live[1]])
    assert "audio_feats" in cached_batch and "audio" in live_batch
    with torch.no_grad():  # cache round trip: the same features as on the fly
        wave = model.audio_encoder(live_batch["audio"])
    assert torch.allclose(cached_batch["audio_feats"], wave, atol=1e-6)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    first = model(cached_batch)
    first.backward()
    opt.step()
    opt.zero_grad()
    with torch.no_grad():
        assert model(cached_batch).item() < first.item()  # one step on the same batch lowers its loss
    model.eval()
    one = collate([cached[0]])
    new = model.generate_ids(one, max_new_tokens=3)
    ids = one["input_ids"][:, one["labels"][0] == -100]
    with torch.no_grad():  # greedy: the first new token is the LLM's argmax after the spliced prompt
        logits = model.llama_model(inputs_embeds=model.embed(one, ids), attention_mask=torch.ones_like(ids)).logits
    assert int(new[0, 0]) == int(logits[0, -1].argmax())


def test_describe_covers_every_choice():
    """Weight-free counts from the published configs: each LLM's size as its model card states it (rounded
    there to 2-3 digits, hence 0.6%), each encoder's head input width as in its published config.json."""
    model_cards = {  # parameters in billions, from the model cards on the Hugging Face hub
        "Qwen2.5-7B-Instruct": 7.61,
        "Meta-Llama-3-8B-Instruct": 8.03,
        "Mistral-7B-Instruct-v0.3": 7.25,
        "Qwen3-8B": 8.19,
    }
    for name, billions in model_cards.items():
        sk = build_skeleton(load_config(None, [f"model.llm=models/{name}"]).model)
        assert sk.sources["llm"].startswith(f"published {name}")
        base = sum(p.numel() for n, p in sk.llm.named_parameters() if "lora_" not in n)
        assert base == pytest.approx(billions * 1e9, rel=6e-3), name
    widths = {"clip": 768, "siglip": 1152, "dinov2": 1024, "hubert": 1024, "wavlm": 1024}
    widths |= {"data2vec-audio": 768, "whisper": 1280}
    for field, role, kind in CHOICES:
        sk = build_skeleton(load_config(None, [f"model.{field}={kind}", f"model.{role}=models/absent"]).model)
        assert sk.heads_in[0 if role == "clip" else 1] == widths[kind], kind
        assert sk.heads.state_dict()  # the heads are built for those widths


def test_official_import_refuses_heads_of_other_backbones(tmp_path, capsys):
    """A checkpoint with CLIP-width heads (tiny: 32-d) cannot serve SigLIP (tiny: 48-d): refused with the reason."""
    from test_import_official import official_state

    from affectgpt.import_official import main

    cfg = Config()
    reference, _ = build_model(cfg, with_encoders=False)
    path = tmp_path / "official.pth"
    torch.save({"model": official_state(reference, cfg.model.tiny_llm_layers)}, path)
    cfg_path = tmp_path / "tiny.yaml"
    cfg.save(cfg_path)
    assert main([str(path), str(tmp_path / "ok"), "--config", str(cfg_path)]) == 0  # official backbones: exact
    capsys.readouterr()
    out = tmp_path / "siglip"
    assert main(["--config", str(cfg_path), str(path), str(out), "model.visual_encoder=siglip"]) == 1
    err = capsys.readouterr().err
    assert "video_attention_mlp.weight (file (1, 32), model (1, 48))" in err
    assert "model.visual_encoder='siglip' feed the heads 48-d visual / 48-d audio vectors" in err
    assert not out.exists()

"""The AffectGPT model on tiny random models of the real classes, fed through the real dataset path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPTextConfig,
    HubertModel,
    Qwen2ForCausalLM,
    Wav2Vec2FeatureExtractor,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from affectgpt.config import Config
from affectgpt.data import synthetic
from affectgpt.data.dataset import AffectDataset, Collator
from affectgpt.data.mer2025 import read_mer2025
from affectgpt.data.modes import PLACEHOLDERS
from affectgpt.model.affectgpt import AffectGPT, PlaceholderError, splice_embeddings
from affectgpt.model.build import build_audio_encoder, build_model, build_visual_encoder, tiny_config
from affectgpt.model.fusion import ModalityHeads


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(cfg, model, tokenizer, train batch of 3, generation batch of 3) from a real synthetic MER2025 folder."""
    root = synthetic.generate(tmp_path_factory.mktemp("demo"), n=4, seed=0, unibench=False)
    cfg = Config()
    cfg.data.root = str(root)
    model, tok = build_model(cfg)
    records = read_mer2025(root, "mercaptionplus")
    assert len(records) == 3
    train = AffectDataset(records, cfg.data, cfg.model, tok, split="train")
    items = [train[i] for i in range(3)]
    batch = Collator(tok)(items)
    gen_batch = Collator(tok, left_pad=True)(items)
    with torch.no_grad():  # generation tests feed precomputed features (the feature-cache path): faster
        feats = {
            "face_feats": model.visual_encoder(gen_batch.pop("faces")),
            "audio_feats": model.audio_encoder(gen_batch.pop("audio")),
        }
    gen_batch.update(feats)
    return cfg, model, tok, batch, gen_batch


def test_forward_backward_reaches_only_trainable(demo):
    _, model, _, batch, _ = demo
    model.train()
    model.zero_grad(set_to_none=True)
    loss = model(batch)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    named = dict(model.named_parameters())
    lora_b = [n for n in named if "lora_B" in n]
    assert len(lora_b) == 2 * 7  # 2 tiny layers x q/k/v/o/gate/up/down
    for n in lora_b:
        assert named[n].grad is not None and named[n].grad.abs().sum() > 0, n
    for n in (
        "affectgpt_proj",
        "video_attention_mlp",
        "audio_llama_proj",
        "audio_attention_mlp",
        "multi_video_embs",
        "multi_audio_embs",
        "attention_mlp",
        "fc_att",
        "multi_llama_proj",
    ):
        grad = getattr(model.heads, n).weight.grad
        assert grad is not None and grad.abs().sum() > 0, n
    assert model.heads.image_llama_proj.weight.requires_grad and model.heads.image_llama_proj.weight.grad is None
    frozen = [n for n, p in named.items() if not p.requires_grad]
    assert any(n.startswith("visual_encoder.") for n in frozen) and any(n.startswith("audio_encoder.") for n in frozen)
    assert all(named[n].grad is None for n in frozen)
    trainable = {n for n, p in named.items() if p.requires_grad}
    assert all("lora_" in n or n.startswith("heads.") for n in trainable)
    # the encoders stay in eval mode whatever the parent's mode
    assert not model.visual_encoder.clip.training and not model.audio_encoder.hubert.training


def test_loss_equals_hf_causal_lm_loss(demo):
    _, model, _, batch, _ = demo
    model.eval()
    with torch.no_grad():
        ours = model(batch)
        embeds = model.embed(batch)
        hf = model.causal_lm(inputs_embeds=embeds, attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
    torch.testing.assert_close(ours, hf, rtol=1e-5, atol=1e-5)


def test_chunked_vocabulary_loss_gives_the_plain_loss_and_gradients(demo):
    _, model, _, batch, _ = demo
    model.eval()  # no LoRA dropout: both passes see the same network
    default_chunk = model.loss_vocab_chunk
    assert default_chunk > 0
    results = []
    for chunk in (default_chunk, 0):
        model.loss_vocab_chunk = chunk
        model.zero_grad(set_to_none=True)
        loss = model(batch)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (fused_loss, fused_grads), (plain_loss, plain_grads) = results
    model.loss_vocab_chunk = default_chunk
    # The code runs both paths in fp32 only (fp32 logits by design), so the tolerance is derived: each lse sums
    # V = 151,936 exp terms in fp32 in a different order (chunks of 2048 + a running rescale vs one reduction);
    # rounding gives a relative error of about sqrt(V) * 2^-24 = 2.3e-5 in the sum, i.e. an absolute 2.3e-5 in
    # lse and in the loss (seen: 19.717100 vs 19.717125). atol = 4x that; rtol = 0 (the error is absolute).
    sum_error = np.sqrt(model.causal_lm.config.vocab_size) * 2.0**-24
    torch.testing.assert_close(fused_loss, plain_loss, rtol=0, atol=4 * sum_error)
    assert fused_grads.keys() == plain_grads.keys() and any("lora_B" in n for n in fused_grads)
    # dL/dh = (softmax - onehot) / N: each probability carries that relative 2.3e-5 error, so the norms agree
    # to it; the same 4x margin
    for name, grad in fused_grads.items():
        assert (grad - plain_grads[name]).norm() <= 4 * sum_error * plain_grads[name].norm(), name


def test_splice_puts_projector_outputs_at_placeholders_and_token_embeddings_elsewhere(demo):
    _, model, tok, batch, _ = demo
    model.eval()
    with torch.no_grad():
        embeds = model.embed(batch)
        faces = model.visual_encoder(batch["faces"])
        audio = model.audio_encoder(batch["audio"])
        expected = {
            "face": model.heads.video_tokens(faces),
            "audio": model.heads.audio_tokens(audio),
            "multi": model.heads.multi_tokens(faces, audio),
        }
        table = model.causal_lm.get_input_embeddings().weight
    ids = batch["input_ids"]
    placeholder = torch.zeros_like(ids, dtype=torch.bool)
    for key, tokens in expected.items():
        mask = ids == tok.convert_tokens_to_ids(PLACEHOLDERS[key])
        assert mask.sum(1).tolist() == [1, 1, 1]
        torch.testing.assert_close(embeds[mask], tokens[:, 0], rtol=0, atol=0)
        placeholder |= mask
    assert torch.equal(embeds[~placeholder], table[ids[~placeholder]])


def test_placeholder_ids_are_looked_up_as_id_0(demo):
    """Official: the embedding matrix is not resized; placeholder ids become id 0 before the lookup."""
    _, model, tok, batch, _ = demo
    seen = []
    hook = model.causal_lm.get_input_embeddings().register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
    try:
        with torch.no_grad():
            model.embed(batch)
    finally:
        hook.remove()
    ids = batch["input_ids"]
    placeholder = torch.zeros_like(ids, dtype=torch.bool)
    for token in PLACEHOLDERS.values():
        placeholder |= ids == tok.convert_tokens_to_ids(token)
    assert placeholder.sum() == 3 * 3 and len(seen) == 1
    assert torch.equal(seen[0][placeholder], torch.zeros(9, dtype=torch.long))
    assert torch.equal(seen[0][~placeholder], ids[~placeholder])
    # an embedding table smaller than the placeholder ids works (it is never indexed with them)
    small = torch.nn.Embedding(10, 4)
    face_id = tok.convert_tokens_to_ids(PLACEHOLDERS["face"])
    out = splice_embeddings(torch.tensor([[3, face_id, 4]]), small, {face_id: torch.ones(1, 1, 4)}, {"face": face_id})
    torch.testing.assert_close(out[0], torch.stack([small.weight[3], torch.ones(4), small.weight[4]]))


def test_frames_share_the_video_weights_and_feed_the_image_token(demo):
    _, model, tok, _, _ = demo
    text = "###Human: <Video><FrameHere></Video> <Video><FaceHere></Video> <Image><ImageHere></Image> ###Assistant: "
    ids = tok([text, text], add_special_tokens=False, return_tensors="pt").input_ids
    feats = torch.randn(2, 8, model.heads.affectgpt_proj.in_features, generator=torch.Generator().manual_seed(0))
    image_feats = feats[:, :1]  # the image stream: one CLIP vector per image (data/modes.py "image")
    batch = {"input_ids": ids, "frame_feats": feats, "face_feats": feats, "image_feats": image_feats}
    with torch.no_grad():
        embeds = model.embed(batch)
        video = model.heads.affectgpt_proj(model.heads.video_attention_mlp(feats).mul(feats).sum(1))  # §1.2 by hand
        image = model.heads.image_llama_proj(image_feats[:, 0])
    at = {m: (ids == tok.convert_tokens_to_ids(PLACEHOLDERS[m])).int().argmax(1) for m in ("frame", "face", "image")}
    rows = torch.arange(2)
    torch.testing.assert_close(embeds[rows, at["frame"]], video, rtol=1e-5, atol=1e-6)  # fp32, other summation order
    torch.testing.assert_close(embeds[rows, at["face"]], embeds[rows, at["frame"]], rtol=0, atol=0)
    torch.testing.assert_close(embeds[rows, at["image"]], image, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("mode", "visual"), [("multiface_audio_face_text", "face_feats"), ("multiframe_audio_frame_text", "frame_feats")]
)
def test_the_multi_token_fuses_the_visual_stream_its_mode_names(demo, mode, visual):
    """§1.3: the pre-fusion takes faces for multiface* modes and frames for multiframe* modes."""
    _, model, tok, _, _ = demo
    ids = tok(
        ["###Human: <Multi><MultiHere></Multi> ###Assistant: "], add_special_tokens=False, return_tensors="pt"
    ).input_ids
    g = torch.Generator().manual_seed(1)
    dims = model.heads.affectgpt_proj.in_features, model.heads.audio_llama_proj.in_features
    feats = {
        "face_feats": torch.randn(1, 8, dims[0], generator=g),
        "frame_feats": torch.randn(1, 8, dims[0], generator=g),
        "audio_feats": torch.randn(1, 8, dims[1], generator=g),
    }
    saved, model.face_or_frame = model.face_or_frame, mode
    try:
        with torch.no_grad():
            embeds = model.embed({"input_ids": ids, **feats})
            expected = model.heads.multi_tokens(feats[visual], feats["audio_feats"])[0, 0]
    finally:
        model.face_or_frame = saved
    at = int((ids[0] == tok.convert_tokens_to_ids(PLACEHOLDERS["multi"])).int().argmax())
    torch.testing.assert_close(embeds[0, at], expected, rtol=0, atol=0)


def test_a_batch_without_targets_or_encoders_is_refused(demo):
    _, model, _, batch, _ = demo
    no_targets = dict(batch, labels=torch.full_like(batch["labels"], -100))
    with pytest.raises(ValueError, match=r"no target tokens .*" + batch["names"][0]):
        model(no_targets)
    saved, model.audio_encoder = model.audio_encoder, None
    try:
        with pytest.raises(
            ValueError, match="raw 'audio' but the model was built without its encoder; pass 'audio_feats'"
        ):
            model(batch)
    finally:
        model.audio_encoder = saved


def test_official_attention_pooling_and_prefusion_formulas():
    torch.manual_seed(0)
    heads = ModalityHeads(visual_dim=6, audio_dim=10, llm_dim=5, num_video_query_token=2)
    v, a = torch.randn(2, 8, 6), torch.randn(2, 8, 10)
    with torch.no_grad():
        scores = v @ heads.video_attention_mlp.weight.T + heads.video_attention_mlp.bias  # raw, no softmax
        pooled = (scores * v).sum(1)
        video = pooled @ heads.affectgpt_proj.weight.T + heads.affectgpt_proj.bias
        torch.testing.assert_close(heads.video_tokens(v), video[:, None].expand(-1, 2, -1))
        mv, ma = heads.multi_video_embs(v.mean(1)), heads.multi_audio_embs(a.mean(1))
        w = heads.fc_att(heads.attention_mlp(torch.cat([mv, ma], -1)))
        fused = heads.multi_llama_proj(w[:, :1] * mv + w[:, 1:] * ma)
        torch.testing.assert_close(heads.multi_tokens(v, a)[:, 0], fused)
    assert heads.multi_video_embs.out_features == 10 and heads.attention_mlp.in_features == 20
    assert heads.fc_att.out_features == 2 and heads.image_llama_proj.in_features == 6
    mean_heads = ModalityHeads(6, 10, 5, video_fusion="mean", audio_fusion="qformer", qformer_hidden=8, qformer_heads=2)
    assert mean_heads.audio_tokens(a).shape == (2, 1, 5) and not hasattr(mean_heads, "video_attention_mlp")
    torch.testing.assert_close(mean_heads.video_tokens(v)[:, 0], mean_heads.affectgpt_proj(v.mean(1)))


def test_placeholder_count_and_contiguity_errors_name_the_sample(demo):
    _, model, tok, batch, _ = demo
    face_id = tok.convert_tokens_to_ids(PLACEHOLDERS["face"])
    bad = dict(batch, input_ids=batch["input_ids"].clone())
    row = bad["input_ids"][1]
    row[row == face_id] = tok.convert_tokens_to_ids("Hello")
    with pytest.raises(
        PlaceholderError, match=rf"sample 1 \('{batch['names'][1]}'\): expected 1 x <FaceHere>.*found 0"
    ):
        model(bad)
    tokens = {face_id: torch.zeros(1, 2, 4)}
    ids = torch.tensor([[5, face_id, 7, face_id, 9]])
    embedding = torch.nn.Embedding(10, 4)
    with pytest.raises(PlaceholderError, match=r"sample 0 \('x'\).*not contiguous"):
        splice_embeddings(ids, embedding, tokens, {"face": face_id}, ["x"])
    with pytest.raises(PlaceholderError, match=r"^sample 0: the 2 x <FaceHere> placeholders are not contiguous"):
        splice_embeddings(ids, embedding, tokens, {"face": face_id})  # no names: the index alone
    two = torch.tensor([[face_id, face_id, 1, 2, 3], [5, face_id, 7, face_id, 9]])
    with pytest.raises(PlaceholderError, match=r"^sample 1: .*positions 1\.\.3\)$"):
        splice_embeddings(two, embedding, {face_id: torch.zeros(2, 2, 4)}, {"face": face_id}, ["only-one-name"])


def test_precomputed_features_skip_the_encoders(demo):
    _, model, _, batch, _ = demo
    model.eval()
    assert model.device == torch.device("cpu")  # where the batch tensors are moved: the LLM's device
    with torch.no_grad():
        feats = {"face_feats": model.visual_encoder(batch["faces"]), "audio_feats": model.audio_encoder(batch["audio"])}
        text_only = {k: v for k, v in batch.items() if k not in ("faces", "audio")}
        torch.testing.assert_close(model({**text_only, **feats}), model(batch), rtol=0, atol=0)
    with pytest.raises(ValueError, match="neither 'faces' nor 'face_feats'"):
        model(text_only)


def test_generate_batched_left_padding(demo):
    _, model, tok, batch, gen_batch = demo
    model.eval()
    lengths = gen_batch["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 1  # padding is exercised
    texts = model.generate(gen_batch, max_new_tokens=6)
    assert len(texts) == 3 and all(isinstance(t, str) and t for t in texts)
    singles = [
        model.generate({k: v[i : i + 1] for k, v in gen_batch.items() if k != "n_dropped"}, max_new_tokens=6)[0]
        for i in range(3)
    ]
    assert singles == texts
    # a training batch works too: its target tokens are dropped, leaving the prompt
    train_feats = {k: v for k, v in batch.items() if k not in ("faces", "audio")}
    train_feats.update(face_feats=gen_batch["face_feats"], audio_feats=gen_batch["audio_feats"])
    prompts = [
        [tok.bos_token_id] + row[mask.bool()].tolist()
        for row, mask in zip(gen_batch["input_ids"], gen_batch["attention_mask"])
    ]
    width = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with_bos = dict(gen_batch, input_ids=ids, attention_mask=mask)
    assert model.generate(train_feats, max_new_tokens=6) == model.generate(with_bos, max_new_tokens=6)
    assert len(model.generate(train_feats, max_new_tokens=3, do_sample=True, temperature=1.0, top_p=0.9)) == 3
    ids = tok("The character is happy. ###junk", add_special_tokens=False).input_ids + [tok.eos_token_id] + [5, 6]
    assert model._postprocess(ids) == "The character is happy."


def test_clip_preprocessing_equals_clip_image_processor():
    rng = np.random.default_rng(0)
    encoder = build_visual_encoder(Config().model)
    for shape in ((224, 224, 3), (180, 260, 3), (300, 240, 3)):
        images = rng.integers(0, 256, size=(3, *shape), dtype=np.uint8)
        ours = encoder.preprocess(torch.from_numpy(images))
        ref = CLIPImageProcessor()(images=list(images), return_tensors="pt").pixel_values
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    # the official (PIL) processor agrees exactly on 224x224 inputs, where resizing is the identity
    square = rng.integers(0, 256, size=(2, 224, 224, 3), dtype=np.uint8)
    pil = CLIPImageProcessorPil()(images=list(square), return_tensors="pt").pixel_values
    torch.testing.assert_close(encoder.preprocess(torch.from_numpy(square)), pil, rtol=0, atol=1e-5)


def test_hubert_normalisation_matches_feature_extractor():
    encoder = build_audio_encoder(Config().model)
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True)
    audio = torch.randn(2, 8, 32000) * torch.linspace(0.1, 2.0, 8)[None, :, None] + 0.3
    encoder.norm = "clip"
    per_clip = extractor(
        [c.numpy() for c in audio.reshape(16, -1)], sampling_rate=16000, return_tensors="pt"
    ).input_values
    torch.testing.assert_close(encoder.normalize(audio).reshape(16, -1), per_clip, rtol=1e-4, atol=1e-4)
    encoder.norm = "sample"  # joint over one sample's 8 clips = the official call with batch size 1
    joint = extractor(audio[1].reshape(-1).numpy(), sampling_rate=16000, return_tensors="pt").input_values
    torch.testing.assert_close(encoder.normalize(audio)[1].reshape(1, -1), joint, rtol=1e-4, atol=1e-4)
    feats = encoder(audio)
    assert feats.shape == (2, 8, encoder.dim) and torch.isfinite(feats).all()
    # a sample's features do not depend on the other samples in the batch
    torch.testing.assert_close(encoder(audio[1:]), feats[1:], rtol=1e-5, atol=1e-5)


def test_real_folder_layout_loads_through_the_7b_code_path(tmp_path, demo):
    cfg, _, tok, batch, _ = demo
    m = cfg.model
    models = tmp_path / "models"
    llm = Qwen2ForCausalLM(tiny_config("llm", m))
    llm.save_pretrained(models / "Qwen2.5-7B-Instruct")
    tok.save_pretrained(models / "Qwen2.5-7B-Instruct")
    vision = tiny_config("clip", m).to_dict()
    clip_cfg = CLIPConfig(
        text_config=CLIPTextConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
        ).to_dict(),
        vision_config=vision,
        projection_dim=m.tiny_clip_projection,
    )
    clip = CLIPModel(clip_cfg)
    clip.save_pretrained(models / "clip-vit-large-patch14")
    CLIPImageProcessor().save_pretrained(models / "clip-vit-large-patch14")
    hubert = HubertModel(tiny_config("hubert", m))
    hubert.save_pretrained(models / "chinese-hubert-large")
    Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True).save_pretrained(models / "chinese-hubert-large")

    real = copy.deepcopy(cfg)
    real.model.llm = str(models / "Qwen2.5-7B-Instruct")
    real.model.clip = str(models / "clip-vit-large-patch14")
    real.model.hubert = str(models / "chinese-hubert-large")
    real.model.tokenizer = ""
    model, loaded_tok = build_model(real)
    assert isinstance(model, AffectGPT)
    assert loaded_tok.convert_tokens_to_ids("<FaceHere>") == tok.convert_tokens_to_ids("<FaceHere>")
    assert torch.equal(model.causal_lm.lm_head.weight, llm.lm_head.weight)
    assert torch.equal(model.visual_encoder.clip.visual_projection.weight, clip.visual_projection.weight)
    assert torch.equal(
        model.audio_encoder.hubert.encoder.layers[0].attention.q_proj.weight,
        hubert.encoder.layers[0].attention.q_proj.weight,
    )
    with torch.no_grad():
        pixels = model.visual_encoder.preprocess(batch["faces"][0])
        torch.testing.assert_close(
            model.visual_encoder.image_features(pixels), clip.get_image_features(pixel_values=pixels).pooler_output
        )
    loss = model(batch)
    assert torch.isfinite(loss)

    missing = copy.deepcopy(real)
    missing.model.hubert = str(tmp_path / "nowhere" / "chinese-hubert-large")
    with pytest.raises(
        FileNotFoundError, match=r"model.hubert=.*TencentGameMate/chinese-hubert-large.*models/chinese-hubert-large"
    ):
        build_model(missing)

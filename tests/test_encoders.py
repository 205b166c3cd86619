"""The HuBERT features: the official "last 4 hidden states" as transformers 4.49 defines them, whatever convention the
installed transformers uses for `hidden_states` (reference §1.1 and Corrections: under 4.49 the last entry of a
stable-layer-norm HuBERT is the output AFTER the encoder's final LayerNorm; under 5.x it is the one before)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

from affectgpt.model.encoders import AudioEncoder

# 4,000 samples -> 12 HuBERT frames with the default conv strides (5*2^6 = 320x downsampling).
SAMPLES = 4000


def tiny_hubert(stable: bool, layers: int) -> HubertModel:
    torch.manual_seed(0)
    config = HubertConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        conv_dim=(8,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=stable,
        conv_bias=True,
    )
    model = HubertModel(config).eval()
    with torch.no_grad():  # a final LayerNorm that is not the identity map, so pre- and post-norm states differ
        model.encoder.layer_norm.weight.normal_(1.0, 0.5)
        model.encoder.layer_norm.bias.normal_(0.0, 0.5)
    return model


def encoder(model: HubertModel, n_layers: int = 4) -> AudioEncoder:
    # do_normalize=False: HuBERT sees the raw clips, so the expected values below need no normalisation step
    return AudioEncoder(model, Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=False), n_layers=n_layers)


def official_states(model: HubertModel, x: torch.Tensor) -> list[torch.Tensor]:
    """transformers 4.49's `hidden_states`, rebuilt from the module structure with hooks (no `hidden_states` used):
    the input to every encoder layer, then the last layer's output, passed through the encoder's final LayerNorm
    for a stable-layer-norm model (4.49 HubertEncoderStableLayerNorm appends after that norm)."""
    inputs: list[torch.Tensor] = []
    outputs: list[torch.Tensor] = []
    hooks = [layer.register_forward_pre_hook(lambda _m, args: inputs.append(args[0])) for layer in model.encoder.layers]
    hooks.append(model.encoder.layers[-1].register_forward_hook(lambda _m, _a, out: outputs.append(out)))
    try:
        with torch.no_grad():
            model(input_values=x)
    finally:
        for hook in hooks:
            hook.remove()
    last = outputs[0][0] if isinstance(outputs[0], tuple) else outputs[0]
    if model.config.do_stable_layer_norm:
        with torch.no_grad():
            last = model.encoder.layer_norm(last)
    return inputs + [last]


def expected_features(states: list[torch.Tensor], n: int, b: int, t: int) -> torch.Tensor:
    """Official rule: mean of the last n states (all when fewer), then mean over the frames; [b, t, hidden]."""
    chosen = torch.stack(states[-n:], dim=0).double()
    return chosen.mean(dim=0).mean(dim=1).reshape(b, t, -1)


# fp32 means of <= 6 [12, 16] fp32 tensors, against the same means in float64: each ~1e-7 relative.
TOL = {"rtol": 1e-5, "atol": 1e-6}


@pytest.mark.parametrize("layers", [6, 4])
def test_stable_layer_norm_hubert_averages_three_layers_and_the_post_norm_state(layers):
    model = tiny_hubert(stable=True, layers=layers)
    audio = torch.randn(2, 3, SAMPLES, generator=torch.Generator().manual_seed(1))
    x = audio.reshape(6, SAMPLES)
    feats = encoder(model)(audio)
    assert feats.shape == (2, 3, 16) and feats.dtype == torch.float32
    # the explicit rule of the brief, from the installed transformers' output
    with torch.no_grad():
        out = model(input_values=x, output_hidden_states=True)
    assert len(out.hidden_states) == layers + 1
    four = list(out.hidden_states[-4:-1]) + [out.last_hidden_state]
    torch.testing.assert_close(feats.double(), expected_features(four, 4, 2, 3), **TOL)
    # and the 4.49 definition, independent of any hidden_states convention
    states = official_states(model, x)
    torch.testing.assert_close(feats.double(), expected_features(states, 4, 2, 3), **TOL)
    # the test can fail: the pre-norm last layer (5.x hidden_states[-1]) gives other features
    pre_norm = expected_features(list(out.hidden_states[-4:]), 4, 2, 3)
    if not torch.allclose(out.hidden_states[-1], out.last_hidden_state):  # transformers 5.x
        assert not torch.allclose(feats.double(), pre_norm, **TOL)


def test_non_stable_hubert_conventions_agree_and_take_the_last_four():
    model = tiny_hubert(stable=False, layers=5)
    audio = torch.randn(1, 2, SAMPLES, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(input_values=audio.reshape(2, SAMPLES), output_hidden_states=True)
    # HubertEncoder norms BEFORE the layers: the last hidden state is the last layer's output in every version
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    feats = encoder(model)(audio)
    torch.testing.assert_close(feats.double(), expected_features(list(out.hidden_states[-4:]), 4, 1, 2), **TOL)
    torch.testing.assert_close(feats.double(), expected_features(official_states(model, audio[0]), 4, 1, 2), **TOL)


def test_fewer_layers_than_four_average_every_state():
    model = tiny_hubert(stable=True, layers=2)  # 3 states: embedding-side input, layer 1, post-norm layer 2
    audio = torch.randn(1, 2, SAMPLES, generator=torch.Generator().manual_seed(3))
    states = official_states(model, audio[0])
    assert len(states) == 3
    feats = encoder(model)(audio)
    torch.testing.assert_close(feats.double(), expected_features(states, 3, 1, 2), **TOL)  # the official [-4:]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_n_layers_is_configurable(n):
    model = tiny_hubert(stable=True, layers=4)
    audio = torch.randn(1, 2, SAMPLES, generator=torch.Generator().manual_seed(4))
    feats = encoder(model, n_layers=n)(audio)
    torch.testing.assert_close(feats.double(), expected_features(official_states(model, audio[0]), n, 1, 2), **TOL)


def test_bad_layer_count_and_unknown_hidden_state_conventions_are_refused():
    model = tiny_hubert(stable=True, layers=2)
    with pytest.raises(ValueError, match="n_layers must be >= 1"):
        encoder(model, n_layers=0)
    enc = encoder(model)
    states = tuple(torch.zeros(1, 3, 16) for _ in range(4))  # 4 states from a 2-layer model: pre- AND post-norm?
    with pytest.raises(RuntimeError, match=r"4 hidden states, expected num_hidden_layers \+ 1 = 3"):
        enc.pool_layers(SimpleNamespace(hidden_states=states, last_hidden_state=states[-1]))

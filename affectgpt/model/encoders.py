"""Frozen media encoders: CLIP ViT-L/14 (official), SigLIP or DINOv2 for frames/faces; chinese-hubert-large
(official), WavLM, data2vec-audio or the Whisper encoder for audio clips.

Both take the collated uint8 / float32 tensors of a whole batch, preprocess them in torch (one
batched call instead of a per-image PIL loop) and return one vector per image / clip, i.e. the
pre-pooling sequence [B, T, D] that the poolers and the pre-fusion consume.

Official behaviour reproduced (reference §1.1):
- CLIP: stock CLIP preprocessing (resize shortest side to 224 bicubic, center crop 224, /255,
  OpenAI mean/std read from the processor config), then `get_image_features` = projected CLS.
- HuBERT: mean of the last 4 hidden states, then mean over time -> one 1024-d vector per 2-s clip.
  "Last 4" as transformers 4.49 (the official pin) returns them: for a stable-layer-norm HuBERT
  (HuBERT-large, chinese-hubert-large) its last `hidden_states` entry is the output AFTER the
  encoder's final LayerNorm, while transformers 5.x returns the last layer's output before it (the
  norm only reaches `last_hidden_state`). Both versions return num_hidden_layers + 1 states and agree
  on all but the last, so we average `hidden_states[-4:-1]` + `last_hidden_state`: the official
  features under either convention (and for non-stable HuBERTs, where the two are the same tensor).
  Input normalisation: the official code passes the (B*8, 32000) block as ONE unbatched tensor to
  Wav2Vec2FeatureExtractor, so when `do_normalize` is set the zero-mean/unit-variance statistics
  are joint over the whole batch (batch 3 in training, batch 1 = the sample's 8 clips at
  inference). Statistics that depend on which samples share a batch would make features
  non-reproducible and break the feature cache, so we normalise jointly over each *sample's* 8
  clips (`norm="sample"`, default): identical to official inference, and equal to official training
  up to the batch mixing. `norm="clip"` (HF's per-example behaviour) and `norm="none"` exist too.
  Without `do_normalize` in the preprocessor config no normalisation is applied, as official.

Alternatives (model.visual_encoder / model.audio_encoder), same output contract:
- SigLIP: pooled embedding (its attention-pooling head), DINOv2: CLS token after the final LayerNorm; pixels
  prepared by the same resize / crop / rescale / normalise steps with the values of the folder's preprocessor
  config (SigLIP: 384x384 resize, mean 0.5; DINOv2: shortest edge 256, crop 224, ImageNet mean).
- WavLM / data2vec-audio: exactly the HuBERT rule (their hidden-state conventions are HuBERT's).
- Whisper (encoder only): log-mel from the folder's WhisperFeatureExtractor, which pads every clip to 30 s
  (3000 mel frames; the encoder accepts nothing else). A 2-s clip fills 200 mel frames = 100 encoder frames
  (stride 2), so the time mean runs over those first ceil(samples / hop / 2) frames only: the 1400 frames of
  padding never enter the vector (they still sit in the encoder's attention context, as in Whisper itself).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as tvF

from affectgpt.model.backbones import AUDIO_ENCODERS, VISUAL_ENCODERS

# HF's Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm epsilon.
_AUDIO_EPS = 1e-7
AUDIO_NORMS = ("sample", "clip", "none")
# PIL resample codes of the preprocessor configs -> torchvision modes.
_RESAMPLE = {0: InterpolationMode.NEAREST, 2: InterpolationMode.BILINEAR, 3: InterpolationMode.BICUBIC}


def freeze(module: nn.Module) -> nn.Module:
    """No gradients and eval mode: the backbones are never trained (official §1.4)."""
    module.requires_grad_(False)
    return module.eval()


class _FrozenEncoder(nn.Module):
    """Keeps the wrapped backbone in eval mode whatever `.train()` the parent model receives."""

    def train(self, mode: bool = True) -> _FrozenEncoder:
        super().train(False)
        return self


def vector_width(config: Any, kind: str) -> int:
    """Width of the per-image / per-clip vector the heads receive: CLIP's projection, else the hidden size."""
    return int(config.projection_dim if kind == "clip" else config.hidden_size)


def _size(size: Any, key: str) -> Any:
    """A processor size entry (dict in transformers 4.x, SizeDict in 5.x), None when absent."""
    return size.get(key) if isinstance(size, dict) else getattr(size, key, None)


class VisualEncoder(_FrozenEncoder):
    """Image tower; uint8 [B, T, H, W, 3] -> float [B, T, dim] (CLIP projection / SigLIP pooled / DINOv2 CLS)."""

    def __init__(self, clip: nn.Module, processor, kind: str = "clip") -> None:
        super().__init__()
        if kind not in VISUAL_ENCODERS:
            raise ValueError(f"visual encoder must be one of {VISUAL_ENCODERS}, got {kind!r}")
        self.kind = kind
        self.clip = freeze(clip)  # CLIPVisionModelWithProjection | SiglipVisionModel | Dinov2Model
        size = processor.size
        short = _size(size, "shortest_edge")
        self.resize_to = int(short) if short else None
        self.resize_hw = None if self.resize_to else (int(_size(size, "height")), int(_size(size, "width")))
        self.interpolation = _RESAMPLE.get(int(getattr(processor, "resample", 3)), InterpolationMode.BICUBIC)
        crop = getattr(processor, "crop_size", None)
        do_crop = bool(getattr(processor, "do_center_crop", False)) and crop is not None
        self.crop_hw = (int(_size(crop, "height")), int(_size(crop, "width"))) if do_crop else None
        self.rescale = float(processor.rescale_factor) if processor.do_rescale else 1.0
        self.do_normalize = bool(processor.do_normalize)
        self.register_buffer("mean", torch.tensor(processor.image_mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(processor.image_std, dtype=torch.float32).view(1, 3, 1, 1), False)

    @property
    def dim(self) -> int:
        return vector_width(self.clip.config, self.kind)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> pixel_values [N, 3, crop, crop] exactly as CLIPImageProcessor does."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2)
        h, w = x.shape[-2:]
        if self.resize_to is not None:
            short, long = (h, w) if h <= w else (w, h)
            new_long = int(self.resize_to * long / short)
            new_hw = (self.resize_to, new_long) if h <= w else (new_long, self.resize_to)
        else:
            new_hw = self.resize_hw
        if tuple(new_hw) != (h, w):
            x = tvF.resize(x, list(new_hw), interpolation=self.interpolation, antialias=True)
        if self.crop_hw is not None:
            ch, cw = self.crop_hw
            h, w = x.shape[-2:]
            if ch > h or cw > w:
                raise ValueError(f"image {h}x{w} smaller than the {self.kind} crop {ch}x{cw} after resizing")
            top, left = int((h - ch) / 2.0), int((w - cw) / 2.0)
            x = x[..., top : top + ch, left : left + cw]
        if self.do_normalize:  # (x * rescale - mean) / std as one multiply-add
            scale = self.rescale / self.std
            return torch.addcmul(-self.mean / self.std, x.to(torch.float32), scale)
        return x.to(torch.float32) * self.rescale

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """CLIP: projected CLS = CLIPModel.get_image_features (official); SigLIP: pooled; DINOv2: CLS."""
        if self.kind == "siglip":
            return self.clip(pixel_values=pixel_values).pooler_output
        if self.kind == "dinov2":
            return self.clip(pixel_values=pixel_values).last_hidden_state[:, 0]  # = its pooler_output
        if hasattr(self.clip, "get_image_features"):  # CLIPModel
            out = self.clip.get_image_features(pixel_values=pixel_values)
            return out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 4.x vs 5.x
        return self.clip(pixel_values=pixel_values).image_embeds  # CLIPVisionModelWithProjection

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, t = images.shape[:2]
        pixels = self.preprocess(images.reshape(b * t, *images.shape[2:]))
        dtype = next(self.clip.parameters()).dtype
        feats = self.image_features(pixels.to(dtype))
        return feats.float().reshape(b, t, -1)


class AudioEncoder(_FrozenEncoder):
    """Speech encoder; float [B, T, S] 16 kHz clips -> [B, T, hidden] (last-N-layer mean, time mean)."""

    def __init__(
        self, hubert: nn.Module, feature_extractor, norm: str = "sample", n_layers: int = 4, kind: str = "hubert"
    ) -> None:
        super().__init__()
        if norm not in AUDIO_NORMS:
            raise ValueError(f"audio norm must be one of {AUDIO_NORMS}, got {norm!r}")
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1 (hidden states averaged), got {n_layers}")
        if kind not in AUDIO_ENCODERS:
            raise ValueError(f"audio encoder must be one of {AUDIO_ENCODERS}, got {kind!r}")
        self.kind = kind
        self.hubert = freeze(hubert)  # HubertModel | WavLMModel | Data2VecAudioModel | WhisperEncoder
        self.feature_extractor = feature_extractor if kind == "whisper" else None
        self.sampling_rate = int(feature_extractor.sampling_rate)
        # Whisper's log-mel front end has its own scaling; the wav2vec-style norm applies to the others only.
        self.norm = norm if kind != "whisper" and feature_extractor.do_normalize else "none"
        # Official: 4. A model with fewer layers averages all num_hidden_layers + 1 states (the official
        # slice [-4:] takes whatever there is), the embedding-side input state included.
        self.n_layers = n_layers

    @property
    def dim(self) -> int:
        return vector_width(self.hubert.config, self.kind)

    def normalize(self, audio: torch.Tensor) -> torch.Tensor:
        """[B, T, S] -> same shape, zero mean / unit variance per sample (or per clip)."""
        x = audio.to(torch.float32)
        if self.norm == "none":
            return x
        dims = (1, 2) if self.norm == "sample" else (2,)
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + _AUDIO_EPS)

    @torch.no_grad()
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.ndim != 3:
            raise ValueError(f"expected audio [B, clips, samples], got {tuple(audio.shape)}")
        b, t, s = audio.shape
        x = self.normalize(audio).reshape(b * t, s)
        dtype = next(self.hubert.parameters()).dtype
        if self.kind == "whisper":
            return self.whisper_features(x, dtype).float().reshape(b, t, -1)
        out = self.hubert(input_values=x.to(dtype), output_hidden_states=True)
        return self.pool_layers(out).mean(dim=1).float().reshape(b, t, -1)

    def whisper_features(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[N, S] -> [N, hidden]: log-mel padded to 30 s, encoder, time mean over the clip's own frames only."""
        fe = self.feature_extractor
        if x.shape[1] > fe.n_samples:
            raise ValueError(f"audio clips of {x.shape[1]} samples exceed Whisper's {fe.n_samples}-sample window")
        clips = [row.numpy() for row in x.cpu()]
        mel = fe(clips, sampling_rate=self.sampling_rate, return_tensors="pt").input_features
        out = self.hubert(input_features=mel.to(device=x.device, dtype=dtype), output_hidden_states=True)
        frames = int(np.ceil(x.shape[1] / fe.hop_length / 2))  # mel frames of real audio, halved by the stride-2 conv
        return self.pool_layers(out)[:, :frames].mean(dim=1)

    def pool_layers(self, out: Any) -> torch.Tensor:
        """[N, frames, hidden]: mean of the last `n_layers` hidden states, the post-norm state as the last."""
        states = out.hidden_states
        expected = int(self.hubert.config.num_hidden_layers) + 1
        if len(states) != expected:  # another convention than 4.49 / 5.x: refuse rather than mis-average
            raise RuntimeError(
                f"{self.kind} returned {len(states)} hidden states, expected num_hidden_layers + 1 = {expected} "
                f"(transformers convention changed?); the last-{self.n_layers}-layer average would be wrong"
            )
        chosen = list(states[-self.n_layers :])
        chosen[-1] = out.last_hidden_state  # post-final-LayerNorm (4.49's last entry; 5.x keeps it apart)
        return torch.stack(chosen, dim=0).mean(dim=0)

"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric"), version 0.1 on VGG16: a learned perceptual distance between two frames.

Both frames, RGB in [-1, 1], are shifted and scaled per channel (the lpips package's scaling
layer) and run through VGG16 up to relu1_2, relu2_2, relu3_3, relu4_3 and relu5_3. At each of
those five layers the features are unit-normalised over channels, their squared difference is
weighted per channel by a learned linear head (a 1x1 convolution, one output, no bias) and
averaged over space; the five numbers are summed. 0 for identical frames, larger for frames
that look more different (about 0.1 to 0.7 in practice).

Computed only from files the user passes (README, "Evaluation"), safetensors with the official
key names: torchvision's ImageNet VGG16 (`features.N.weight` / `.bias` at the 13 convolutions;
its `classifier.*` is not read) and the lpips package's v0.1 heads (`lin0.model.1.weight` to
`lin4...`), in one file or two.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from interworld.eval.backbone import load_weights

VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)  # torchvision cfg "D"
TAPS = (3, 8, 15, 22, 29)  # indices in `features` of relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
CHANNELS = (64, 128, 256, 512, 512)  # at the taps
SHIFT = (-0.030, -0.088, -0.188)  # the lpips scaling layer: (x - shift) / scale, x in [-1, 1]
SCALE = (0.458, 0.448, 0.450)


def _vgg16_trunk() -> nn.Sequential:
    """torchvision's vgg16().features up to relu5_3 (indices 0-29), so the keys are its own."""
    layers, c = [], 3
    for v in VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers)


class _Head(nn.Module):
    """One linear head; `model.0` is the lpips package's Dropout (a no-op at eval, no weights)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, 1, bias=False))


def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = _vgg16_trunk()
        for i, c in enumerate(CHANNELS):
            setattr(self, f"lin{i}", _Head(c))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_files(cls, paths: str | Path | list[str | Path], device: str | torch.device = "cpu") -> "LPIPS":
        """The VGG16 trunk and the v0.1 heads from one or two safetensors files (any split)."""
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        return load_weights(cls(), paths, ignore=("classifier.",), what="LPIPS weights", device=device)

    def layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised features at the five taps of frames x [N, 3, H, W] in [-1, 1]."""
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                out.append(_unit(x))
        return out

    def distance(self, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS [N] between two `layers` outputs (a batch of 1 is broadcast)."""
        return sum(getattr(self, f"lin{i}").model((a - b) ** 2).mean((1, 2, 3)) for i, (a, b) in enumerate(zip(fa, fb)))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.distance(self.layers(a), self.layers(b))

    @torch.no_grad()
    def against(self, ref: np.ndarray, videos: list[np.ndarray], batch: int = 8) -> list[np.ndarray]:
        """Per-frame LPIPS of each uint8 video [T, H, W, 3] against `ref` [T, H, W, 3], the
        reference's features computed once; a video of one frame is compared with every frame
        of `ref` (its features computed once too)."""
        for v in videos:
            if v.shape[1:] != ref.shape[1:] or len(v) not in (1, len(ref)):
                raise ValueError(f"LPIPS: a video of shape {v.shape} against a reference of shape {ref.shape}")
        dev = self.shift.device
        still = {j: self.layers(_frames(v, dev)) for j, v in enumerate(videos) if len(v) == 1}
        out = [[] for _ in videos]
        for s in range(0, len(ref), batch):
            fr = self.layers(_frames(ref[s:s + batch], dev))
            for j, v in enumerate(videos):
                fv = still[j] if j in still else self.layers(_frames(v[s:s + batch], dev))
                out[j].append(self.distance(fv, fr).float().cpu().numpy())
        return [np.concatenate(d) if d else np.zeros(0, np.float32) for d in out]


def _frames(v: np.ndarray, device) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [-1, 1] on `device`."""
    return torch.from_numpy(np.ascontiguousarray(v)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1


def lpips_per_frame(model: LPIPS, a: np.ndarray, b: np.ndarray, batch: int = 8) -> np.ndarray:
    """LPIPS of each frame of uint8 video `a` [T, H, W, 3] against the same frame of `b`, in
    batches of `batch` frames on the model's device."""
    return model.against(b, [a], batch)[0]


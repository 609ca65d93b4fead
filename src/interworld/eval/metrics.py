"""Frame metrics on uint8 videos [T, H, W, 3]: PSNR (also at a coarser scale) and SSIM per frame."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

BATCH = 64  # frames per pass: a 5-minute video (5250 frames) at once needs 90 GB in conv2d


def _batched(fn):
    @functools.wraps(fn)
    def per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([fn(a[i:i + BATCH], b[i:i + BATCH]) for i in range(0, max(len(a), 1), BATCH)])
    return per_frame


@_batched
def psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame PSNR in dB (peak 255); inf where the frames are identical."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0**2 / mse)


def block_mean(v: np.ndarray, factor: int) -> np.ndarray:
    """Frames [T, H, W, ...] averaged over `factor` x `factor` blocks, in float64 (rows and columns
    past the last whole block dropped)."""
    t, h, w = v.shape[:3]
    v = v[:, :h - h % factor, :w - w % factor].astype(np.float64)
    return v.reshape(t, h // factor, factor, w // factor, factor, *v.shape[3:]).mean(axis=(2, 4))


@_batched  # pooled in float64 a batch at a time, not a 5-minute video at once (2.6 GB)
def coarse_psnr(a: np.ndarray, b: np.ndarray, factor: int = 4) -> np.ndarray:
    """Per-frame PSNR of the frames averaged over `factor` x `factor` blocks: the layout (walls,
    floor, openings, their shading) without the fine texture. PSNR at full size prefers a blurred
    mean to a sharp frame whose texture is a pixel off; at 1/4 size both are judged on where
    things are (docs/TRAINING.md, run 30)."""
    return psnr(block_mean(a, factor), block_mean(b, factor))


@_batched
def ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame SSIM on luma with the standard 11x11 Gaussian window (sigma 1.5)."""
    def luma(v):
        v = torch.from_numpy(v).double()
        return (v[..., 0] * 0.299 + v[..., 1] * 0.587 + v[..., 2] * 0.114)[:, None]

    x, y = luma(a), luma(b)
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5**2))
    g = g / g.sum()

    def blur(t):  # the 11x11 Gaussian as two 1-D passes (separable)
        return F.conv2d(F.conv2d(t, g.view(1, 1, 1, 11)), g.view(1, 1, 11, 1))

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).numpy()

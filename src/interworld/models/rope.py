"""Rotary position embeddings.

3D RoPE as in Wan: of each head's 128 channels, 44 rotate with the latent-frame index,
42 with the row and 42 with the column. Matrix-Game-3.0 perturbs the base per head,
theta_h = theta * (1 + sigma * e_h) with e_h evenly spaced in [-1, 1], so memory frames
far in the past do not alias with recent ones. Temporal positions are absolute latent
frame indices (memory frames keep theirs), so the tables are computed on the fly rather
than cut from a fixed-length buffer: generation can run for as long as the user plays.
"""

from __future__ import annotations

import torch


def split_dims(head_dim: int) -> tuple[int, int, int]:
    """Complex pairs per axis (t, h, w): Wan gives c - 2(c//3), c//3, c//3 with c = head_dim/2."""
    c = head_dim // 2
    return c - 2 * (c // 3), c // 3, c // 3


def head_thetas(num_heads: int, theta: float, sigma: float) -> torch.Tensor:
    if sigma == 0 or num_heads == 1:
        return torch.full((num_heads,), float(theta), dtype=torch.float64)
    e = torch.linspace(-1.0, 1.0, num_heads, dtype=torch.float64)
    return theta * (1.0 + sigma * e)


def _angles(pos: torch.Tensor, pairs: int, thetas: torch.Tensor) -> torch.Tensor:
    """pos [N] -> angles [N, heads, pairs] (float64 for exactness at large positions)."""
    exponent = torch.arange(pairs, dtype=torch.float64, device=pos.device) / pairs
    omega = 1.0 / thetas.to(pos.device)[:, None] ** exponent[None, :]  # [heads, pairs]
    return pos.to(torch.float64)[:, None, None] * omega[None]


def rope_3d(frame_pos: torch.Tensor, height: int, width: int, head_dim: int, num_heads: int,
            theta: float = 10000.0, sigma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape [F*H*W, heads, head_dim/2] for tokens ordered (frame, row, column).
    frame_pos [F], or [B, F] when the samples of a batch differ (memory frames in training):
    then [B, F*H*W, heads, head_dim/2]."""
    ct, ch, cw = split_dims(head_dim)
    thetas = head_thetas(num_heads, theta, sigma)
    dev = frame_pos.device
    lead, f, n = frame_pos.shape[:-1], frame_pos.shape[-1], num_heads
    at = _angles(frame_pos.reshape(-1), ct, thetas).reshape(*lead, f, n, ct)
    ah = _angles(torch.arange(height, device=dev), ch, thetas)
    aw = _angles(torch.arange(width, device=dev), cw, thetas)
    grid = (*lead, f, height, width, n)
    ang = torch.cat([
        at[..., :, None, None, :, :].expand(*grid, ct),
        ah[:, None].expand(*grid, ch),
        aw.expand(*grid, cw),
    ], dim=-1).reshape(*lead, f * height * width, n, ct + ch + cw)
    return ang.cos().float(), ang.sin().float()


def rope_1d(pos: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of shape [N, 1, head_dim/2] for a temporal-only rotation."""
    ang = _angles(pos, head_dim // 2, torch.tensor([float(theta)], dtype=torch.float64))
    return ang.cos().float(), ang.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs (Wan's complex layout). x [B, L, heads, D]."""
    dtype = x.dtype
    xf = x.float().unflatten(-1, (-1, 2))
    x0, x1 = xf[..., 0], xf[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    return out.flatten(-2).to(dtype)

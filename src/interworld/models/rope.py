"""Rotary position embeddings.

3D RoPE as in Wan: of each head's 128 channels, 44 rotate with the latent-frame index,
42 with the row and 42 with the column. Matrix-Game-3.0 perturbs the base per head,
theta_h = theta * (1 + sigma * e_h) with e_h evenly spaced in [-1, 1], so memory frames
far in the past do not alias with recent ones. Temporal positions are absolute latent
frame indices (memory frames keep theirs), so the tables are computed on the fly rather
than cut from a fixed-length buffer: generation can run for as long as the user plays.
"""

from __future__ import annotations

import math

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


def ray_freqs(pairs: int, top: float = 12.0) -> torch.Tensor:
    """Integer angular frequencies, geometric from `top` down to 1: whole turns of the camera
    (360 degrees) then give back the same rotation, so a view met again after a full circle
    encodes as it did the first time."""
    if pairs == 1:
        return torch.ones(1, dtype=torch.float64)
    k = torch.arange(pairs, dtype=torch.float64)
    return torch.round(top ** (1.0 - k / (pairs - 1))).clamp(min=1.0)


def rope_rays(frame_pos: torch.Tensor, view: torch.Tensor, height: int, width: int, head_dim: int, num_heads: int,
              theta: float, sigma: float, fov: float) -> tuple[torch.Tensor, torch.Tensor]:
    """3D RoPE whose row and column axes are each token's ray elevation and azimuth in the world
    rather than its row and column: the frame's pitch and yaw (view [..., F, 2], degrees) plus the
    angle of the token's centre off the optical axis (horizontal field of view `fov`). Attention
    scores then depend on how far apart two tokens look, so after a turn a token finds what it
    sees where it was in the frames before (within one frame: nearly the row/column offset, as
    atan is nearly linear over the view). Our own addition; official weights use rope_3d.

    frame_pos [F] or [B, F]; view [S, F, 2]. Returns cos, sin [B', F*H*W, heads, head_dim/2]
    with B' the larger of B and S."""
    ct, ch, cw = split_dims(head_dim)
    dev = view.device
    thetas = head_thetas(num_heads, theta, sigma)
    f = frame_pos.shape[-1]
    at = _angles(frame_pos.reshape(-1), ct, thetas).reshape(-1, f, 1, 1, num_heads, ct)  # [Bt, F, 1, 1, n, ct]
    focal = 0.5 / math.tan(math.radians(fov) / 2)  # in units of the frame's width
    u = (torch.arange(width, device=dev, dtype=torch.float64) + 0.5 - width / 2) / width / focal
    v = (torch.arange(height, device=dev, dtype=torch.float64) + 0.5 - height / 2) / width / focal
    rad = torch.deg2rad(view.to(torch.float64))  # [S, F, 2]: yaw, pitch
    azimuth = rad[..., 0, None] - torch.atan(u)  # [S, F, W]: the right of the frame turns clockwise
    elevation = rad[..., 1, None] - torch.atan(v)  # [S, F, H]: rows go down
    ah = elevation[..., None] * ray_freqs(ch).to(dev)  # [S, F, H, ch]
    aw = azimuth[..., None] * ray_freqs(cw).to(dev)  # [S, F, W, cw]
    lead = max(at.shape[0], rad.shape[0])
    grid = (lead, f, height, width, num_heads)
    ang = torch.cat([
        at.expand(*grid, ct),
        ah[:, :, :, None, None, :].expand(*grid, ch),
        aw[:, :, None, :, None, :].expand(*grid, cw),
    ], dim=-1).reshape(lead, f * height * width, num_heads, ct + ch + cw)
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

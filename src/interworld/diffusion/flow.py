"""Flow matching in Wan's convention: schedule, noising, training timesteps, loss.

Timesteps t are in [0, 1000], sigma = t / 1000, x_t = (1 - sigma) x0 + sigma noise, and
the network predicts the velocity v = noise - x0 (so x0 = x_t - sigma v). The schedule
is shifted towards high noise, sigma' = shift sigma / (1 + (shift - 1) sigma), as Wan
and Matrix-Game-3.0 do (shift 5: 3 steps land near t = 1000, 909, 714).
"""

from __future__ import annotations

import torch


def shift_sigma(sigma, shift: float):
    return shift * sigma / (1 + (shift - 1) * sigma)


def timesteps(steps: int, shift: float = 5.0, t_max: float = 1000.0) -> list[float]:
    """`steps` descending timesteps: linspace(1, 0, steps + 1) without its 0, shifted."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)[:-1]
    return [float(x) * t_max for x in shift_sigma(s, shift)]


def _per_frame(t, x0: torch.Tensor) -> torch.Tensor:
    """Broadcast a scalar, [B] or per-frame [B, F] timestep against latents [B, C, F, H, W]."""
    t = torch.as_tensor(t, dtype=torch.float32, device=x0.device)
    if t.dim() == 0:
        return t
    if t.dim() == 1:
        return t.view(-1, 1, 1, 1, 1)
    return t[:, None, :, None, None]


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t) -> torch.Tensor:
    s = _per_frame(t, x0) / 1000.0
    return (1 - s) * x0 + s * noise


def x0_from_velocity(x_t: torch.Tensor, v: torch.Tensor, t) -> torch.Tensor:
    """The clean latents a velocity prediction implies, x0 = x_t - sigma v, in float32 (t as in add_noise)."""
    return x_t.float() - _per_frame(t, x_t) / 1000.0 * v.float()


def sample_train_timesteps(batch: int, frames: int, *, per_frame: bool = True, shift: float = 5.0,
                           generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """[B, F] training timesteps: sigma uniform in (0, 1), then shifted like the sampling
    schedule, so training spends its effort where few-step sampling evaluates the model.
    Independent per frame when `per_frame` (diffusion forcing), else one per sample."""
    n = frames if per_frame else 1
    u = torch.rand(batch, n, generator=generator, dtype=torch.float32)
    t = shift_sigma(u, shift) * 1000.0
    t = t.expand(batch, frames) if not per_frame else t
    return t.clamp(1.0, 1000.0).to(device) if device is not None else t.clamp(1.0, 1000.0)


def flow_matching_loss(v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE to the velocity noise - x0, averaged over the frames where mask [B, F] is True
    (context frames are excluded: they are given, not predicted)."""
    err = (v_pred.float() - (noise - x0).float()).pow(2).mean(dim=(1, 3, 4))  # [B, F]
    if mask is None:
        return err.mean()
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp(min=1.0)

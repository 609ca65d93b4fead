"""Training the causal VAE on recorded clips: L1 + MSE reconstruction and a small KL, and with
`adversary` (models/discriminator.py) a patch discriminator's term, so that the decoder draws
texture rather than the blurred mean of what a latent could be.

After training, per-channel latent statistics are measured on data and stored in the
VAE's `latents_mean` / `latents_std` buffers, so the DiT sees unit-scale latents.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from interworld.train.world import to_video


def vae_loss(vae, frames: torch.Tensor, device, kl_weight: float = 1e-6, adversary=None,
             step: int = 0) -> tuple[torch.Tensor, dict]:
    video = to_video(frames.to(device))
    rec, mu, logvar = vae(video)  # through forward, so a DDP wrapper syncs the gradients
    rec = rec.float()
    l1 = F.l1_loss(rec, video)
    mse = F.mse_loss(rec, video)
    kl = 0.5 * (mu.float().pow(2) + logvar.float().exp() - 1.0 - logvar.float()).mean()
    loss = l1 + mse + kl_weight * kl
    metrics = {"l1": l1.detach(), "mse": mse.detach(), "kl": kl.detach()}
    if adversary is not None:
        adversary.update(video, rec)
        loss = loss + adversary.term(l1 + mse, rec, step)
        metrics.update(adversary.last_stats)
    return loss, {"loss": loss.detach(), **metrics}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two videos in [-1, 1] (peak-to-peak 2)."""
    mse = F.mse_loss(a.float(), b.float()).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(4.0 / mse)).item()


@torch.no_grad()
def reconstruction_psnr(vae, frames: torch.Tensor, device) -> float:
    video = to_video(frames.to(device))
    return psnr(vae.decode(vae.encode(video)), video)


@torch.no_grad()
def set_latent_stats(vae, frames: torch.Tensor, device) -> None:
    video = to_video(frames.to(device))
    z = vae.encode(video).float()
    vae.latents_mean.copy_(z.mean(dim=(0, 2, 3, 4)))
    vae.latents_std.copy_(z.std(dim=(0, 2, 3, 4)).clamp(min=1e-3))

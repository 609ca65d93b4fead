"""A patch discriminator for adversarial VAE training (`train vae|decoder --adversarial`).

L1/MSE reconstruction alone makes the decoder predict the mean of what a latent could be: at 8x
spatial compression that is a blur (docs/TRAINING.md, run 9). Wan's and Matrix-Game's VAEs are
sharp because their decoders also learn against a discriminator; this is the small version.

The discriminator judges overlapping patches (each logit sees 38x38 pixels) of a frame
stacked with the frame before it, so it also penalises flicker between frames that a
per-frame discriminator could not see. Hinge losses, as in VQGAN.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
import torch.nn.functional as F
from torch import nn


class PatchDiscriminator(nn.Module):
    def __init__(self, dim: int = 64, layers: int = 3):
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(6, dim, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = dim
        for _ in range(layers - 1):
            mods += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2)]
            c *= 2
        mods += [nn.Conv2d(c, 1, 3, 1, 1)]
        self.net = nn.Sequential(*mods)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video [B, 3, T, H, W] in [-1, 1], T >= 2 -> patch logits [B * (T-1), 1, h, w]."""
        b, c, t, h, w = video.shape
        pairs = torch.cat([video[:, :, 1:], video[:, :, :-1]], 1)  # each frame with its predecessor
        return self.net(pairs.transpose(1, 2).reshape(b * (t - 1), 2 * c, h, w))


def d_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


def adaptive_weight(rec_loss: torch.Tensor, adv_loss: torch.Tensor, last: torch.Tensor, cap: float = 1e4) -> torch.Tensor:
    """VQGAN's balance: scale the adversarial term so that its gradient at the decoder's last
    layer is as large as the reconstruction's; the discriminator can then neither be ignored nor
    take over, whatever the losses' scales."""
    g_rec = torch.autograd.grad(rec_loss, last, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv_loss, last, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0, cap).detach()


class Adversary:
    """The discriminator, its optimizer and the balanced generator term, for a decoder's training
    loop: `update(real, rec)` trains the discriminator one step on a batch; `term(rec_loss, rec,
    step)` is what to add to the decoder's loss (0 before `start`). `wrap` puts the discriminator
    under DDP where the decoder trains on several GPUs, so every rank's copy stays the same."""

    def __init__(self, weight: float, last: torch.Tensor, device, lr: float, start: int = 0, amp=None, wrap=None):
        self.weight, self.last, self.start = weight, last, start
        self.disc = PatchDiscriminator().to(device)
        self.opt = torch.optim.AdamW(self.disc.parameters(), lr=lr, betas=(0.5, 0.9), weight_decay=0.0)
        self.net = wrap(self.disc) if wrap else self.disc
        self.amp = amp
        self.last_stats: dict[str, float] = {}

    def save(self, path: Path) -> None:
        """The discriminator's weights beside a checkpoint (temp file, then rename), for a resumed
        run; a training aid that never ships. Its optimizer state starts afresh on resume."""
        tmp = Path(str(path) + ".tmp")
        save_file(self.disc.state_dict(), str(tmp))
        tmp.replace(path)

    def load(self, path: Path) -> bool:
        if not Path(path).is_file():
            return False
        self.disc.load_state_dict(load_file(str(path), device=str(next(self.disc.parameters()).device)))
        return True

    def _ctx(self):
        return self.amp if self.amp is not None else contextlib.nullcontext()

    def update(self, real: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
        with self._ctx():
            # one pass over both, so DDP sees the discriminator's parameters used once per step
            logits = self.net(torch.cat([real, rec.detach()], 0)).float()
        loss = d_hinge_loss(*logits.chunk(2))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.last_stats = {"d_loss": loss.detach()}
        return loss.detach()

    def term(self, rec_loss: torch.Tensor, rec: torch.Tensor, step: int) -> torch.Tensor:
        if step < self.start:
            return rec_loss.new_zeros(())
        self.disc.requires_grad_(False)
        with self._ctx():
            g = g_hinge_loss(self.disc(rec).float())  # not through DDP: no discriminator gradients to sync
        self.disc.requires_grad_(True)
        w = self.weight * adaptive_weight(rec_loss, g, self.last)
        self.last_stats.update(g_adv=g.detach(), adv_weight=w)
        return w * g

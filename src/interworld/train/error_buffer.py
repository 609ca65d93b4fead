"""The error buffer: the model's own mistakes, fed back as corrupted context.

At inference the context the model conditions on is its own output, with its own errors;
in training it is clean. Matrix-Game-3.0 closes that gap with an error buffer: residuals
between the model's predictions and their targets are collected during training, and
sampled residuals are added to the clean context latents, so the model learns to predict
the next frames from context that is wrong the way its own output will be.

Here a residual is x0_hat - x0 of one latent frame, where x0_hat = x_t - sigma v_hat is the
clean frame the network predicts from a noisy one. Only predictions at sigma <= max_sigma
are kept: the sampler's last steps, whose errors are the ones that stay in the output.
The buffer is a fixed ring of latent frames, so it never grows past `capacity`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


class ErrorBuffer:
    def __init__(self, capacity: int = 1024, max_sigma: float = 0.5, p_inject: float = 0.5):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity, self.max_sigma, self.p_inject = capacity, max_sigma, p_inject
        self.data: torch.Tensor | None = None  # [capacity, C, h, w], allocated on the first add
        self.count = 0  # residuals held (<= capacity)
        self.pos = 0  # next slot to overwrite: the oldest residual goes first

    def __len__(self) -> int:
        return self.count

    @torch.no_grad()
    def add(self, residuals: torch.Tensor) -> None:
        """residuals [N, C, h, w]; beyond capacity the oldest are overwritten."""
        r = residuals.detach().float()[-self.capacity:]
        if self.data is None or self.data.shape[1:] != r.shape[1:] or self.data.device != r.device:
            self.data = torch.zeros(self.capacity, *r.shape[1:], device=r.device)
            self.count = self.pos = 0
        idx = (self.pos + torch.arange(len(r), device=r.device)) % self.capacity
        self.data[idx] = r
        self.pos = int((self.pos + len(r)) % self.capacity)
        self.count = min(self.capacity, self.count + len(r))

    def save(self, path: Path) -> None:
        """The residuals held, in ring order, to safetensors (temp file, then rename), so that a
        resumed run starts with the buffer it stopped with, not an empty one."""
        if self.data is None:
            return
        tmp = Path(f"{path}.tmp")
        save_file({"data": self.data.cpu().contiguous(), "count": torch.tensor(self.count),
                   "pos": torch.tensor(self.pos)}, str(tmp))
        os.replace(tmp, path)

    def load(self, path: Path, device) -> None:
        """What `save` wrote, if it is there (a run checkpointed before the buffer existed has none)."""
        if not Path(path).is_file():
            return
        st = load_file(str(path))
        if st["data"].shape[0] != self.capacity:
            raise ValueError(f"{path} holds an error buffer of {st['data'].shape[0]} frames; this run asks for "
                             f"{self.capacity}: resume with the same --error-buffer")
        self.data = st["data"].to(device)
        self.count, self.pos = int(st["count"]), int(st["pos"])

    def sample(self, n: int) -> torch.Tensor:
        """n residuals drawn uniformly from those held, [n, C, h, w]."""
        if self.count == 0:
            raise RuntimeError("the error buffer is empty")
        return self.data[torch.randint(self.count, (n,), device=self.data.device)]

    @torch.no_grad()
    def collect(self, x_t: torch.Tensor, v_hat: torch.Tensor, x0: torch.Tensor, t: torch.Tensor) -> None:
        """Residuals of the noisy frames (0 < sigma <= max_sigma) of one training batch.
        x_t, v_hat, x0 [B, C, F, h, w]; t [B, F] in 0-1000."""
        sigma = t / 1000.0
        keep = (sigma > 0) & (sigma <= self.max_sigma)
        if not bool(keep.any()):
            return
        x0_hat = x_t.float() - sigma[:, None, :, None, None] * v_hat.float()
        res = (x0_hat - x0.float()).permute(0, 2, 1, 3, 4)[keep]  # [N, C, h, w]
        self.add(res)

    @torch.no_grad()
    def perturb(self, z: torch.Tensor) -> torch.Tensor:
        """Every frame of z [B, C, F, h, w] plus a sampled residual times a factor in [0, 1], in a
        p_inject share of the clips (the context a student writes into its cache)."""
        return self._inject(z, torch.ones(z.shape[0], z.shape[2], dtype=torch.bool, device=z.device))

    @torch.no_grad()
    def corrupt_context(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Add sampled residuals, each scaled by a random factor in [0, 1], to the clean context
        frames (t == 0) after the first (the start image is real at inference too), in a
        p_inject share of the clips. Returns a new tensor; z is not changed."""
        return self._inject(z, (t == 0) & (torch.arange(z.shape[2], device=t.device) > 0)[None])

    def _inject(self, z: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """z plus a scaled sampled residual on the `frames` [B, F] of a p_inject share of the clips."""
        if self.count == 0:
            return z
        ctx = frames & (torch.rand(z.shape[0], 1, device=z.device) < self.p_inject)
        n = int(ctx.sum())
        if n == 0:
            return z
        noise = self.sample(n) * torch.rand(n, 1, 1, 1, device=z.device)
        out = z.clone().permute(0, 2, 1, 3, 4)  # [B, F, C, h, w]
        out[ctx] += noise.to(out.dtype)
        return out.permute(0, 2, 1, 3, 4)

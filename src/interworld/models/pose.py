"""A small pose estimator: the camera motion between two frames, for judging action following.

Input: two frames k apart (uint8 [B, H, W, 3] each), stacked as 6 channels and resized to
64x80. Output: (yaw change in degrees, forward and leftward displacement in map units in
the first frame's heading). Trained on engine frames and their true poses
(`interworld train pose`), so it measures motion the same way on real and generated video.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class PoseConfig:
    gap: int = 4  # frames between the two inputs
    height: int = 64
    width: int = 80
    width_mult: int = 32
    yaw_scale: float = 10.0  # targets are divided by these, so both terms weigh alike
    move_scale: float = 50.0

    def to_dict(self) -> dict:
        return asdict(self)


def relative_motion(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Poses [..., 5] (x, y, z, yaw ccw, pitch) -> [..., 3]: yaw change (deg, wrapped to
    +-180), forward and leftward displacement in a's heading."""
    dyaw = (b[..., 3] - a[..., 3] + 180.0) % 360.0 - 180.0
    dx, dy = b[..., 0] - a[..., 0], b[..., 1] - a[..., 1]
    yaw = torch.deg2rad(a[..., 3])
    fwd = dx * torch.cos(yaw) + dy * torch.sin(yaw)
    left = -dx * torch.sin(yaw) + dy * torch.cos(yaw)
    return torch.stack([dyaw, fwd, left], -1)


class PoseNet(nn.Module):
    def __init__(self, cfg: PoseConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.width_mult
        layers, cin = [], 6
        for cout in (c, 2 * c, 4 * c, 4 * c, 8 * c):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 3)
        self.register_buffer("scale", torch.tensor([cfg.yaw_scale, cfg.move_scale, cfg.move_scale]))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b: uint8 [B, H, W, 3] -> motion [B, 3] in degrees / map units."""
        x = torch.cat([a, b], -1).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        x = F.interpolate(x, size=(self.cfg.height, self.cfg.width), mode="bilinear", align_corners=False)
        return self.head(self.features(x).mean((2, 3))) * self.scale

    def loss(self, a, b, target) -> torch.Tensor:
        return F.smooth_l1_loss(self(a, b) / self.scale, target / self.scale)

    @torch.no_grad()
    def along(self, frames, batch: int = 64) -> torch.Tensor:
        """Motion between frames t and t+gap for every t of a video [T, H, W, 3] (uint8 array)."""
        g = self.cfg.gap
        v = torch.as_tensor(frames)
        n = len(v) - g
        out = [self(v[i:min(i + batch, n)], v[i + g:min(i + batch, n) + g]) for i in range(0, n, batch)]
        return torch.cat(out) if out else torch.zeros(0, 3)


def yaw_error(est: torch.Tensor, true: torch.Tensor) -> float:
    return float(((est[:, 0] - true[:, 0] + 180) % 360 - 180).abs().mean())


def move_error(est: torch.Tensor, true: torch.Tensor) -> float:
    return float((est[:, 1:] - true[:, 1:]).norm(dim=-1).mean())




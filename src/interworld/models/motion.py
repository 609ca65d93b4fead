"""Learned action-to-motion: where the camera goes for the keys held, with Doom's momentum.

The fixed kinematics (models/camera.py) move the camera a constant step per frame while a
key is held. ViZDoom's player accelerates and slides on: each frame's displacement is the
last one decayed by friction plus a push along the new heading. This model learns that
map from recorded engine poses: per frame, the displacement in the current heading frame
(forward, left) from the keys and from the previous frame's displacement expressed in the
same heading frame. Yaw and pitch follow the mouse exactly (measured, docs/DATA.md), so they
stay with the kinematics.
"""

from __future__ import annotations


import torch
import torch.nn as nn

from interworld.config import Kinematics


def to_heading(d: torch.Tensor, yaw_deg: torch.Tensor) -> torch.Tensor:
    """World displacement [..., 2] -> (forward, left) in the heading yaw (degrees, ccw)."""
    y = torch.deg2rad(yaw_deg)
    c, s = torch.cos(y), torch.sin(y)
    return torch.stack([d[..., 0] * c + d[..., 1] * s, -d[..., 0] * s + d[..., 1] * c], -1)


def to_world(h: torch.Tensor, yaw_deg: torch.Tensor) -> torch.Tensor:
    y = torch.deg2rad(yaw_deg)
    c, s = torch.cos(y), torch.sin(y)
    return torch.stack([h[..., 0] * c - h[..., 1] * s, h[..., 0] * s + h[..., 1] * c], -1)


class MotionModel(nn.Module):
    SCALE = 16.0  # map units per frame: inputs and outputs are divided by it

    def __init__(self, n_keys: int = 6, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_keys + 2, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, keys: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """keys [..., K]; prev [..., 2] last displacement in the current heading -> displacement [..., 2]."""
        x = torch.cat([keys.float(), prev.float() / self.SCALE], -1)
        return self.net(x) * self.SCALE

    @torch.no_grad()
    def integrate(self, start: torch.Tensor, keys: torch.Tensor, mouse: torch.Tensor, kin: Kinematics,
                  velocity: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Roll a pose [5] forward one frame per action, as camera.integrate_poses does, with
        learned translation. velocity: the last world displacement [2] (zeros at rest).
        Returns (poses [T, 5], the last world displacement)."""
        x, y, z, yaw, pitch = (float(v) for v in start)
        d = torch.zeros(2) if velocity is None else velocity.float().clone()
        out = []
        for k, m in zip(keys.float(), mouse.float()):
            yaw = (yaw - float(m[0]) * kin.deg_per_mouse_x) % 360.0
            pitch = min(max(pitch - float(m[1]) * kin.deg_per_mouse_y, kin.pitch_min), kin.pitch_max)
            h = self(k, to_heading(d, torch.tensor(yaw)))
            d = to_world(h, torch.tensor(yaw))
            x, y = x + float(d[0]), y + float(d[1])
            out.append((x, y, z, yaw, pitch))
        return torch.tensor(out, dtype=torch.float32).reshape(-1, 5), d


def motion_targets(pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From engine poses [T, 5]: for frames 2..T-1, (previous displacement, displacement), both
    in each frame's own heading. Frame j's action moved the player from pose j-1 to pose j."""
    d = pose[1:, :2] - pose[:-1, :2]  # d[j-1]: displacement into frame j
    yaw = pose[2:, 3]
    return to_heading(d[:-1], yaw), to_heading(d[1:], yaw)



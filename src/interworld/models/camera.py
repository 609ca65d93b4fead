"""Camera poses from actions, and Plucker rays from poses.

Poses are (x, y, z, yaw, pitch) per video frame in ViZDoom's convention: map units,
z up, yaw in degrees counter-clockwise from +x, pitch in degrees (positive looks up).
Poses are integrated from the actions by a fixed kinematic model (Matrix-Game-3.0
does not predict them), and each latent frame is described to the network by the
Plucker rays (o x d, d) of its pixels, relative to a reference camera.
"""

from __future__ import annotations

import math

import torch

from interworld.config import Kinematics

POSE_DIM = 5  # x, y, z, yaw, pitch


def integrate_poses(start: torch.Tensor, keys: torch.Tensor, mouse: torch.Tensor, kin: Kinematics) -> torch.Tensor:
    """Roll a pose forward one video frame per action.

    start [5]; keys [T, K] multi-hot in config.KEYS order (w, s, a, d, ...); mouse [T, 2] (dx, dy).
    Returns [T, 5]: the pose after each frame's action. The mouse turns first, then the
    keys move along the new heading, as ViZDoom applies a tic.
    """
    x, y, z, yaw, pitch = (float(v) for v in start)
    out = []
    for k, m in zip(keys.tolist(), mouse.tolist()):
        yaw = (yaw - m[0] * kin.deg_per_mouse_x) % 360.0
        pitch = min(max(pitch - m[1] * kin.deg_per_mouse_y, kin.pitch_min), kin.pitch_max)
        fwd = (k[0] - k[1]) * kin.move_step
        side = (k[3] - k[2]) * kin.strafe_step
        c, s = math.cos(math.radians(yaw)), math.sin(math.radians(yaw))
        x += fwd * c + side * s
        y += fwd * s - side * c
        out.append((x, y, z, yaw, pitch))
    return torch.tensor(out, dtype=torch.float32).reshape(-1, POSE_DIM)


def cam_to_world(pose: torch.Tensor, position_scale: float = 1.0) -> torch.Tensor:
    """[..., 5] -> [..., 4, 4] camera-to-world in OpenCV axes (x right, y down, z forward)."""
    yaw, pitch = torch.deg2rad(pose[..., 3].double()), torch.deg2rad(pose[..., 4].double())
    cy, sy, cp, sp = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin()
    zero = torch.zeros_like(cy)
    fwd = torch.stack([cy * cp, sy * cp, sp], -1)
    right = torch.stack([sy, -cy, zero], -1)
    up = torch.linalg.cross(right, fwd)
    m = torch.zeros(*pose.shape[:-1], 4, 4, dtype=torch.float64, device=pose.device)
    m[..., :3, 0], m[..., :3, 1], m[..., :3, 2] = right, -up, fwd
    m[..., :3, 3] = pose[..., :3].double() * position_scale
    m[..., 3, 3] = 1
    return m


def rigid_inverse(m: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid 4x4 transforms, [R t; 0 1] -> [R^T -R^T t; 0 1] (no solver, no GPU sync)."""
    out = torch.zeros_like(m)
    rt = m[..., :3, :3].transpose(-1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -(rt @ m[..., :3, 3:4])[..., 0]
    out[..., 3, 3] = 1
    return out


def plucker_rays(poses: torch.Tensor, refs: torch.Tensor, height: int, width: int, fov: float,
                 position_scale: float = 1.0) -> torch.Tensor:
    """Plucker rays of each frame's pixels in its reference camera's frame.

    poses, refs [..., F, 5] -> [..., F, 6, height, width] float32 (leading dims batch).
    """
    if poses.dim() > 2:
        lead = poses.shape[:-2]
        out = plucker_rays(poses.reshape(-1, 5), refs.reshape(-1, 5), height, width, fov, position_scale)
        return out.reshape(*lead, poses.shape[-2], *out.shape[1:])
    rel = rigid_inverse(cam_to_world(refs, position_scale)) @ cam_to_world(poses, position_scale)
    f = 0.5 * width / math.tan(math.radians(fov) / 2)
    dev = poses.device
    u = (torch.arange(width, device=dev, dtype=torch.float64) + 0.5 - width / 2) / f
    v = (torch.arange(height, device=dev, dtype=torch.float64) + 0.5 - height / 2) / f
    d_cam = torch.stack([u[None, :].expand(height, width), v[:, None].expand(height, width),
                         torch.ones(height, width, dtype=torch.float64, device=dev)], -1)  # [H, W, 3]
    d = torch.einsum("fij,hwj->fhwi", rel[:, :3, :3], d_cam)
    d = d / d.norm(dim=-1, keepdim=True)
    o = rel[:, None, None, :3, 3].expand_as(d)
    rays = torch.cat([torch.linalg.cross(o, d), d], dim=-1)  # [F, H, W, 6]
    return rays.permute(0, 3, 1, 2).float()


def fold_rays(rays: torch.Tensor, fold: int) -> torch.Tensor:
    """[F, 6, H, W] -> [F, 6*fold*fold, H/fold, W/fold]: one vector per latent pixel."""
    return torch.nn.functional.pixel_unshuffle(rays, fold)


def latent_plucker(poses: torch.Tensor, refs: torch.Tensor, height: int, width: int, fold: int,
                   kin: Kinematics, position_scale: float = 1.0 / 64) -> torch.Tensor:
    """Plucker input of the DiT for F latent frames: [..., F, 6*fold^2, height/fold, width/fold]."""
    rays = plucker_rays(poses, refs, height, width, kin.fov, position_scale)
    return fold_rays(rays.flatten(0, -4), fold).reshape(*rays.shape[:-3], -1, height // fold, width // fold)


def previous_refs(poses: torch.Tensor, first_ref: torch.Tensor | None = None) -> torch.Tensor:
    """Frame-to-frame references: each latent frame relative to the one before it ([..., F, 5])."""
    first = poses[..., :1, :] if first_ref is None else first_ref.reshape(*poses.shape[:-2], 1, POSE_DIM)
    return torch.cat([first, poses[..., :-1, :]], dim=-2)

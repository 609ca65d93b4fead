"""Camera-aware memory retrieval: which earlier latent frames saw what the camera will see.

For a few query poses of the segment to generate, points are sampled on a grid inside
the query camera's frustum and projected into each earlier frame's camera; the frames
with the largest in-view fraction are retrieved (Matrix-Game-3.0's rule). One slot is
pinned to an early frame as a sink.
"""

from __future__ import annotations

import math

import torch

from interworld.models.camera import cam_to_world, rigid_inverse


def frustum_points(pose: torch.Tensor, fov: float, aspect: float, near: float, far: float, n: int = 10) -> torch.Tensor:
    """n^3 world points on a grid inside the frustum of `pose` [..., 5]; returns [..., n^3, 3]."""
    tx = math.tan(math.radians(fov) / 2)
    ty = tx / aspect
    g = (torch.arange(n, dtype=torch.float64, device=pose.device) + 0.5) / n
    depth = near + (far - near) * g
    u, v = (2 * g - 1) * tx, (2 * g - 1) * ty
    d, uu, vv = torch.meshgrid(depth, u, v, indexing="ij")
    pts = torch.stack([uu * d, vv * d, d, torch.ones_like(d)], -1).reshape(-1, 4)
    return torch.einsum("...ij,pj->...pi", cam_to_world(pose), pts)[..., :3]


def in_view_fraction(points: torch.Tensor, poses: torch.Tensor, fov: float, aspect: float) -> torch.Tensor:
    """Fraction of `points` [..., P, 3] inside the field of view of each pose [..., N, 5] -> [..., N]."""
    w2c = rigid_inverse(cam_to_world(poses))  # [..., N, 4, 4]
    ph = torch.cat([points, torch.ones_like(points[..., :1])], -1)
    cam = torch.einsum("...nij,...pj->...npi", w2c, ph)[..., :3]
    z = cam[..., 2]
    tx = math.tan(math.radians(fov) / 2)
    ok = (z > 1e-6) & ((cam[..., 0] / z).abs() <= tx) & ((cam[..., 1] / z).abs() <= tx / aspect)
    return ok.double().mean(-1)


def view_frustum(kin, height: int, width: int) -> dict:
    """The frustum that retrieval samples: the camera's field of view, from 0.1 to 30 units of the
    model's camera space (64 map units each: the Plucker position scale) in front of it."""
    scale = 64.0
    return {"fov": kin.fov, "aspect": width / height, "near": 0.1 * scale, "far": 30.0 * scale}


def overlap_topk(query_poses: torch.Tensor, cand_poses: torch.Tensor, valid: torch.Tensor, k: int, *, fov: float,
                 aspect: float, near: float, far: float, n: int = 10) -> torch.Tensor:
    """The batched rule of `retrieve` for training: for each sample, the k valid candidates whose
    views overlap the query cameras' most, ties to the later candidate.

    query_poses [B, Q, 5]; cand_poses [B, K, 5] in time order; valid [B, K] bool.
    Returns indices into K [B, k], in time order."""
    pts = frustum_points(query_poses, fov, aspect, near, far, n).flatten(1, 2)  # [B, Q*n^3, 3]
    score = in_view_fraction(pts, cand_poses, fov, aspect)
    later = torch.arange(cand_poses.shape[1], device=score.device, dtype=score.dtype) / cand_poses.shape[1]
    score = torch.where(valid, score + 1e-6 * later, torch.full_like(score, -1.0))
    return score.topk(k, dim=1).indices.sort(dim=1).values


def retrieve(history_poses: torch.Tensor, candidates: list[int], query_poses: torch.Tensor, k: int, *,
             fov: float, aspect: float, near: float, far: float, sink: int | None = 1) -> list[int]:
    """Pick up to k frame indices from `candidates` whose views overlap the query poses most.

    history_poses [N, 5] poses of the latent frames so far; query_poses [Q, 5].
    Returns indices sorted by time (so memory enters the context in order).
    """
    if k <= 0 or not candidates:
        return []
    chosen: list[int] = []
    if sink is not None and sink in candidates:
        chosen.append(sink)
    rest = [c for c in candidates if c not in chosen]
    if rest and len(chosen) < k:
        pts = torch.cat([frustum_points(q, fov, aspect, near, far) for q in query_poses.double()])
        score = in_view_fraction(pts, history_poses[rest].double(), fov, aspect)
        # ties (e.g. nothing in view) go to the most recent frame
        order = sorted(range(len(rest)), key=lambda i: (-float(score[i]), -rest[i]))
        chosen += [rest[i] for i in order[: k - len(chosen)]]
    return sorted(chosen)

"""The memory bank: past latent frames kept with their camera poses for retrieval, bounded.

A stream of minutes makes thousands of latent frames; keeping them all grows memory and
the cost of retrieval without end. The bank keeps at most `capacity` frames. Eviction
rule, when a frame arrives and the bank is full:

1. the oldest frame whose view a newer frame in the bank repeats goes first: a newer frame
   stands within `radius` map units of it and faces within half the field of view of the
   same way (what it saw, the newer frame sees too);
2. if no view is repeated, the oldest frame goes;
3. pinned frames (the stream's first frames, the memory sink) never go.

So the bank keeps one frame per place and heading it has been to, the most recent one.
"""

from __future__ import annotations

import torch


class MemoryBank:
    def __init__(self, capacity: int, radius: float = 64.0, fov: float = 90.0, pinned: tuple[int, ...] = (0, 1)):
        if capacity < len(pinned) + 1:
            raise ValueError(f"a memory bank needs room for its {len(pinned)} pinned frames and one more, "
                             f"got capacity {capacity}")
        self.capacity, self.radius, self.half_fov, self.pinned = capacity, radius, fov / 2, set(pinned)
        self.latents: dict[int, torch.Tensor] = {}  # latent index -> [B, C, 1, h, w]
        self.poses: dict[int, torch.Tensor] = {}  # latent index -> [5]

    def __len__(self) -> int:
        return len(self.latents)

    def __contains__(self, idx: int) -> bool:
        return idx in self.latents

    def ids(self) -> list[int]:
        return sorted(self.latents)

    def get(self, idx: int) -> torch.Tensor:
        return self.latents[idx]

    def add(self, idx: int, latent: torch.Tensor, pose: torch.Tensor) -> int | None:
        """Store frame `idx`; returns the index evicted to make room, if any."""
        self.latents[idx], self.poses[idx] = latent, pose.float()
        if len(self.latents) <= self.capacity:
            return None
        gone = self._victim()
        del self.latents[gone], self.poses[gone]
        return gone

    def _victim(self) -> int:
        ids = [i for i in self.ids() if i not in self.pinned]
        p = torch.stack([self.poses[i] for i in ids])
        near = torch.cdist(p[:, :3], p[:, :3]) <= self.radius
        dyaw = ((p[:, None, 3] - p[None, :, 3] + 180) % 360 - 180).abs()
        same = near & (dyaw <= self.half_fov)
        newer = torch.arange(len(ids))[None, :] > torch.arange(len(ids))[:, None]  # [i, j]: j is newer than i
        repeated = (same & newer).any(1)
        return ids[int(repeated.nonzero()[0])] if bool(repeated.any()) else ids[0]

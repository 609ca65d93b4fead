"""Dataset shards: one `.npz` per contiguous clip of one episode.

Arrays (N frames): frames uint8 [N, H, W, 3]; keys uint8 [N, 6] (multi-hot over
config.KEYS); mouse float32 [N, 2] (dx, dy in degrees: + turns right, + looks down);
pose float32 [N, 5] (x, y, z, yaw, pitch: map units, degrees, yaw counter-clockwise,
pitch + up); episode int32 [N]; frame int32 [N] (index within the episode); and meta,
a JSON string (map, fps, size, keys order, policy seed, engine, interworld version).
keys[j] and mouse[j] are the action that led to frame j (zero for an episode's first).
Shards are written to `NAME.tmp` and renamed, so a killed recorder leaves whole shards only.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FIELDS = ("frames", "keys", "mouse", "pose", "episode", "frame")


@dataclass
class Shard:
    frames: np.ndarray
    keys: np.ndarray
    mouse: np.ndarray
    pose: np.ndarray
    episode: np.ndarray
    frame: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.frames)


def write_shard(path: str | Path, shard: Shard, compress: bool = False) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    arrays = {k: getattr(shard, k) for k in FIELDS}
    with open(tmp, "wb") as f:
        (np.savez_compressed if compress else np.savez)(f, meta=np.array(json.dumps(shard.meta)), **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def list_shards(folder: str | Path) -> list[Path]:
    """Whole shards only: `.tmp` files of a killed recorder are ignored. Linked folders are
    followed (e.g. `data/val` linked to recordings kept elsewhere), each real folder once."""
    out, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree, or a second link to one folder
            dirs[:] = []
            continue
        seen.add(real)
        out += [Path(root) / f for f in files if f.endswith(".npz")]
    return sorted(p for p in out if p.is_file())


def load_shard(path: str | Path) -> Shard:
    with np.load(path, allow_pickle=False) as z:
        return Shard(**{k: z[k] for k in FIELDS}, meta=json.loads(str(z["meta"])))


class ClipDataset:
    """Random fixed-length clips from shards held in memory (uint8), for training.

    `maps` filters shards by their map id; clips never cross a shard boundary. `part=(i, n)`
    loads every n-th shard from the i-th (one rank's share), or all when there are fewer than n."""

    def __init__(self, folder: str | Path, length: int, maps: list[str] | None = None, seed: int = 0,
                 size: tuple[int, int] | None = None, part: tuple[int, int] = (0, 1)):
        self.length = length
        self.shards = []
        paths = list_shards(folder)
        if len(paths) >= 4 * part[1]:
            paths = paths[part[0]::part[1]]
        for p in paths:
            s = load_shard(p)
            if maps is not None and s.meta.get("map") not in maps:
                continue
            if len(s) >= length and (size is None or s.frames.shape[1:3] == tuple(size)):
                self.shards.append(s)
        if not self.shards:
            which = f" on the {len(maps)} requested maps" if maps else ""
            raise ValueError(f"no shards of at least {length} frames{which} in {str(folder)!r}")
        self.weights = [len(s) - length + 1 for s in self.shards]
        self.rng = random.Random(seed)

    @property
    def frames(self) -> int:
        return sum(len(s) for s in self.shards)

    def clip(self, shard_index: int, start: int) -> dict:
        s, L = self.shards[shard_index], self.length
        keys = s.keys[start:start + L].astype(np.float32)
        mouse = s.mouse[start:start + L].copy()
        keys[0], mouse[0] = 0, 0  # the first frame is given, not reached by an action
        return {"frames": s.frames[start:start + L], "keys": keys, "mouse": mouse,
                "pose": s.pose[start:start + L], "map": s.meta.get("map", "")}

    def sample(self, batch: int) -> dict[str, torch.Tensor]:
        idx = self.rng.choices(range(len(self.shards)), weights=self.weights, k=batch)
        clips = [self.clip(i, self.rng.randrange(self.weights[i])) for i in idx]
        out = {k: torch.from_numpy(np.stack([c[k] for c in clips])) for k in ("frames", "keys", "mouse", "pose")}
        out["maps"] = [c["map"] for c in clips]
        return out

    def fixed(self, count: int, seed: int = 0) -> dict[str, torch.Tensor]:
        """The same `count` clips every time (for validation)."""
        keep = self.rng
        self.rng = random.Random(seed)
        try:
            return self.sample(count)
        finally:
            self.rng = keep

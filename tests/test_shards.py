"""Listing shard files: whole shards only, through linked folders, each once."""

import os

import numpy as np

from interworld.data.shards import Shard, list_shards, load_shard, write_shard


def _shard(n: int) -> Shard:
    return Shard(frames=np.zeros((n, 8, 8, 3), np.uint8), keys=np.zeros((n, 6), np.uint8),
                 mouse=np.zeros((n, 2), np.float32), pose=np.zeros((n, 5), np.float32),
                 episode=np.zeros(n, np.int32), frame=np.arange(n, dtype=np.int32), meta={"map": "freedoom2:MAP19"})


def test_linked_folders_are_listed_once_and_partial_shards_never(tmp_path):
    kept = tmp_path / "elsewhere"
    kept.mkdir()
    write_shard(kept / "a.npz", _shard(3))
    (kept / "b.npz.tmp").write_bytes(b"half a shard")  # a killed recorder's leftover
    data = tmp_path / "data"
    data.mkdir()
    write_shard(data / "c.npz", _shard(2))
    os.symlink(kept, data / "val")  # validation recordings kept on another disk
    os.symlink(data, data / "loop")  # a link back up the tree must not loop
    found = list_shards(data)
    assert sorted(p.name for p in found) == ["a.npz", "c.npz"]
    assert len(load_shard(next(p for p in found if p.name == "a.npz"))) == 3

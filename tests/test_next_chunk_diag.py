"""scripts/next_chunk_diag.py (docs/TRAINING.md, run 31): the block oracle, the changed conditioning, and
one window's predictions on the tiny model."""

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from interworld.config import get_preset
from interworld.engine.world import World

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "next_chunk_diag.py"


@pytest.fixture(scope="module")
def diag():
    spec = importlib.util.spec_from_file_location("next_chunk_diag", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_oracle_finds_a_shift_within_its_reach_and_not_beyond(diag):
    rng = np.random.default_rng(0)
    last = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    target = np.roll(last, (3, -2), (0, 1))  # moved 3 down and 2 left: inner blocks are exact copies
    out = diag.oracle_blocks(last, target, 8, 4)
    assert np.array_equal(out[8:24, 8:40], target[8:24, 8:40])
    far = diag.oracle_blocks(last, np.roll(last, 7, 1), 8, 4)  # a shift past the search radius
    assert np.abs(far[8:24, 8:40].astype(int) - np.roll(last, 7, 1)[8:24, 8:40]).mean() > 20
    with pytest.raises(ValueError, match="tile"):
        diag.oracle_blocks(last, target, 10, 2)


def test_changed_conditioning_touches_only_the_chunk(diag):
    keys, mouse = torch.ones(9, 6), torch.full((9, 2), 2.0)
    pose = torch.arange(45, dtype=torch.float32).reshape(9, 5)
    same = diag.conditioned(keys, mouse, pose, 5, "as recorded")
    assert all(torch.equal(x, y) for x, y in zip(same, (keys, mouse, pose)))
    k, m, p = diag.conditioned(keys, mouse, pose, 5, "neither")
    assert (k[5:] == 0).all() and (m[5:] == 0).all() and (p[5:] == pose[4]).all()
    assert torch.equal(k[:5], keys[:5]) and torch.equal(p[:5], pose[:5])
    k, m, p = diag.conditioned(keys, mouse, pose, 5, "turn mirrored")
    assert torch.equal(m[5:, 0], -mouse[5:, 0]) and torch.equal(m[5:, 1], mouse[5:, 1])
    assert torch.equal(p[5:, 3] - pose[4, 3], -(pose[5:, 3] - pose[4, 3])) and torch.equal(k, keys)
    with pytest.raises(ValueError, match="one of"):
        diag.conditioned(keys, mouse, pose, 5, "sideways")


def test_one_window_on_the_tiny_model(diag):
    cfg = get_preset("tiny").replace(scheme="causal")
    w = World.from_config(cfg)
    tr = cfg.vae.temporal
    n = diag.LEAD * tr + 1 + diag.CONTEXT * tr + 1
    rng = np.random.default_rng(1)
    shard = SimpleNamespace(frames=rng.integers(0, 256, (n, cfg.height, cfg.width, 3), dtype=np.uint8),
                            keys=np.zeros((n, 6), np.float32), mouse=rng.normal(0, 3, (n, 2)).astype(np.float32),
                            pose=np.zeros((n, 5), np.float32))
    start = diag.LEAD * tr
    with torch.no_grad():
        for context in (1, diag.CONTEXT):
            v = diag.predict(w, shard, start, context, "no actions")
            assert v.shape == (tr,) and np.isfinite(v).all()
        rec = diag.reconstruct(w, shard, start)
    assert rec.shape == (tr,) and np.isfinite(rec).all()


def test_windows_put_the_chunk_on_the_same_frame_for_2_and_4_frame_latents(diag, tmp_path):
    from interworld.data.shards import Shard, write_shard
    n = 200
    z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
    write_shard(tmp_path / "a.npz", Shard(np.zeros((n, 4, 4, 3), np.uint8), z(n, 6), z(n, 2), z(n, 5),
                                          np.zeros(n, np.int64), np.arange(n), {}))
    chunk = {}  # the chunk's first frame, as predict() places it, per frames per latent
    for tr in (2, 4):
        starts = [s for _, s in diag.windows(tmp_path, 3, 1, tr)]
        assert min(starts) >= diag.LEAD * tr  # the frames decoded before the context exist
        assert max(starts) + 1 + diag.CONTEXT * tr <= n
        chunk[tr] = [s + 1 + (diag.CONTEXT - 1) * tr for s in starts]
    assert chunk[2] == chunk[4] and len(set(chunk[4])) == 3


def test_a_turn_to_the_left_moves_the_picture_right(diag):
    rng = np.random.default_rng(2)
    frame = rng.integers(0, 256, (16, 40, 3), dtype=np.uint8)
    assert np.array_equal(diag.rotate_frame(frame, 0.0, 0.0, 90.0), frame)
    step = np.degrees(np.arctan(2 / 40))  # at 90 degrees, one column at the centre is atan(2 / width)
    left = diag.rotate_frame(frame, step, 0.0, 90.0).astype(int)
    assert np.abs(left[:, 19:22] - frame[:, 18:21]).mean() < 3 < np.abs(left[:, 19:22] - frame[:, 20:23]).mean()
    right = diag.rotate_frame(frame, -step, 0.0, 90.0).astype(int)
    assert np.abs(right[:, 18:21] - frame[:, 19:22]).mean() < 3
    up = diag.rotate_frame(frame, 0.0, step, 90.0).astype(int)  # looking up moves the picture down
    assert np.abs(up[8:10, 10:30] - frame[7:9, 10:30]).mean() < 3

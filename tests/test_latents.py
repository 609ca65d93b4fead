"""Latent clip cache for world training: the same clips, encoded once."""

import numpy as np
import torch

from interworld.config import get_preset
from interworld.data.shards import ClipDataset, Shard, write_shard
from interworld.models.vae import CausalVAE
from interworld.train.latents import LatentClips
from interworld.train.world import to_video


def _shard(n, seed, h=16, w=16):
    r = np.random.default_rng(seed)
    return Shard(frames=r.integers(0, 256, (n, h, w, 3), dtype=np.uint8), keys=r.integers(0, 2, (n, 6), dtype=np.uint8),
                 mouse=r.normal(size=(n, 2)).astype(np.float32), pose=r.normal(size=(n, 5)).astype(np.float32),
                 episode=np.zeros(n, np.int32), frame=np.arange(n, dtype=np.int32), meta={"map": "freedoom2:MAP01"})


def test_cached_clips_match_their_shards(tmp_path):
    cfg = get_preset("tiny")
    torch.manual_seed(0)
    vae = CausalVAE(cfg.vae).eval()
    tr, F = cfg.vae.temporal, 3
    shards = [_shard(23, 0), _shard(30, 1)]
    for i, s in enumerate(shards):
        write_shard(tmp_path / f"s{i}.npz", s)
    clips = ClipDataset(tmp_path, 1 + (F - 1) * tr)
    cache = LatentClips(clips, vae, F, "cpu", seed=0)
    # a shard of n frames has k = (n - 1) // tr sequence latents after frame 0 and k - F + 2 clip starts
    assert cache.clips == sum((len(s) - 1) // tr - F + 2 for s in shards)
    b = cache.sample(64)
    assert b["latents"].shape == (64, cfg.vae.z_dim, F, 16 // cfg.vae.spatial, 16 // cfg.vae.spatial) and b["keys"].shape == (64, 1 + (F - 1) * tr, 6)

    # every sampled clip is exactly some (shard, start = 4j) of the recorded data
    with torch.no_grad():
        whole = [vae.normalize(vae.encode(to_video(torch.from_numpy(s.frames[: 1 + ((len(s) - 1) // tr) * tr])[None])))
                 for s in shards]
    found = 0
    for i in range(64):
        for s, zs in zip(shards, whole):
            for j in range((len(s) - 1) // tr - F + 2):
                if torch.allclose(b["latents"][i, :, 1:], zs[0, :, j + 1:j + F], atol=2e-3):
                    img = vae.normalize(vae.encode(to_video(torch.from_numpy(s.frames[tr * j:tr * j + 1])[None])))
                    assert torch.allclose(b["latents"][i, :, 0], img[0, :, 0], atol=2e-3)
                    fr = slice(tr * j, tr * j + 1 + (F - 1) * tr)
                    assert torch.equal(b["keys"][i, 1:], torch.from_numpy(s.keys[fr][1:]).float())
                    assert torch.equal(b["keys"][i, 0], torch.zeros(6))  # the first frame is given
                    assert torch.allclose(b["pose"][i], torch.from_numpy(s.pose[fr]))
                    found += 1
    assert found == 64

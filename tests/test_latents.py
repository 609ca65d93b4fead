"""Latent clip cache for world training: the same clips, encoded once."""

import numpy as np
import pytest
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


def test_memory_frames_come_from_earlier_in_the_same_shard_by_the_generators_rule(tmp_path):
    from interworld.models.memory import retrieve, view_frustum

    cfg = get_preset("tiny")
    torch.manual_seed(0)
    vae = CausalVAE(cfg.vae).eval()
    tr, F, k = cfg.vae.temporal, 3, 2
    for i, n in enumerate([41, 45]):
        s = _shard(n, i)
        # a walk that turns: views overlap more or less, so the choice is not decided by recency alone
        s.pose[:] = 0
        s.pose[:, 0] = np.arange(n) * 20.0
        s.pose[:, 3] = (np.arange(n) * 37.0) % 360
        write_shard(tmp_path / f"s{i}.npz", s)
    cache = LatentClips(ClipDataset(tmp_path, 1 + (F - 1) * tr), vae, F, "cpu", seed=0)
    b = cache.sample(32, memory=k)
    fr = view_frustum(cfg.kinematics, 16, 16)
    mem = cache.memory(b["start"], k, F - 1, fr)
    assert mem["latents"].shape == (32, cfg.vae.z_dim, k, 4, 4) and mem["pos"].shape == (32, k)
    for i in range(32):
        j = int(b["start"][i])
        first = int(cache.shard_first[j])
        ids = (mem["pos"][i] + j).tolist()
        assert all(first <= x < j for x in ids) and ids == sorted(ids)  # earlier, same shard, in time order
        for x, slot in zip(ids, range(k)):
            assert torch.equal(mem["latents"][i, :, slot], cache.seq[x].float())
            assert torch.equal(mem["poses"][i, slot], cache.pose[x * tr])
        # the same choice as the streaming generator's retrieval from a bank of those frames
        hist = cache.pose[torch.arange(len(cache.seq)) * tr]
        cands = list(range(max(first, j - 128), j))
        want = retrieve(hist, cands, hist[j + F - 1:j + F], k, sink=None, **fr)
        assert ids == want, (ids, want)


@pytest.mark.parametrize("ray", [False, True])
def test_training_layout_with_memory_is_the_streaming_reference(ray):
    """What world_loss feeds the DiT for a clip with memory is causal_reference with that memory
    (with RoPE by ray direction too: the memory frames' own views)."""
    from interworld.engine.generator import causal_reference
    from interworld.models.dit import build_dit
    from interworld.train.world import attach_memory, clip_conditions

    cfg = get_preset("tiny").replace(memory_latents=2, window_latents=2, ray_rope=ray)
    torch.manual_seed(0)
    dit = build_dit(cfg).eval()
    for blk in dit.blocks:  # weight on the zero-initialised camera path, as a trained model has
        torch.nn.init.normal_(blk.cam_scale_layer.weight, std=0.05)
    f, m, tr = 5, 2, cfg.vae.temporal
    c, _, h, w = cfg.latent_shape(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, c, f, h, w, generator=g)
    t = torch.tensor([[0.0, 0.0, 0.0, 0.0, 600.0]])
    keys = (torch.rand(1 + (f - 1) * tr, 6, generator=g) > 0.5).float()
    mouse = torch.randn(1 + (f - 1) * tr, 2, generator=g)
    poses = torch.randn(f, 5, generator=g) * torch.tensor([30.0, 30.0, 0.0, 40.0, 5.0])
    memory = {"latents": torch.randn(1, c, m, h, w, generator=g), "pos": torch.tensor([[-9, -4]]),
              "poses": torch.randn(1, m, 5, generator=g) * 30, "query_from": f - 1}
    ctx = torch.randn(1, 4, cfg.text_dim)
    step, pl = clip_conditions(cfg, keys[None], mouse[None], poses[None], (cfg.height, cfg.width), "causal", "cpu",
                               cfg.chunk_latents, 1, 1)
    xm, tm, sm, plm = attach_memory(cfg, "causal", memory, x, t, step, pl, poses[None], (cfg.height, cfg.width))
    with torch.no_grad():
        got = dit(xm, tm, ctx, sm, plucker=plm)[0][:, :, m:]
    ref = causal_reference(dit, cfg, x, t, ctx, keys, mouse, poses, cfg.height, cfg.width,
                           memory={"latents": memory["latents"], "pos": memory["pos"][0], "poses": memory["poses"][0],
                                   "query_from": f - 1})
    assert torch.allclose(got, ref, atol=1e-5), float((got - ref).abs().max())
    with torch.no_grad():  # and the memory matters to the last frame only
        plain = dit(x, t, ctx, step, plucker=pl)[0]
    assert torch.allclose(got[:, :, :f - 1], plain[:, :, :f - 1], atol=1e-5)
    assert not torch.allclose(got[:, :, f - 1], plain[:, :, f - 1], atol=1e-3)

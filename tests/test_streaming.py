"""Streaming generation equals its simple references, in both attention schemes."""

import pytest
import torch

from interworld.config import get_preset
from interworld.engine.generator import Generator, causal_frame_mask, causal_reference
from interworld.models.dit import WanDiT


class Recorder(torch.nn.Module):
    """Wraps the DiT and keeps every call's inputs and output."""

    def __init__(self, m):
        super().__init__()
        self.m, self.calls = m, []

    def forward(self, x, t, ctx, step, plucker=None, kv_prefix=None, text_embedded=False):
        v, kv = self.m(x, t, ctx, step, plucker, kv_prefix, text_embedded)
        self.calls.append(dict(x=x.clone(), t=t.clone(), pos=step.frame_pos.clone(), v=v.clone()))
        return v, kv


def _trained_like(cfg, seed=0):
    torch.manual_seed(seed)
    m = WanDiT(cfg)
    for blk in m.blocks:  # give the zero-initialised paths weight, as training would
        for lin in (blk.cam_scale_layer, blk.cam_shift_layer):
            torch.nn.init.normal_(lin.weight, std=0.05)
        if blk.action_model is not None:
            torch.nn.init.normal_(blk.action_model.proj_mouse.weight, std=0.05)
            torch.nn.init.normal_(blk.action_model.proj_keyboard.weight, std=0.05)
    if cfg.prev_latent:
        torch.nn.init.normal_(m.patch_embedding_prev.weight, std=0.05)
    return m.eval()


def _actions(n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 6, generator=g) > 0.6).float(), torch.randn(n, 2, generator=g) * 3


def _run(gen, chunks, seed=0, z0=None):
    c, _, h, w = gen.cfg.latent_shape(1)
    z0 = torch.randn(1, c, 1, h, w, generator=torch.Generator().manual_seed(123)) if z0 is None else z0
    gen.start(z0)
    outs = []
    for i in range(chunks):
        k, m = _actions(gen.frames_for_next(), seed + i)
        outs.append(gen.next_chunk(k, m))
    return outs


@pytest.mark.parametrize("chunk,sink,window,memory,prev,patch,ray", [
    (1, 1, 2, False, False, 2, False), (2, 1, 3, False, False, 2, False), (2, 0, 2, False, False, 2, False),
    (1, 1, 2, True, False, 2, False), (2, 1, 2, True, False, 2, False), (1, 1, 2, False, True, 2, False),
    (2, 1, 2, True, True, 2, False), (1, 1, 2, True, False, 1, False), (1, 1, 2, True, False, 2, True)])
def test_causal_streaming_equals_full_sequence(chunk, sink, window, memory, prev, patch, ray):
    """Each denoising pass of the stream equals the block-causal forward over everything so far;
    with memory, over the retrieved frames too, seen by the chunk being made and nothing else;
    with the previous-frame path, each frame embeds the one before it as the full sequence has it;
    with one token per latent pixel (patch 1), at four times the tokens; with RoPE by ray direction,
    the cached keys keep the turn of the frame that wrote them."""
    cfg = get_preset("tiny").replace(chunk_latents=chunk, sink_latents=sink, window_latents=window, steps=2,
                                     sampler="euler", memory_latents=2, prev_latent=prev).with_dit(patch=patch,
                                                                                                    ray_rope=ray)
    rec = Recorder(_trained_like(cfg))
    ctx = torch.randn(1, 4, cfg.text_dim)
    gen = Generator(rec, cfg, ctx, scheme="causal", seed=3, memory=memory)
    c, _, h, w = cfg.latent_shape(1)
    z0 = torch.randn(1, c, 1, h, w, generator=torch.Generator().manual_seed(123))
    gen.start(z0)
    outs, mems = [], []
    for i in range(5):
        k, m = _actions(gen.frames_for_next(), i)
        outs.append(gen.next_chunk(k, m))
        mems.append(gen.last_memory)
    hist = torch.cat([z0] + outs, dim=2)
    denoise_calls = [c for c in rec.calls if float(c["t"].max()) > 0]
    assert len(denoise_calls) == 5 * 2
    assert len(gen.cache.frames) <= sink + window  # the cache stays bounded
    assert any(mems) == memory  # frames that left the window come back as memory, when it is on
    worst = 0.0
    for i, call in enumerate(denoise_calls):
        start = int(call["pos"][0])
        n = call["x"].shape[2]
        lat = torch.cat([hist[:, :, :start], call["x"]], dim=2)
        t = torch.cat([torch.zeros(1, start), call["t"]], dim=1)
        mem = mems[i // 2]
        memory_in = None if not mem else {"latents": hist[:, :, mem], "pos": gen.memory_positions(mem, start),
                                          "poses": gen.poses[0, mem], "query_from": start}
        ref = causal_reference(rec.m, cfg, lat, t, ctx, gen.keys[0], gen.mouse[0], gen.poses[0, : start + n],
                               cfg.height, cfg.width, memory=memory_in)
        worst = max(worst, float((ref[:, :, start:] - call["v"]).abs().max()))
    assert worst < 1e-4, worst


def test_causal_mask_shape_of_window_and_sinks():
    m = causal_frame_mask(7, chunk=2, sink=1, window=2, first_chunk=1)
    # frame 5 (chunk 5-6) sees the sink 0, the window 3-4 and its own chunk 5-6
    assert m[5].nonzero().flatten().tolist() == [0, 3, 4, 5, 6]
    assert m[1].nonzero().flatten().tolist() == [0, 1, 2]
    assert not m[0, 1:].any()


def test_later_actions_leave_earlier_chunks_bit_identical():
    cfg = get_preset("tiny").replace(chunk_latents=1, window_latents=2)
    dit = _trained_like(cfg, seed=5)
    ctx = torch.randn(1, 4, cfg.text_dim)
    a = _run(Generator(dit, cfg, ctx, scheme="causal", seed=9), chunks=4, seed=0)
    gen = Generator(dit, cfg, ctx, scheme="causal", seed=9)
    c, _, h, w = cfg.latent_shape(1)
    gen.start(torch.randn(1, c, 1, h, w, generator=torch.Generator().manual_seed(123)))
    b = []
    for i in range(4):
        k, m = _actions(gen.frames_for_next(), i if i < 3 else 99)  # only the last chunk's actions differ
        b.append(gen.next_chunk(k, m))
    for i in range(3):
        assert torch.equal(a[i], b[i])
    assert not torch.equal(a[3], b[3])


def test_segment_context_stays_exactly_as_given():
    cfg = get_preset("tiny").replace(steps=3, sampler="unipc")
    rec = Recorder(_trained_like(cfg, seed=2))
    gen = Generator(rec, cfg, torch.randn(1, 4, cfg.text_dim), scheme="segment", seed=1)
    _run(gen, chunks=3)
    assert gen.n_latents == cfg.first_latents + 2 * cfg.new_latents
    seen_memory = False
    for call in rec.calls:
        pos = call["pos"].tolist()
        n_ctx = int((call["t"][0] == 0).sum())
        assert n_ctx >= 1 and (call["t"][0, n_ctx:] > 0).all()  # context first, at timestep 0
        for j in range(n_ctx):  # bit for bit what the history holds, at every sampler step
            assert torch.equal(call["x"][:, :, j:j + 1], gen.latent(pos[j]))
        new = pos[n_ctx:]
        assert new == list(range(new[0], new[0] + len(new)))
        seen_memory |= n_ctx > cfg.past_latents
    assert seen_memory  # later segments carry retrieved memory frames with their own indices


def test_same_seed_same_latents_different_seed_different():
    cfg = get_preset("tiny")
    dit = _trained_like(cfg, seed=4)
    ctx = torch.randn(1, 4, cfg.text_dim)
    run = lambda s: torch.cat(_run(Generator(dit, cfg, ctx, scheme="causal", seed=s), chunks=2), 2)
    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))

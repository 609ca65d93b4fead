"""Camera-aware memory: retrieval by view overlap, and a memory bank that stays bounded."""

import pytest
import torch

from interworld.config import get_preset
from interworld.engine.generator import Generator
from interworld.engine.memory_bank import MemoryBank
from interworld.models.memory import retrieve


def _pose(x=0.0, y=0.0, yaw=0.0):
    return torch.tensor([x, y, 0.0, yaw, 0.0])


def test_retrieval_prefers_the_frame_facing_the_same_way():
    history = torch.stack([_pose(), _pose(yaw=180.0), _pose(yaw=10.0), _pose(yaw=200.0)])
    got = retrieve(history, [1, 2, 3], _pose(yaw=5.0)[None], k=1, fov=90.0, aspect=1.25, near=6.4, far=1920.0,
                   sink=None)
    assert got == [2]  # facing 10 degrees, not the frames facing away
    got = retrieve(history, [1, 2, 3], _pose(yaw=190.0)[None], k=1, fov=90.0, aspect=1.25, near=6.4, far=1920.0,
                   sink=None)
    assert got in ([1], [3])


def test_bank_evicts_repeated_views_first_then_the_oldest_and_never_the_pinned():
    z = torch.zeros(1, 1, 1, 1, 1)
    bank = MemoryBank(capacity=4, radius=64.0, fov=90.0, pinned=(0,))
    for i, p in enumerate([_pose(), _pose(500, 0), _pose(0, 500), _pose(500, 500)]):
        assert bank.add(i, z, p) is None
    assert bank.add(4, z, _pose(510, 0, 20)) == 1  # frame 1's view is repeated by frame 4: it goes
    assert bank.add(5, z, _pose(-900, 0)) == 2  # nothing repeated: the oldest unpinned goes (0 is pinned)
    assert bank.ids() == [0, 3, 4, 5]


@pytest.mark.parametrize("scheme", ["segment", "causal"])
def test_long_stream_keeps_bounded_state_and_memory_off_equals_an_empty_bank(scheme):
    cfg = get_preset("tiny").replace(memory_bank=6)
    torch.manual_seed(0)
    from interworld.models.dit import build_dit

    dit = build_dit(cfg).eval()
    ctx = torch.randn(1, 4, cfg.text_dim)
    c, _, h, w = cfg.latent_shape(1)
    z0 = torch.randn(1, c, 1, h, w, generator=torch.Generator().manual_seed(1))
    gen = Generator(dit, cfg, ctx, scheme=scheme, seed=2)
    gen.start(z0)
    g = torch.Generator().manual_seed(0)
    for i in range(25):
        n = gen.frames_for_next()
        gen.next_chunk(torch.zeros(n, 6), torch.randn(n, 2, generator=g) * 20)  # turning: views change
        assert len(gen.bank) <= 6 and len(gen.recent) <= max(cfg.past_latents, 1)
    per = cfg.new_latents if scheme == "segment" else cfg.chunk_latents
    first = cfg.first_latents if scheme == "segment" else 1 + cfg.chunk_latents
    assert gen.n_latents == first + 24 * per and 0 in gen.bank

    # memory off is bit-identical to memory on with nothing in the bank to retrieve
    off = Generator(dit, cfg, ctx, scheme=scheme, seed=2, memory=False)
    on = Generator(dit, cfg, ctx, scheme=scheme, seed=2)
    full = Generator(dit, cfg, ctx, scheme=scheme, seed=2)
    for x in (off, on, full):
        x.start(z0)
    differs = False
    for i in range(4):
        n = off.frames_for_next()
        k, m = torch.zeros(n, 6), torch.full((n, 2), 3.0)
        on.bank.latents.clear()
        on.bank.poses.clear()
        a = off.next_chunk(k, m)
        assert torch.equal(a, on.next_chunk(k, m))
        differs |= not torch.equal(a, full.next_chunk(k, m))
    assert differs  # with frames in the bank, memory does change the output

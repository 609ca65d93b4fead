"""The error buffer: bounded, first in first out, samples what it collected, corrupts only context."""

import torch

from interworld.diffusion.flow import add_noise
from interworld.train.error_buffer import ErrorBuffer


def test_bounded_ring_keeps_the_newest():
    eb = ErrorBuffer(capacity=8)
    for i in range(5):  # 5 batches of 3 frames, each frame filled with its running index
        eb.add(torch.arange(3 * i, 3 * i + 3).float()[:, None, None, None].expand(3, 2, 2, 2))
        assert len(eb) == min(8, 3 * (i + 1)) and eb.data.shape == (8, 2, 2, 2)
    held = sorted(eb.data[:, 0, 0, 0].tolist())
    assert held == [float(x) for x in range(7, 15)]  # the 8 newest of 0..14


def test_samples_have_the_statistics_of_what_was_collected():
    torch.manual_seed(0)
    eb = ErrorBuffer(capacity=4096)
    res = torch.randn(4096, 3, 4, 4) * torch.tensor([0.1, 0.5, 2.0])[:, None, None] + torch.tensor([0.0, 1.0, -1.0])[:, None, None]
    eb.add(res)
    s = eb.sample(20000)
    assert torch.allclose(s.mean((0, 2, 3)), res.mean((0, 2, 3)), atol=0.05)
    assert torch.allclose(s.std((0, 2, 3)), res.std((0, 2, 3)), rtol=0.05)


def test_collect_keeps_low_noise_residuals_and_corrupts_only_generated_context():
    torch.manual_seed(0)
    b, c, f, h, w = 2, 4, 5, 3, 3
    x0 = torch.randn(b, c, f, h, w)
    noise = torch.randn_like(x0)
    t = torch.tensor([[0.0, 0.0, 300.0, 300.0, 900.0], [0.0, 200.0, 200.0, 700.0, 700.0]])
    x_t = add_noise(x0, noise, t)
    err = torch.randn_like(x0) * 0.1
    v_hat = (noise - x0) - err / (t / 1000).clamp(min=1e-3)[:, None, :, None, None]  # so x0_hat = x0 + err
    eb = ErrorBuffer(capacity=64, max_sigma=0.5, p_inject=1.0)
    eb.collect(x_t, v_hat, x0, t)
    keep = (t > 0) & (t <= 500)
    assert len(eb) == int(keep.sum()) == 4
    expect = err.permute(0, 2, 1, 3, 4)[keep]
    assert torch.allclose(eb.data[:4], expect, atol=1e-5)

    z = torch.randn(b, c, f, h, w)
    out = eb.corrupt_context(z, t)
    changed = (out != z).flatten(3).any(-1).any(1)  # [B, F]
    ctx = (t == 0) & (torch.arange(f) > 0)
    assert torch.equal(changed, ctx)  # only clean context after the start image, never noisy frames
    d = (out - z).permute(0, 2, 1, 3, 4)[ctx]
    scale = d.flatten(1).norm(dim=1) / torch.stack([expect[i].norm() for i in range(4)]).max()
    assert (scale <= 1.0 + 1e-5).all()  # a held residual times a factor in [0, 1]
    assert torch.equal(ErrorBuffer(8).corrupt_context(z, t), z)  # empty: nothing added


def test_saved_buffer_loads_back_as_it_was(tmp_path):
    eb = ErrorBuffer(capacity=8)
    eb.add(torch.randn(11, 2, 3, 3))  # past capacity: the ring has wrapped
    eb.save(tmp_path / "eb.safetensors")
    back = ErrorBuffer(capacity=8)
    back.load(tmp_path / "eb.safetensors", "cpu")
    assert torch.equal(back.data, eb.data) and (len(back), back.pos) == (len(eb), eb.pos)
    back.add(torch.zeros(1, 2, 3, 3))  # and goes on overwriting the oldest, as the original would
    eb.add(torch.zeros(1, 2, 3, 3))
    assert torch.equal(back.data, eb.data)
    ErrorBuffer(capacity=8).load(tmp_path / "absent.safetensors", "cpu")  # nothing saved yet: stays empty
    try:
        ErrorBuffer(capacity=4).load(tmp_path / "eb.safetensors", "cpu")
        raise AssertionError("a buffer of another size loaded")
    except ValueError as e:
        assert "--error-buffer" in str(e)

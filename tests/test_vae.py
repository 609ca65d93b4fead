"""The causal 3D VAE: shapes, causality, streaming decode equal to whole decode."""

import pytest
import torch

from interworld.config import get_preset
from interworld.models.dit import count_params
from interworld.models.vae import CausalConv3d, CausalVAE


def _vae(name, **kw):
    cfg = get_preset(name).vae
    if kw:
        import dataclasses
        cfg = dataclasses.replace(cfg, **kw)
    torch.manual_seed(0)
    v = CausalVAE(cfg).eval()
    for m in v.modules():  # give zero-initialised projections weight, as a trained VAE has
        if m.__class__.__name__ == "FrameAttention":
            torch.nn.init.normal_(m.proj.weight, std=0.1)
    return v


def _video(cfg, latents=4, seed=0, size=4):
    g = torch.Generator().manual_seed(seed)
    t = 1 + cfg.temporal * (latents - 1)
    return torch.rand(1, 3, t, cfg.spatial * size, cfg.spatial * size, generator=g) * 2 - 1


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_shapes(name):
    v = _vae(name)
    x = _video(v.cfg, latents=3)
    z = v.encode(x)
    assert z.shape == (1, v.cfg.z_dim, 3, 4, 4)
    with torch.no_grad():
        assert v.decode(z).shape == x.shape


@pytest.mark.parametrize("name,splits", [("tiny", [1, 2, 1]), ("small", [1, 1, 2]), ("small", [2, 2])])
def test_streaming_decode_equals_whole_decode(name, splits):
    v = _vae(name, attn_mid=True)
    with torch.no_grad():
        z = torch.randn(1, v.cfg.z_dim, sum(splits), 3, 4)
        whole = v.decode(z)
        dec = v.stream_decoder()
        parts, i = [], 0
        for n in splits:
            parts.append(dec.decode(z[:, :, i:i + n]))
            i += n
    streamed = torch.cat(parts, 2)
    assert parts[0].shape[2] == 1 + v.cfg.temporal * (splits[0] - 1)  # latent 0 -> one frame
    assert streamed.shape == whole.shape
    assert (streamed - whole).abs().max() < 1e-5
    dec.reset()
    with torch.no_grad():
        assert (dec.decode(z) - whole).abs().max() < 1e-5  # after reset, a fresh stream


def test_causality():
    v = _vae("small")
    x = _video(v.cfg, latents=4)
    y = x.clone()
    y[:, :, -v.cfg.temporal:] = 0  # change only the frames of the last latent
    with torch.no_grad():
        zx, zy = v.encode(x), v.encode(y)
        assert torch.equal(zx[:, :, :3], zy[:, :, :3]) and not torch.allclose(zx[:, :, 3], zy[:, :, 3])
        z2 = zx.clone()
        z2[:, :, 3] += 1.0  # change only the last latent
        a, b = v.decode(zx), v.decode(z2)
    k = 1 + 2 * v.cfg.temporal  # frames of latents 0..2
    assert torch.equal(a[:, :, :k], b[:, :, :k]) and not torch.allclose(a[:, :, k:], b[:, :, k:])


def test_pruned_decoder():
    full, light = _vae("small"), _vae("small", dec_width_scale=0.5)
    assert count_params(light.decoder) < 0.5 * count_params(full.decoder)
    assert count_params(light.encoder) == count_params(full.encoder)
    z = torch.randn(1, light.cfg.z_dim, 2, 2, 3)
    with torch.no_grad():
        assert light.decode(z).shape == full.decode(z).shape


def test_latent_normalisation_buffers():
    v = _vae("tiny")
    v.latents_mean.copy_(torch.arange(v.cfg.z_dim, dtype=torch.float32))
    v.latents_std.copy_(torch.linspace(0.5, 2.0, v.cfg.z_dim))
    w = _vae("tiny")
    w.load_state_dict(v.state_dict())
    assert torch.equal(w.latents_std, v.latents_std)
    z = torch.randn(2, v.cfg.z_dim, 3, 4, 4)
    assert torch.allclose(w.denormalize(w.normalize(z)), z, atol=1e-6)


def test_full_size_vae_on_meta():
    with torch.device("meta"):
        v = CausalVAE(get_preset("mg3-5b").vae)
    assert v.cfg.spatial == 16 and v.cfg.temporal == 4 and v.cfg.z_dim == 48
    assert 3e8 < count_params(v) < 1.5e9
    assert v.encoder.conv1.in_channels == 12  # 2x2 patchify before the encoder


def test_kl_and_sampling():
    v = _vae("tiny")
    x = _video(v.cfg, latents=2)
    mu, logvar = v.encode_dist(x)
    assert v.kl(torch.zeros_like(mu), torch.zeros_like(logvar)) == 0
    g = torch.Generator().manual_seed(0)
    s = v.encode(x, sample=True, generator=g)
    assert s.shape == mu.shape and not torch.equal(s, mu)


@pytest.mark.parametrize("history", [0, 1, 3])
def test_decoding_after_a_history_gives_the_tail_of_the_whole_decode(history):
    # how long streams are validated and the decoder is fine-tuned: the history only sets the state
    from interworld.models.vae import decode_after, frames_after

    v = _vae("tiny")
    with torch.no_grad():
        z = v.encode(_video(v.cfg, latents=5))
        whole = v.decode(z)
        tail = decode_after(v, z, history)
    assert torch.allclose(tail, frames_after(whole, history, v.cfg.temporal), atol=1e-5)
    assert tail.shape[2] == whole.shape[2] - (1 + (history - 1) * v.cfg.temporal if history else 0)


def test_stream_latents_are_a_long_encoding_after_a_start_image():
    from interworld.train.world import stream_latents

    v = _vae("tiny")
    video = _video(v.cfg, latents=6)  # [1, 3, T, H, W] in [-1, 1]
    frames = ((video[0].permute(1, 2, 3, 0) + 1) * 127.5).round().byte()[None]  # [1, T, H, W, 3] uint8
    tr, lead = v.cfg.temporal, 2
    z, history = stream_latents(v, frames, lead)
    with torch.no_grad():
        seq = v.normalize(v.encode(frames.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1)))
        img = v.normalize(v.encode(frames[:, lead * tr:lead * tr + 1].permute(0, 4, 1, 2, 3).float().div(127.5).sub(1)))
    assert z.shape[2] == 6 - lead and history.shape[2] == lead + 1
    assert torch.allclose(z[:, :, 0], img[:, :, 0], atol=1e-6)  # the clip's first frame, alone
    assert torch.allclose(z[:, :, 1:], seq[:, :, lead + 1:], atol=1e-6)  # the rest: the long encoding
    assert torch.allclose(history, seq[:, :, :lead + 1], atol=1e-6)


@pytest.mark.parametrize("k", [3, 1, (3, 1, 1)])
def test_causal_conv_on_the_cpu_equals_conv3d_with_gradients(k):
    """On the CPU CausalConv3d runs as 2D convolutions of shifted frames (engine speed); its
    output and gradients must be nn.Conv3d's on the same padded input."""
    torch.manual_seed(0)
    conv = CausalConv3d(5, 7, k)
    x = torch.randn(2, 5, 4, 6, 9, requires_grad=True)
    y = conv(x)
    xr = x.detach().clone().requires_grad_(True)
    padded = torch.nn.functional.pad(torch.cat([xr.new_zeros(2, 5, conv.tpad, 6, 9), xr], 2), conv.spad + (0, 0))
    ref = torch.nn.functional.conv3d(padded, conv.weight, conv.bias)
    assert y.shape == ref.shape == (2, 7, 4, 6, 9)
    assert (y - ref).abs().max() < 1e-5
    g = torch.randn_like(ref)
    (y * g).sum().backward()
    gw, gb = conv.weight.grad.clone(), conv.bias.grad.clone()
    conv.weight.grad = conv.bias.grad = None
    (ref * g).sum().backward()
    assert (x.grad - xr.grad).abs().max() < 1e-4 and (gw - conv.weight.grad).abs().max() < 1e-4
    assert (gb - conv.bias.grad).abs().max() < 1e-4

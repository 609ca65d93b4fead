"""Flow matching schedule, loss and samplers, on problems with known answers."""

import pytest
import torch

from interworld.diffusion.flow import (add_noise, flow_matching_loss, sample_train_timesteps, shift_sigma,
                                       timesteps, x0_from_velocity)
from interworld.diffusion.samplers import SAMPLERS, sample


def test_official_three_step_schedule():
    ts = timesteps(3, shift=5.0)
    assert ts == pytest.approx([1000.0, 909.09, 714.29], abs=0.01)  # MG3 reports about 999, 908, 713
    many = timesteps(50, 5.0)
    assert all(a > b for a, b in zip(many, many[1:])) and 0 < many[-1] < 1000
    assert float(shift_sigma(torch.tensor(0.5), 1.0)) == 0.5


def test_add_noise_endpoints_and_per_frame_broadcast():
    x0, n = torch.randn(2, 3, 4, 5, 5), torch.randn(2, 3, 4, 5, 5)
    assert torch.equal(add_noise(x0, n, 0.0), x0)
    assert torch.allclose(add_noise(x0, n, 1000.0), n)
    t = torch.tensor([[0.0, 1000.0, 500.0, 0.0], [1000.0, 0.0, 0.0, 250.0]])
    xt = add_noise(x0, n, t)
    assert torch.equal(xt[0, :, 0], x0[0, :, 0]) and torch.allclose(xt[0, :, 1], n[0, :, 1])
    assert torch.allclose(xt[1, :, 3], 0.75 * x0[1, :, 3] + 0.25 * n[1, :, 3])


def test_loss_zero_at_exact_velocity_and_ignores_masked_frames():
    x0, n = torch.randn(2, 3, 4, 2, 2), torch.randn(2, 3, 4, 2, 2)
    v = n - x0
    assert flow_matching_loss(v, x0, n) == 0
    bad = v.clone()
    bad[:, :, 0] += 10.0  # wrong only on frame 0
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[:, 0] = False
    assert flow_matching_loss(bad, x0, n, mask) == 0
    assert flow_matching_loss(bad, x0, n) > 1


def test_train_timesteps_per_frame_and_shared():
    g = torch.Generator().manual_seed(0)
    t = sample_train_timesteps(64, 5, per_frame=True, generator=g)
    assert t.shape == (64, 5) and (t >= 1).all() and (t <= 1000).all()
    assert (t.std(dim=1) > 0).all()
    s = sample_train_timesteps(8, 5, per_frame=False, generator=g)
    assert (s == s[:, :1]).all()
    assert t.mean() > 500  # shift 5 favours high noise, as few-step sampling does


def _point_mass(target):
    def model(x, t):  # exact flow-matching velocity when the data is a single point
        return (x - target) / (t / 1000.0)
    return model


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_samplers_land_on_a_point_mass_exactly(name):
    target = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    for ts in (timesteps(3), timesteps(7, 3.0), [1000.0, 500.0]):
        out = sample(name, _point_mass(target), x.clone(), ts, generator=torch.Generator().manual_seed(0)) \
            if name == "x0" else sample(name, _point_mass(target), x.clone(), ts)
        assert torch.allclose(out, target, atol=1e-5)


def _gaussian(mu, s):
    def model(x, t):  # exact velocity for data N(mu, s^2): E[noise | x_t] - E[x0 | x_t]
        sg = t / 1000.0
        a = 1 - sg
        ex0 = mu + a * s * s / (a * a * s * s + sg * sg) * (x - a * mu)
        return (x - a * ex0) / sg - ex0
    return model


def test_unipc_is_higher_order_than_euler():
    mu, s = 0.7, 0.3
    x = torch.randn(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = mu + s * x  # the flow ODE maps noise to data by the linear OT map here
    for n in (8, 12):
        ts = timesteps(n, 1.0)
        e = (sample("euler", _gaussian(mu, s), x.clone(), ts) - exact).abs().mean()
        u = (sample("unipc", _gaussian(mu, s), x.clone(), ts) - exact).abs().mean()
        assert u < 0.5 * e, (n, float(u), float(e))
    fine = sample("unipc", _gaussian(mu, s), x.clone(), timesteps(40, 1.0))
    assert (fine - exact).abs().mean() < 2e-3


def test_x0_renoise_sampler_mean_spread_and_determinism():
    mu, s = -0.4, 0.5
    x = torch.randn(50000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = sample("x0", _gaussian(mu, s), x, timesteps(4), generator=torch.Generator().manual_seed(4))
    assert float(out.mean()) == pytest.approx(mu, abs=0.02)
    # with the exact MMSE x0 predictor each step returns E[x0 | x_t], whose spread is smaller
    # than the data's: the reason DMD distils a student instead of using the teacher's x0
    last = timesteps(4)[-1] / 1000
    a = 1 - last
    assert 0.0 < float(out.std()) < s * (a * a * s * s / (a * a * s * s + last * last)) ** 0.5 * 1.5
    again = sample("x0", _gaussian(mu, s), x, timesteps(4), generator=torch.Generator().manual_seed(4))
    assert torch.equal(out, again)


def test_callback_once_per_step():
    seen = []
    ts = timesteps(4)
    sample("unipc", _point_mass(torch.zeros(2)), torch.ones(2), ts, callback=lambda i, t, x, x0: seen.append((i, t)))
    assert seen == list(enumerate(ts))
    with pytest.raises(ValueError, match="unknown sampler"):
        sample("ddim", _point_mass(torch.zeros(2)), torch.ones(2), ts)


def test_x0_from_velocity_inverts_add_noise_per_frame():
    # with the true velocity noise - x0, every frame's x0 comes back at its own noise level
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(2, 3, 4, 5, 6, generator=g), torch.randn(2, 3, 4, 5, 6, generator=g)
    t = torch.tensor([[0.0, 250.0, 600.0, 1000.0], [10.0, 20.0, 30.0, 999.0]])
    assert torch.allclose(x0_from_velocity(add_noise(x0, noise, t), noise - x0, t), x0, atol=1e-5)

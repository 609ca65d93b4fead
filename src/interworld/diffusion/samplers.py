"""Few-step samplers as small pure functions (k-diffusion style).

Each takes `model(x, t) -> v` (the flow-matching velocity, t a timestep in [0, 1000]),
the starting latent x at ts[0], and an explicit descending list of timesteps; it
returns the clean sample at t = 0. `callback(i, t, x, x0)` runs after each step.
"""

from __future__ import annotations

import math

import torch

_EPS = 1e-7  # keeps log-SNR finite at sigma = 1 (pure noise) inside UniPC


def _sigma(t: float) -> float:
    return float(t) / 1000.0


def _x0(model, x, t):
    return x - _sigma(t) * model(x, t)


def sample_euler(model, x, ts, *, callback=None):
    """First-order flow ODE steps: x <- x + (sigma_next - sigma) v."""
    ts = [float(t) for t in ts]
    for i, t in enumerate(ts):
        v = model(x, t)
        x0 = x - _sigma(t) * v
        nxt = ts[i + 1] if i + 1 < len(ts) else 0.0
        x = x + (_sigma(nxt) - _sigma(t)) * v
        if callback:
            callback(i, t, x, x0)
    return x


def sample_x0_renoise(model, x, ts, *, generator=None, noise_fn=None, callback=None, exit_step=None):
    """The distilled few-step sampler (DMD / Self-Forcing): predict x0, re-noise it to the
    next timestep with fresh noise, repeat; the last step returns x0.

    exit_step: stop after that step and return its x0 (Self-Forcing's training rollout: a
    random exit trains every step). Only the returned step is computed with gradients."""
    ts = [float(t) for t in ts]
    last = len(ts) - 1 if exit_step is None else exit_step
    if not 0 <= last < len(ts):
        raise ValueError(f"exit_step {exit_step} is outside the {len(ts)} steps")
    grad = torch.is_grad_enabled()
    for i, t in enumerate(ts[: last + 1]):
        with torch.set_grad_enabled(grad and i == last):
            x0 = _x0(model, x, t)
        if i < last:
            if noise_fn is not None:
                n = noise_fn(x0.shape)
            else:
                n = torch.randn(x0.shape, generator=generator)
            s = _sigma(ts[i + 1])
            x = (1 - s) * x0 + s * n.to(x0)
        else:
            x = x0
        if callback:
            callback(i, t, x, x0)
    return x


def _lam(sigma: float) -> float:
    s = min(max(sigma, _EPS), 1 - _EPS)
    return math.log(1 - s) - math.log(s)


def _unipc_coeffs(hh: float, order: int) -> list[float]:
    """b_k of UniPC's bh2 variant: phi-function ratios divided by B(h) = expm1(hh)."""
    h_phi_k = math.expm1(hh) / hh - 1.0
    fact, b = 1, []
    bh = math.expm1(hh)
    for i in range(1, order + 1):
        b.append(h_phi_k * fact / bh)
        fact *= i + 1
        h_phi_k = h_phi_k / hh - 1.0 / fact
    return b


def _unipc_update(x, m0, prev: list[tuple[float, torch.Tensor]], s0: float, st: float, order: int,
                  m_t: torch.Tensor | None = None):
    """One UniP (m_t None) or UniC (m_t = x0 prediction at st) update from sigma s0 to st.

    prev: earlier (sigma, x0 prediction) pairs, most recent first, used for the higher orders.
    """
    if st == 0.0:  # the log-SNR is infinite at the data end: the update is the x0 prediction
        return m0 if m_t is None else m_t
    s0c, stc = min(max(s0, _EPS), 1 - _EPS), st
    l0, lt = _lam(s0), _lam(st)
    h = lt - l0
    hh = -h
    alpha_t = 1 - stc
    x_lin = (stc / s0c) * x - alpha_t * math.expm1(hh) * m0
    rks, d1s = [], []
    for sig, m in prev[: order - 1]:
        rk = (_lam(sig) - l0) / h
        rks.append(rk)
        d1s.append((m - m0) / rk)
    b = _unipc_coeffs(hh, order)
    bh = math.expm1(hh)
    if m_t is None:  # predictor
        if not d1s:
            return x_lin
        if len(d1s) == 1:
            rhos = [0.5]
        else:
            R = torch.tensor([[r ** i for r in rks] for i in range(len(rks))], dtype=torch.float64)
            rhos = torch.linalg.solve(R, torch.tensor(b[:-1], dtype=torch.float64)).tolist()
        res = sum(r * d for r, d in zip(rhos, d1s))
        return x_lin - alpha_t * bh * res
    # corrector: uses the new prediction m_t as one more point at rk = 1
    rks_c = rks + [1.0]
    if order == 1:
        rhos = [0.5]
    else:
        R = torch.tensor([[r ** i for r in rks_c] for i in range(len(rks_c))], dtype=torch.float64)
        rhos = torch.linalg.solve(R, torch.tensor(b, dtype=torch.float64)).tolist()
    res = sum(r * d for r, d in zip(rhos[:-1], d1s)) if d1s else 0.0
    return x_lin - alpha_t * bh * (res + rhos[-1] * (m_t - m0))


def sample_unipc(model, x, ts, *, order: int = 2, callback=None):
    """Multistep UniPC (Zhao et al. 2023), bh2 variant with data prediction, on flow sigmas
    (alpha = 1 - sigma). Lower orders at the start and at the final step, the final step
    landing on the x0 prediction; the corrector refines each sample once its model output
    is known, so it costs no extra model call."""
    sig = [_sigma(t) for t in ts] + [0.0]
    hist: list[tuple[float, torch.Tensor]] = []  # (sigma, x0 prediction), most recent first
    last_x, last_order = None, 1
    n = len(ts)
    for i in range(n):
        m = _x0(model, x, ts[i])
        if last_x is not None:  # UniC: correct the sample we are at with its own prediction
            x = _unipc_update(last_x, hist[0][1], hist[1:], hist[0][0], sig[i], last_order, m_t=m)
        hist.insert(0, (sig[i], m))
        hist = hist[:order]
        last_order = min(order, n - i, len(hist))
        last_x = x
        x = _unipc_update(x, m, hist[1:], sig[i], sig[i + 1], last_order)
        if callback:
            callback(i, ts[i], x, m)
    return x


SAMPLERS = {"euler": sample_euler, "unipc": sample_unipc, "x0": sample_x0_renoise}


def sample(name: str, model, x, ts, **kw):
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    return SAMPLERS[name](model, x, ts, **kw)

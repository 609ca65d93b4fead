"""scripts/warp_probe.py (docs/TRAINING.md, run 32): the flow net starts as repeat-last, and the
warp moves pixels where the flow says."""

import importlib.util
from pathlib import Path

import numpy as np
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "warp_probe.py"


def _probe():
    spec = importlib.util.spec_from_file_location("warp_probe", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_an_untrained_net_repeats_the_last_frame_and_a_flow_moves_it():
    probe = _probe()
    rng = np.random.default_rng(0)
    last = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    net = probe.FlowNet(actions=2 * 8, ahead=2)
    out = probe.predict(net, last, np.ones(16, np.float32))
    assert out.shape == (2, 16, 24, 3) and np.array_equal(out[0], last) and np.array_equal(out[1], last)
    flow = torch.zeros(1, 2, 2, 16, 24)
    flow[:, 0, 0] = 1.0  # the first frame reads one pixel to the right: the picture moves left
    flow[:, 1, 1] = -2.0  # the second reads two pixels up: the picture moves down
    moved = (probe.warp(probe.to_tensor(last[None]), flow)[0].movedim(1, -1) * 255).round().numpy()
    assert np.abs(moved[0, :, :-1] - last[:, 1:]).max() < 1e-3
    assert np.abs(moved[1, 2:] - last[:-2]).max() < 1e-3
    loss = (probe.warp(probe.to_tensor(last[None]), flow.requires_grad_()) - 0.5).abs().mean()
    loss.backward()
    assert flow.grad.abs().sum() > 0  # the flow learns through the warp

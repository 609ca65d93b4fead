"""scripts/turn_diag.py: the estimator compares the last real context frame with the last predicted
frame, and the engine's turn is taken between the same two frames."""

import importlib.util
from pathlib import Path

import torch

from interworld.config import get_preset
from interworld.engine.world import World
from interworld.train.fit import lead_clip_frames

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "turn_diag.py"


class Clips:
    """Validation clips whose every pixel of frame i is i, and whose yaw grows 1.5 degrees a frame."""

    def __init__(self, n_frames, size):
        self.n, self.size = n_frames, size

    def fixed(self, b, seed):
        idx = torch.arange(self.n)
        frames = idx.view(1, -1, 1, 1, 1).expand(b, -1, *self.size, 3).to(torch.uint8).contiguous()
        pose = torch.zeros(b, self.n, 5)
        pose[..., 3] = 1.5 * idx
        return {"frames": frames, "keys": torch.zeros(b, self.n, 6), "mouse": torch.zeros(b, self.n, 2), "pose": pose}


def test_turns_pairs_the_last_context_frame_with_the_last_predicted_one():
    spec = importlib.util.spec_from_file_location("turn_diag", SCRIPT)
    diag = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diag)
    cfg = get_preset("tiny").replace(scheme="causal")
    world = World.from_config(cfg)
    tr, context = cfg.vae.temporal, 2
    clips = Clips(lead_clip_frames(cfg, context), (cfg.height, cfg.width))

    def frame_index_change(a, b):  # a "pose estimator" that reads the frame index off the pixels
        d = b.float().mean((1, 2, 3)) - a.float().mean((1, 2, 3))
        return torch.stack([d, torch.zeros_like(d), torch.zeros_like(d)], 1)

    r = diag.turns(world, frame_index_change, clips, context, batches=2, size=3)
    chunk = cfg.chunk_latents * tr  # frames from the last real one to the last predicted one
    assert r["true"].shape == r["real"].shape == r["gen"].shape == (6,)
    assert torch.allclose(r["real"], torch.full((6,), float(chunk)))
    assert torch.allclose(r["true"], torch.full((6,), 1.5 * chunk))
    assert torch.isfinite(r["gen"]).all()


def test_paired_gain_is_the_difference_on_all_windows():
    """A gain is a ratio: with one large turn the bootstrap resamples' mean strays from the
    difference on all windows (these windows: -0.028 against +0.000), which is what is reported."""
    spec = importlib.util.spec_from_file_location("turn_diag", SCRIPT)
    diag = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diag)
    true = torch.tensor([-9.85, 11.36, 14.32, -7.37, 66.01, -15.83, -25.71, -8.39])
    mine = torch.tensor([-14.64, -8.27, 15.58, 5.25, 23.22, -8.17, 0.31, -10.46])
    theirs = torch.tensor([-11.91, -7.59, 12.50, 8.19, 26.82, -9.80, -0.32, -6.50])
    d, se = diag.paired_gain(mine, theirs, true)
    assert abs(d - (diag.yaw_gain(mine, true) - diag.yaw_gain(theirs, true))) < 1e-9 and d < -0.02
    assert 0 < se < 1
    assert diag.paired_gain(mine, mine, true) == (0.0, 0.0)

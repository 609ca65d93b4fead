"""Drift: how far a long rollout's look wanders from where it began.

Compares the last `window` frames with the first `window` frames of one video by two
statistics that blur and colour collapse both move: sharpness (mean variance of the
Laplacian of luma) and colour (per-channel mean and standard deviation). The score is

    |log(sharp_last / sharp_first)| + (|d mean| + |d std|).sum() / 255

so 0 means the end looks like the beginning, log 2 is a halving of sharpness, and a
uniform shift of every channel by 25 levels adds 0.3.
"""

from __future__ import annotations

import numpy as np

from interworld.eval.metrics import block_mean


def sharpness(frames: np.ndarray, factor: int = 1) -> float:
    """Mean over frames of the variance of the 4-neighbour Laplacian of luma. factor > 1: of luma
    averaged over factor x factor blocks first, which keeps the edges of walls, doors and floors
    and drops the pixel texture that dominates at full size (a haze and a rollout that draws
    rooms score alike there; docs/TRAINING.md, run 32)."""
    y = frames.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if factor > 1:
        y = block_mean(y, factor)
    lap = -4 * y[:, 1:-1, 1:-1] + y[:, :-2, 1:-1] + y[:, 2:, 1:-1] + y[:, 1:-1, :-2] + y[:, 1:-1, 2:]
    return float(lap.reshape(len(frames), -1).var(1).mean())


def colour_stats(frames: np.ndarray) -> np.ndarray:
    f = frames.reshape(-1, 3).astype(np.float64)
    return np.concatenate([f.mean(0), f.std(0)])


def drift_score(frames: np.ndarray, window: int) -> dict[str, float]:
    """frames [T, H, W, 3]; window: frames at each end (10 s of video in `interworld eval`)."""
    if len(frames) < 2 * window:
        raise ValueError(f"drift needs at least {2 * window} frames, got {len(frames)}")
    a, b = frames[:window], frames[-window:]
    sa, sb = sharpness(a), sharpness(b)
    sharp = abs(np.log((sb + 1e-6) / (sa + 1e-6)))
    colour = float(np.abs(colour_stats(b) - colour_stats(a)).sum() / 255.0)
    return {"drift": float(sharp + colour), "sharpness_first": sa, "sharpness_last": sb,
            "sharpness_log_ratio": float(np.log((sb + 1e-6) / (sa + 1e-6))), "colour_shift": colour}

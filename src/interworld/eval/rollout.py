"""Run a world model on an action script from a start frame, as a player would."""

from __future__ import annotations

import time

import numpy as np
import torch

from interworld.engine.world import World


def rollout(world: World, first: np.ndarray, keys: torch.Tensor, mouse: torch.Tensor, prompt: str = "",
            seed: int = 0, pose=None) -> dict:
    """frames [T+1, H, W, 3]: the decoded start frame, then one per scripted frame; and the
    seconds each chunk took."""
    frames = [world.reset(first, prompt, seed=seed, pose=pose)]
    T, done, times = keys.shape[0], 0, []
    while done < T:
        n = world.frames_per_step
        t0 = time.perf_counter()
        out = world.step((keys[done:done + n], mouse[done:done + n]))
        times.append(time.perf_counter() - t0)
        frames.append(out)
        done += out.shape[0]
    return {"frames": np.concatenate(frames)[: T + 1], "chunk_s": times}

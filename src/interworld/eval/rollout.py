"""Run a world model on an action script from a start frame, as a player would."""

from __future__ import annotations

import time

import numpy as np
import torch

from interworld.engine import actions as act
from interworld.engine.accel import attention_backend
from interworld.engine.world import World, to_uint8


def rollout(world: World, first: np.ndarray, keys: torch.Tensor, mouse: torch.Tensor, prompt: str = "",
            seed: int = 0, pose=None, camera=None) -> dict:
    """frames [T+1, H, W, 3]: the decoded start frame, then one per scripted frame; the seconds
    each chunk took; and poses [latents, 5], the camera poses the model was given. A batch of one
    of `rollouts`: the frames `World.reset` and `step` give a player (tests/test_eval.py)."""
    return rollouts(world, [first], [keys], [mouse], prompt, seed, poses=None if pose is None else [pose],
                    camera=None if camera is None else [camera])[0]


@torch.no_grad()
def rollouts(world: World, firsts: list[np.ndarray], keys: list[torch.Tensor], mouse: list[torch.Tensor],
             prompt: str = "", seed: int | list[int] = 0, poses=None, camera=None) -> list[dict]:
    """Several rollouts at once, one batch item per start frame, each under its own actions (the
    generator's per-item streams). On a GPU, where the small model is bound by kernel launches,
    a batch costs little more than one rollout. keys/mouse: one [T, *] per item, all of one T;
    poses: one start pose [5] per item (default: the origin).
    camera: one [T+1, 5] per item, the camera's own poses (the engine's: the start frame's, then
    one per scripted frame), given to the model in place of poses integrated from the actions
    (which is all a player has); the start pose is then its first.
    Returns `rollout`'s dict per item; chunk_s are the batch's. seed: one per item, and each
    item draws its own noise, so its rollout is the one it has alone with that seed; or one int,
    a draw for the whole batch, where an item's noise depends on the batch it is in."""
    if len({k.shape[0] for k in [*keys, *mouse]}) != 1 or not len(firsts) == len(keys) == len(mouse):
        raise ValueError("rollouts need one start frame and one action script of the same length per item")
    if camera is not None:
        camera = torch.stack([torch.as_tensor(np.asarray(c), dtype=torch.float32) for c in camera])
    starts = [world.encode_start(f, prompt) for f in firsts]
    z0, ctx = torch.cat([z for z, _ in starts]), starts[0][1]  # one prompt: every item's text states are the same
    if camera is not None:  # the camera's own start pose
        pose = camera[:, 0]
    else:
        pose = None if poses is None else torch.stack([torch.as_tensor(p, dtype=torch.float32) for p in poses])
    world.begin(z0, ctx.expand(len(firsts), -1, -1), seed=seed, pose=pose, per_item=True)
    decoder = world.vae.stream_decoder()

    def uint8(video):
        return [to_uint8(video[i:i + 1]) for i in range(video.shape[0])]

    frames = [uint8(decoder.decode(world.vae.denormalize(z0.float())))]
    T, done, times = keys[0].shape[0], 0, []
    while done < T:
        n = world.frames_per_step
        fitted = [act.fit(k[done:done + n], m[done:done + n], n) for k, m in zip(keys, mouse)]
        cam = None
        if camera is not None:  # past the script's end (act.fit pads the last chunk) the camera stays put
            cam = camera[:, done + 1:done + 1 + n]
            cam = torch.cat([cam, cam[:, -1:].expand(-1, n - cam.shape[1], -1)], 1)
        t0 = time.perf_counter()
        with attention_backend(world.attention):
            z = world.gen.next_chunk(torch.stack([k for k, _ in fitted]), torch.stack([m for _, m in fitted]), cam)
            frames.append(uint8(decoder.decode(world.vae.denormalize(z.float()))))
        times.append(time.perf_counter() - t0)
        done += n
    return [{"frames": np.concatenate([f[i] for f in frames])[: T + 1], "chunk_s": times,
             "poses": world.gen.poses[i].clone()} for i in range(len(firsts))]

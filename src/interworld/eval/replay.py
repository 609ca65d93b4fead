"""Ground truth from the real engine: replay an action script in ViZDoom.

The player first walks a seeded exploring policy for `warmup` frames (so each case starts
somewhere other than the spawn point, the same place for the same seed), then the script's
keys and mouse deltas are played frame by frame, exactly as the recorder plays them.
"""

from __future__ import annotations

import numpy as np
import torch

from interworld.config import KEYS
from interworld.data.policy import ExplorerPolicy
from interworld.data.vizdoom_rec import _frame, engine_pose, make_game, start_episode, to_buttons


class EpisodeEnded(RuntimeError):
    """The episode ended before the replay did (the player is invulnerable, so this is rare):
    try another seed."""


def replay(map_id: str, keys: torch.Tensor | None, mouse: torch.Tensor | None, *, seed: int = 0,
           warmup: int = 60, height: int = 128, width: int = 160, skip: int = 2,
           policy_frames: int = 0, mouse_rest: float = 0.0) -> dict[str, np.ndarray]:
    """frames [T+1, H, W, 3] uint8 (the start frame, then one per scripted frame), pose [T+1, 5],
    and the keys [T, 6] / mouse [T, 2] played. With `keys` None, the seeded exploring policy
    plays `policy_frames` more frames after the warm-up instead of a script; mouse_rest: its
    share of spans with the mouse at rest (data/policy.py)."""
    game, _ = make_game(map_id, height, width, seed=seed)
    size = (height, width)
    policy, moved = ExplorerPolicy(seed=seed, mouse_rest=mouse_rest), None

    def policy_step():
        nonlocal moved
        prev = engine_pose(game)
        k, dx, dy = policy.act(moved)
        game.make_action(to_buttons(k, dx, dy, skip), skip)
        if game.is_episode_finished():
            raise EpisodeEnded(f"the episode on {map_id} ended during the replay (seed {seed})")
        moved = float(np.hypot(*(engine_pose(game)[:2] - prev[:2])))
        return k, dx, dy

    try:
        start_episode(game)
        # invulnerable: minutes-long replays (--long) cross damaging floors, where a mortal
        # player dies and ends the episode; with the HUD off the frames look the same
        game.send_game_command("god")
        for _ in range(warmup):
            policy_step()
        frames, poses, played = [_frame(game, size)], [engine_pose(game)], []
        steps = range(policy_frames) if keys is None else zip(keys.tolist(), mouse.tolist())
        for item in steps:
            if keys is None:
                pressed, dx, dy = policy_step()
            else:
                hot, (dx, dy) = item
                pressed = [i for i, v in enumerate(hot) if v > 0.5]
                game.make_action(to_buttons(pressed, dx, dy, skip), skip)
            if game.is_episode_finished():
                raise EpisodeEnded(f"the episode on {map_id} ended during the replay (seed {seed})")
            frames.append(_frame(game, size))
            poses.append(engine_pose(game))
            played.append(([1.0 if i in pressed else 0.0 for i in range(len(KEYS))], [dx, dy]))
        return {"frames": np.stack(frames), "pose": np.stack(poses),
                "keys": torch.tensor([k for k, _ in played]).reshape(-1, len(KEYS)),
                "mouse": torch.tensor([m for _, m in played]).reshape(-1, 2)}
    finally:
        game.close()

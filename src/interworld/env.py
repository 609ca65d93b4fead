"""`WorldEnv`: the world model as a gymnasium environment.

    from interworld.env import WorldEnv
    env = WorldEnv(preset="tiny", random_init=True, image="examples/start.png")
    obs, info = env.reset(seed=0)                       # the start frame [H, W, 3]
    obs, reward, terminated, truncated, info = env.step({"keys": ["w"], "mouse": [2.0, 0.0]})
    info["frames"]                                      # every frame of the chunk [T, H, W, 3]
    env.render()                                        # the newest frame

It steps through the same streaming core as the web app (`interworld.serve.stream.Stream`).
gymnasium is optional: without it WorldEnv is a plain class with the same reset / step /
render API (and no `observation_space` / `action_space`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interworld.config import KEYS
from interworld.engine.actions import MAX_MOUSE, ActionError
from interworld.serve.stream import Stream, default_examples_dir

try:
    import gymnasium as gym
    from gymnasium import spaces
except ImportError:  # the plain-class fallback below
    gym = spaces = None


class WorldEnv(gym.Env if gym is not None else object):
    """An environment whose dynamics are the world model.

    Action: {"keys": ..., "mouse": [dx, dy]}, held on every frame of the next chunk. keys is
    a multi-hot of 6 (w s a d space attack, the `action_space` sample form) or a list of key
    names; mouse is degrees per frame (positive dx turns right, positive dy looks down, at
    most 90). None stands still.

    Observation: the newest frame, uint8 [H, W, 3]; `info["frames"]` holds all the frames a
    step made, [T, H, W, 3] (T = the model's frames per chunk). Reward is 0 and episodes never
    terminate; `max_steps` truncates them.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, world=None, *, image=None, prompt: str = "", checkpoint: str | None = None,
                 preset: str = "small", random_init: bool = False, device: str = "cpu", seed: int = 0,
                 render_mode: str | None = "rgb_array", max_steps: int | None = None):
        if world is None:
            from interworld.engine.world import World

            world = World.from_pretrained(checkpoint or preset, device=device, random_init=random_init, seed=seed)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        if max_steps is not None and max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.stream = Stream(world)
        self.render_mode = render_mode
        self.max_steps = max_steps
        self.prompt = prompt
        if image is None:
            ex = default_examples_dir()
            image = ex / "start.png" if ex is not None and (ex / "start.png").is_file() else None
        self.image = image
        self.metadata = {**self.metadata, "render_fps": self.stream.fps}
        self._rng = np.random.default_rng(seed)
        self._last: np.ndarray | None = None
        self._steps = 0
        cfg = self.stream.cfg
        if spaces is not None:
            self.observation_space = spaces.Box(0, 255, (cfg.height, cfg.width, 3), np.uint8)
            self.action_space = spaces.Dict({
                "keys": spaces.MultiBinary(len(KEYS)),
                "mouse": spaces.Box(-MAX_MOUSE, MAX_MOUSE, (2,), np.float32),
            })

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a stream. options: {"image": path / PIL / array, "prompt": str}. A seed fixes
        the generator's noise; without one the next seed comes from the env's own RNG."""
        if gym is not None:
            super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"image", "prompt"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)} (use image, prompt)")
        image = options.get("image", self.image)
        if image is None:
            raise ValueError("WorldEnv needs a start image: WorldEnv(image=...) or reset(options={'image': ...})")
        if isinstance(image, Path):
            image = str(image)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            noise_seed = int(seed)
        else:
            noise_seed = int(self._rng.integers(2**31))
        first = self.stream.reset(image, options.get("prompt", self.prompt), noise_seed)
        self._last, self._steps = first[-1], 0
        return first[-1].copy(), {"frames": first, "seed": noise_seed}

    def step(self, action):
        if not self.stream.started:
            raise RuntimeError("call reset() before step()")
        keys, mouse = self._action(action)
        frames = self.stream.step(keys, mouse)
        self._last = frames[-1]
        self._steps += 1
        truncated = self.max_steps is not None and self._steps >= self.max_steps
        # timings stay off info (it must be deterministic): see self.stream.chunk_s
        return frames[-1].copy(), 0.0, False, truncated, {"frames": frames}

    def render(self):
        """The newest frame [H, W, 3] uint8 (render_mode "rgb_array"), or None before reset / without a mode."""
        if self.render_mode is None or self._last is None:
            return None
        return self._last.copy()

    def close(self):
        self._last = None

    @staticmethod
    def _action(action):
        if action is None:
            return [], (0.0, 0.0)
        if not isinstance(action, dict):
            raise ActionError(f"an action is {{'keys': ..., 'mouse': [dx, dy]}} or None, got {type(action).__name__}")
        unknown = set(action) - {"keys", "mouse"}
        if unknown:
            raise ActionError(f"unknown action fields {sorted(unknown)} (use keys, mouse)")
        return action.get("keys", []), action.get("mouse", (0.0, 0.0))


if gym is not None and "interworld/World-v0" not in gym.registry:
    # gymnasium.make("interworld/World-v0", preset="tiny", random_init=True, image=...)
    gym.register("interworld/World-v0", entry_point="interworld.env:WorldEnv")

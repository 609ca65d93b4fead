"""The fixed action scripts every model is judged on (per video frame: keys, mouse)."""

from __future__ import annotations

import torch

from interworld.config import KEYS

W = KEYS.index("w")


def _script(parts) -> tuple[torch.Tensor, torch.Tensor]:
    keys, mouse = [], []
    for n, ks, dx, dy in parts:
        hot = [0.0] * len(KEYS)
        for k in ks:
            hot[KEYS.index(k)] = 1.0
        keys += [hot] * n
        mouse += [[dx, dy]] * n
    return torch.tensor(keys), torch.tensor(mouse)


def script(name: str, frames: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """keys [T, 6], mouse [T, 2]. Turns run at 3 degrees per frame (about 50 deg/s at 17.5 fps)."""
    half = frames // 2
    table = {
        "turn_left": [(frames, [], -3.0, 0.0)],
        "turn_right": [(frames, [], 3.0, 0.0)],
        "forward": [(frames, ["w"], 0.0, 0.0)],
        "stand": [(frames, [], 0.0, 0.0)],
        # revisits: a full circle in place, and walk out, turn around, walk back, turn around
        "turn_360": [(120, [], 3.0, 0.0)],
        "out_and_back": [(half, ["w"], 0.0, 0.0), (60, [], 3.0, 0.0), (half, ["w"], 0.0, 0.0), (60, [], 3.0, 0.0)],
    }
    if name not in table:
        raise ValueError(f"unknown script {name!r}; scripts: {', '.join(table)}")
    return _script(table[name])


SCRIPTS = ("turn_left", "turn_right", "forward", "stand", "turn_360", "out_and_back")

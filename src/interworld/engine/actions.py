"""The action format shared by scripts, the web page and the Python API.

Per video frame: the set of keys held and the mouse motion (dx, dy) in degrees
(positive dx turns right, positive dy looks down). A script is JSON:

    {"actions": [
        {"keys": ["w"], "mouse": [0, 0], "frames": 40},
        {"keys": [], "mouse": [2.5, 0], "frames": 36},
        {"keys": ["w", "a"], "frames": 8}
    ]}

Each entry is held for `frames` video frames (default 1); `mouse` defaults to [0, 0]
and `keys` to none. A bare list of entries is accepted too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from interworld.config import KEYS

ALIASES = {"up": "w", "down": "s", "left": "a", "right": "d", "jump": "space", " ": "space",
           "fire": "attack", "mouse1": "attack", "click": "attack"}
MAX_MOUSE = 90.0  # degrees per frame; anything larger is a broken input, not a fast flick


class ActionError(ValueError):
    pass


def key_index(name: str) -> int:
    k = ALIASES.get(name.lower(), name.lower()) if isinstance(name, str) else None
    if k not in KEYS:
        raise ActionError(f"unknown key {name!r}; the keys are {', '.join(KEYS)} (aliases: {', '.join(ALIASES)})")
    return KEYS.index(k)


def encode_frame(keys, mouse=(0.0, 0.0)) -> tuple[list[float], list[float]]:
    if isinstance(keys, str):
        keys = [keys]
    hot = [0.0] * len(KEYS)
    for k in keys or []:
        hot[key_index(k)] = 1.0
    if not isinstance(mouse, (list, tuple)) or len(mouse) != 2:
        raise ActionError(f"mouse must be [dx, dy], got {mouse!r}")
    try:
        dx, dy = float(mouse[0]), float(mouse[1])
    except (TypeError, ValueError):
        raise ActionError(f"mouse must be two numbers, got {mouse!r}") from None
    if not (math.isfinite(dx) and math.isfinite(dy)) or abs(dx) > MAX_MOUSE or abs(dy) > MAX_MOUSE:
        raise ActionError(f"mouse delta {mouse!r} is out of range (at most {MAX_MOUSE} degrees per frame)")
    return hot, [dx, dy]


def parse_entries(entries) -> tuple[torch.Tensor, torch.Tensor]:
    """List of {"keys", "mouse", "frames"} entries -> keys [T, 6], mouse [T, 2]."""
    if isinstance(entries, dict):
        if "actions" not in entries:
            raise ActionError("an action script is a list of entries or {\"actions\": [...]}")
        entries = entries["actions"]
    if not isinstance(entries, list) or not entries:
        raise ActionError("the action script has no entries")
    ks, ms = [], []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise ActionError(f"entry {i} is not an object: {e!r}")
        unknown = set(e) - {"keys", "mouse", "frames"}
        if unknown:
            raise ActionError(f"entry {i} has unknown fields {sorted(unknown)} (use keys, mouse, frames)")
        n = e.get("frames", 1)
        if not isinstance(n, int) or n < 1:
            raise ActionError(f"entry {i}: frames must be a positive integer, got {n!r}")
        try:
            hot, m = encode_frame(e.get("keys", []), e.get("mouse", [0.0, 0.0]))
        except ActionError as err:
            raise ActionError(f"entry {i}: {err}") from None
        ks += [hot] * n
        ms += [m] * n
    return torch.tensor(ks), torch.tensor(ms)


def load_script(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise ActionError(f"action script {str(p)!r} does not exist")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ActionError(f"action script {str(p)!r} is not valid JSON: {e.msg} at line {e.lineno}") from None
    return parse_entries(data)


def fit(keys: torch.Tensor, mouse: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly n frames: hold the last keys (with no further mouse motion) if short."""
    if keys.shape[0] >= n:
        return keys[:n], mouse[:n]
    if keys.shape[0] == 0:
        return torch.zeros(n, len(KEYS)), torch.zeros(n, 2)
    pad = n - keys.shape[0]
    return torch.cat([keys, keys[-1:].expand(pad, -1)]), torch.cat([mouse, torch.zeros(pad, 2)])

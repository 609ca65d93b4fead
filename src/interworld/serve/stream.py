"""The streaming core shared by the web app and the gymnasium env.

One `Stream` wraps one `World` (one stream's generator state) and turns the action of a
chunk, the keys held and the mouse motion per frame, into the next frames. The web
session and `interworld.env.WorldEnv` both step through it, so they validate and apply
actions the same way.
"""

from __future__ import annotations

import base64
import binascii
import io
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from interworld.config import KEYS
from interworld.engine import actions as act

MAX_IMAGE_PIXELS = 4096 * 4096  # a start image larger than this is refused before it is decoded
IMAGE_FORMATS = {"jpeg": "image/jpeg", "webp": "image/webp"}


def hot_keys(keys) -> list[float]:
    """Key names (aliases allowed) or a multi-hot of len(KEYS) -> multi-hot floats; ActionError if bad."""
    if isinstance(keys, str):
        keys = [keys]
    if keys is None:
        return [0.0] * len(KEYS)
    if isinstance(keys, (np.ndarray, torch.Tensor)) or (
            isinstance(keys, (list, tuple)) and len(keys) == len(KEYS)
            and all(isinstance(k, (int, float, np.integer, np.floating)) for k in keys)):
        v = np.asarray(keys, dtype=np.float64).reshape(-1)
        if v.shape != (len(KEYS),) or not np.isin(v, (0.0, 1.0)).all():
            raise act.ActionError(f"a key vector must be {len(KEYS)} zeros and ones ({', '.join(KEYS)}), got {keys!r}")
        return [float(x) for x in v]
    if not isinstance(keys, (list, tuple, set, frozenset)):
        raise act.ActionError(f"keys must be a list of key names, got {keys!r}")
    hot = [0.0] * len(KEYS)
    for k in keys:
        hot[act.key_index(k)] = 1.0
    return hot


def mouse_delta(mouse) -> tuple[float, float]:
    """[dx, dy] in degrees -> two finite floats within MAX_MOUSE; ActionError otherwise."""
    if isinstance(mouse, (np.ndarray, torch.Tensor)):
        mouse = [float(x) for x in np.asarray(mouse, dtype=np.float64).reshape(-1)]
    _, (dx, dy) = act.encode_frame([], mouse)
    return dx, dy


def decode_upload(data: str) -> Image.Image:
    """A start image sent as base64 (optionally a data: URL) -> PIL image; ValueError if it is not one."""
    if not isinstance(data, str) or not data:
        raise ValueError("upload must be a base64 string of a PNG, JPEG or WebP image")
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("upload is not valid base64") from None
    try:
        img = Image.open(io.BytesIO(raw))  # reads only the header: the size is checked before decoding
    except Exception:
        raise ValueError("upload is not an image PIL can read (use PNG, JPEG or WebP)") from None
    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS or w < 1 or h < 1:
        raise ValueError(f"upload is {w}x{h} pixels; the limit is {MAX_IMAGE_PIXELS} pixels (downscale it first)")
    try:
        img.load()
    except Exception:
        raise ValueError("upload is a truncated or corrupt image") from None
    return img.convert("RGB")


def default_examples_dir() -> Path | None:
    """The repository's examples/ folder (a source checkout), else ./examples, else None."""
    import interworld

    for p in (Path(interworld.__file__).resolve().parents[2] / "examples", Path.cwd() / "examples"):
        if p.is_dir():
            return p
    return None


def encode_image(frame: np.ndarray, fmt: str = "jpeg", quality: int = 85) -> bytes:
    """One uint8 frame [H, W, 3] -> JPEG or WebP bytes."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format=fmt.upper(), quality=quality)
    return buf.getvalue()


class Stream:
    """One World's stream: reset from an image and prompt, then one chunk per action."""

    def __init__(self, world):
        self.world = world
        self.frames = 0  # frames produced since the last reset, the first one included
        self.chunk_s: float | None = None  # smoothed seconds per chunk, for pacing and the page's stats

    @property
    def cfg(self):
        return self.world.cfg

    @property
    def fps(self) -> float:
        return float(self.world.cfg.fps)

    @property
    def started(self) -> bool:
        return self.world.gen is not None

    @property
    def frames_per_step(self) -> int:
        return self.world.frames_per_step

    def reset(self, image, prompt: str = "", seed: int = 0) -> np.ndarray:
        """First frame [1, H, W, 3] uint8. Raises ValueError / FileNotFoundError on a bad image."""
        first = self.world.reset(image, prompt, seed=seed)
        self.frames = 1
        return first

    def step(self, keys=None, mouse=(0.0, 0.0)) -> np.ndarray:
        """Hold `keys` and turn by `mouse` [dx, dy] degrees on every frame of the next chunk.

        `keys` are names (w s a d space attack, or aliases) or a multi-hot of len(KEYS).
        Returns the chunk's frames [T, H, W, 3] uint8."""
        hot = hot_keys(keys)
        dx, dy = mouse_delta(mouse)
        n = self.frames_per_step
        t0 = time.perf_counter()
        frames = self.world.step((torch.tensor([hot] * n), torch.tensor([[dx, dy]] * n)))
        dt = time.perf_counter() - t0
        # smoothed so one slow chunk (a first segment, a GC pause) does not swing the pacing
        self.chunk_s = dt if self.chunk_s is None else 0.7 * self.chunk_s + 0.3 * dt
        self.frames += frames.shape[0]
        return frames

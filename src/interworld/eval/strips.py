"""PNG strips: ground truth above, generated below, at chosen frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def strip(rows: dict[str, np.ndarray], every: int = 4, pad: int = 2) -> Image.Image:
    """rows: label -> frames [T, H, W, 3] (same T); one column per `every` frames, labelled."""
    items = list(rows.items())
    T, H, W = items[0][1].shape[:3]
    cols = list(range(0, T, every))
    label_w = 70
    img = Image.new("RGB", (label_w + len(cols) * (W + pad), 14 + len(items) * (H + pad)), (20, 20, 20))
    d = ImageDraw.Draw(img)
    for c, t in enumerate(cols):
        d.text((label_w + c * (W + pad) + 2, 1), f"t={t}", fill=(200, 200, 200))
    for r, (label, frames) in enumerate(items):
        y = 14 + r * (H + pad)
        d.text((2, y + H // 2 - 6), label, fill=(230, 230, 230))
        for c, t in enumerate(cols):
            img.paste(Image.fromarray(frames[t]), (label_w + c * (W + pad), y))
    return img


def save_strip(path: str | Path, rows: dict[str, np.ndarray], every: int = 4) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    strip(rows, every).save(tmp)
    tmp.replace(path)
    return path

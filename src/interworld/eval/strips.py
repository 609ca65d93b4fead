"""PNG strips: ground truth above, generated below, at chosen frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def strip(rows: dict[str, np.ndarray], every: int = 4, pad: int = 2, labels: list[str] | None = None) -> Image.Image:
    """rows: label -> frames [T, H, W, 3] (same T); one column per `every` frames, labelled with
    the frame index or with `labels` (one per column)."""
    items = list(rows.items())
    T, H, W = items[0][1].shape[:3]
    cols = list(range(0, T, every))
    labels = labels or [f"t={t}" for t in cols]
    label_w = 70
    img = Image.new("RGB", (label_w + len(cols) * (W + pad), 14 + len(items) * (H + pad)), (20, 20, 20))
    d = ImageDraw.Draw(img)
    for c, t in enumerate(cols):
        d.text((label_w + c * (W + pad) + 2, 1), labels[c], fill=(200, 200, 200))
    for r, (label, frames) in enumerate(items):
        y = 14 + r * (H + pad)
        d.text((2, y + H // 2 - 6), label, fill=(230, 230, 230))
        for c, t in enumerate(cols):
            img.paste(Image.fromarray(frames[t]), (label_w + c * (W + pad), y))
    return img


def save_strip(path: str | Path, rows: dict[str, np.ndarray], every: int = 4, labels: list[str] | None = None) -> Path:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    strip(rows, every, labels=labels).save(tmp)
    tmp.replace(path)
    return path

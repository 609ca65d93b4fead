"""Small line plots drawn with PIL (no plotting library needed): metric over time, one line
per series, with axes labelled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = [(230, 80, 60), (60, 140, 230), (90, 190, 90), (220, 180, 40), (170, 90, 210), (120, 120, 120)]


def line_plot(path: str | Path, series: dict[str, np.ndarray], title: str, xlabel: str, ylabel: str,
              x_step: float = 1.0, size: tuple[int, int] = (640, 360)) -> Path:
    W, H = size
    L, R, T, B = 60, 20, 30, 40
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    vals = np.concatenate([np.asarray(v, float)[np.isfinite(v)] for v in series.values()] or [np.zeros(1)])
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    n = max(len(v) for v in series.values())
    xmax = max(1, n - 1) * x_step

    def xy(i, v):
        return L + (W - L - R) * (i * x_step) / xmax, T + (H - T - B) * (1 - (v - lo) / (hi - lo))

    d.rectangle([L, T, W - R, H - B], outline=(0, 0, 0))
    for k in range(5):  # y ticks
        v = lo + (hi - lo) * k / 4
        y = xy(0, v)[1]
        d.line([L - 4, y, L, y], fill=(0, 0, 0))
        d.text((4, y - 6), f"{v:.1f}", fill=(0, 0, 0))
    for k in range(5):  # x ticks
        x = L + (W - L - R) * k / 4
        d.text((x - 10, H - B + 4), f"{xmax * k / 4:.0f}", fill=(0, 0, 0))
    d.text((W // 2 - 4 * len(xlabel), H - 16), xlabel, fill=(0, 0, 0))
    d.text((4, 4), f"{title}  ({ylabel})", fill=(0, 0, 0))
    for c, (name, v) in enumerate(series.items()):
        col = COLOURS[c % len(COLOURS)]
        pts = [xy(i, float(x)) for i, x in enumerate(v) if np.isfinite(x)]
        if len(pts) > 1:
            d.line(pts, fill=col, width=2)
        d.text((W - R - 150, T + 6 + 14 * c), name, fill=col)
    path = Path(path)
    img.save(path)
    return path

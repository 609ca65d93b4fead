"""MP4 writing and reading through PyAV."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np


class VideoWriter:
    """H.264 MP4, written to a temporary file and renamed on close so a crash leaves no
    half-written video under the real name."""

    def __init__(self, path: str | Path, fps: int, width: int, height: int, crf: int = 18):
        import av

        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".part")
        self.container = av.open(str(self.tmp), mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        # yuv420p needs even sizes; odd ones are padded by one pixel
        self.stream.width, self.stream.height = width + width % 2, height + height % 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": str(crf)}
        self.frames = 0

    def write(self, frames: np.ndarray) -> None:
        import av

        for f in frames:
            h, w = f.shape[:2]
            if (h % 2) or (w % 2):
                f = np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(f), format="yuv420p")
            frame.pts = self.frames
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        os.replace(self.tmp, self.path)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        else:
            self.container.close()
            self.tmp.unlink(missing_ok=True)


# Colour conversion in numpy, both ways (BT.601 limited range, as swscale assumes by default): after
# PyAV's swscale path to rgb24, later MP4s of the same frames often came out with other bytes in the
# same process, so our own videos never go through it. (x264 still differs now and then, rarely:
# the same frames give the same video up to codec noise, not always the same bytes.)


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 (H, W even) -> the planes stacked as [H * 3/2, W] uint8, chroma averaged 2x2."""
    x = frame.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 16 + 0.256788 * r + 0.504129 * g + 0.097906 * b
    u = 128 - 0.148223 * r - 0.290993 * g + 0.439216 * b
    v = 128 + 0.439216 * r - 0.367788 * g - 0.071427 * b
    h, w = y.shape

    def half(c):
        return c.reshape(h // 2, 2, w // 2, 2).mean((1, 3))

    y, u, v = (np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, half(u), half(v)))
    return np.concatenate([y, u.reshape(h // 4, w), v.reshape(h // 4, w)])


def yuv420p_to_rgb(planes: np.ndarray) -> np.ndarray:
    """The inverse: [H * 3/2, W] uint8 -> [H, W, 3] uint8, chroma repeated over 2x2."""
    h, w = planes.shape[0] * 2 // 3, planes.shape[1]
    y = planes[:h].astype(np.float32) - 16
    u = planes[h:h + h // 4].reshape(h // 2, w // 2).astype(np.float32) - 128
    v = planes[h + h // 4:].reshape(h // 2, w // 2).astype(np.float32) - 128
    u, v = (c.repeat(2, 0).repeat(2, 1) for c in (u, v))
    rgb = np.stack([1.164384 * y + 1.596027 * v, 1.164384 * y - 0.391762 * u - 0.812968 * v,
                    1.164384 * y + 2.017232 * u], -1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames [T, H, W, 3] uint8 and the frame rate."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [yuv420p_to_rgb(f.to_ndarray()) if f.format.name == "yuv420p" else f.to_ndarray(format="rgb24")
                  for f in c.decode(s)]
        return np.stack(frames), float(s.average_rate)

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
            # convert to yuv420p ourselves: left to the encoder, PyAV's implicit conversion made the
            # bytes of the file depend on what was decoded before in the process (same frames, other MP4)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24").reformat(format="yuv420p")
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


def read_video(path: str | Path) -> tuple[np.ndarray, float]:
    """All frames [T, H, W, 3] uint8 and the frame rate."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return np.stack(frames), float(s.average_rate)

"""One play session: the player's input, a worker thread that turns it into frames, and the
bounded buffer between that thread and whoever sends the frames.

The worker owns the session's World (its own generator state). It generates a chunk just
in time: when the frames already buffered will have played out by the time the next chunk
is ready, so the actions it reads are as fresh as they can be. Frames are given display
times 1/fps apart; the sender takes the newest frame whose time has come and the older
ones are dropped, so a client slower than the model skips frames instead of queueing them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from interworld.config import KEYS
from interworld.engine.actions import MAX_MOUSE
from interworld.serve.stream import Stream, encode_image, hot_keys, mouse_delta

log = logging.getLogger("interworld.serve")


class SessionLimit:
    """A cap on concurrent sessions (thread-safe counter)."""

    def __init__(self, max_sessions: int):
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        self.max = max_sessions
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def try_acquire(self) -> bool:
        with self._lock:
            if self._active >= self.max:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)


class InputState:
    """What the player does, as the latest state: keys held now, keys held at any message since
    the last chunk (so a tap shorter than a chunk still counts), mouse motion summed since the
    last chunk, and the sequence number of the last action message applied."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held = [0.0] * len(KEYS)
        self._tapped = [0.0] * len(KEYS)
        self._mouse = [0.0, 0.0]
        self.seq = 0

    def apply(self, hot: list[float], mouse: tuple[float, float], seq: int | None = None) -> None:
        with self._lock:
            self._held = list(hot)
            self._tapped = [max(a, b) for a, b in zip(self._tapped, hot)]
            self._mouse[0] += mouse[0]
            self._mouse[1] += mouse[1]
            if seq is not None:
                self.seq = max(self.seq, seq)

    def take(self, n: int) -> tuple[list[float], tuple[float, float], int]:
        """The action of the next chunk of n frames: keys, mouse per frame (the summed motion
        spread evenly), and the last sequence number it includes."""
        with self._lock:
            keys = [max(a, b) for a, b in zip(self._held, self._tapped)]
            self._tapped = [0.0] * len(KEYS)
            dx, dy = (max(-MAX_MOUSE, min(MAX_MOUSE, m / n)) for m in self._mouse)
            self._mouse = [0.0, 0.0]
            return keys, (dx, dy), self.seq

    def release_all(self) -> None:
        """Let go of every key and forget pending motion (a restart, a lost focus)."""
        with self._lock:
            self._held = [0.0] * len(KEYS)
            self._tapped = [0.0] * len(KEYS)
            self._mouse = [0.0, 0.0]


@dataclass
class Frame:
    index: int  # counts every frame of the session, across restarts
    action_seq: int  # the last client action message this frame's chunk includes
    gen_ms: float  # time to generate and encode its chunk
    data: bytes  # JPEG or WebP
    due: float = 0.0  # time.monotonic() at which it should be shown


class Playout:
    """Frames waiting for their display time. The worker pushes, the sender takes."""

    def __init__(self, fps: float, max_frames: int = 256, on_push: Callable[[], None] | None = None):
        self.period = 1.0 / fps
        self.max_frames = max_frames
        self.on_push = on_push
        self.dropped = 0  # frames never sent: superseded by newer ones or over max_frames
        self._frames: deque[Frame] = deque()
        self._next: float | None = None  # the display time after the last buffered frame
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frames: list[Frame]) -> None:
        with self._lock:
            t = time.monotonic() if self._next is None else max(time.monotonic(), self._next)
            for f in frames:
                f.due = t
                t += self.period
                self._frames.append(f)
            self._next = t
            while len(self._frames) > self.max_frames:
                self._frames.popleft()
                self.dropped += 1
        if self.on_push is not None:
            self.on_push()

    def clear(self) -> None:
        """Forget what is buffered and restart the clock (a new stream shows its first frame now)."""
        with self._lock:
            self._frames.clear()
            self._next = None

    def end_time(self) -> float:
        """When everything buffered will have been shown (monotonic seconds)."""
        with self._lock:
            return self._next if self._next is not None else float("-inf")

    def take_due(self, now: float | None = None) -> tuple[Frame | None, float | None]:
        """(the newest frame due by `now`, None) dropping older due ones, or (None, seconds
        until the next one is due; None when nothing is buffered)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while len(self._frames) >= 2 and self._frames[1].due <= now:
                self._frames.popleft()
                self.dropped += 1
            if self._frames and self._frames[0].due <= now:
                return self._frames.popleft(), None
            return None, (self._frames[0].due - now if self._frames else None)


class Session:
    """One player's stream, generated by a worker thread.

    Called from the server (any thread): `start`, `act`, `set_recording`, `close`, `join`.
    The worker reports through `notify(message: dict)` (from its own thread): "started",
    "recording", and "error" messages; an error with "fatal": True ends the session.
    """

    def __init__(self, world, *, image_format: str = "jpeg", quality: int = 85,
                 notify: Callable[[dict], None] | None = None, on_frames: Callable[[], None] | None = None,
                 record_dir: str | Path | None = None, record_prefix: str = "/recordings/",
                 max_record_s: float = 600.0, max_buffered: int = 256, session_id: str | None = None,
                 step_lock: threading.Lock | None = None):
        self.id = session_id or uuid.uuid4().hex[:8]
        self.stream = Stream(world)
        self.inputs = InputState()
        self.playout = Playout(self.stream.fps, max_buffered, on_frames)
        self.image_format, self.quality = image_format, quality
        encode_image(np.zeros((8, 8, 3), np.uint8), image_format, quality)  # a bad format fails here, not mid-stream
        self.notify = notify or (lambda msg: None)
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.record_prefix = record_prefix
        self.max_record_frames = int(max_record_s * self.stream.fps)
        self.recordings: list[Path] = []
        self.chunk_s: float | None = None  # smoothed generate + encode time of a chunk
        self.error: str | None = None
        # shared by the sessions of one server: one model call at a time. Two sessions each
        # running torch's thread pool on the same cores oversubscribe them, and spinning
        # threads then make both many times slower than taking turns.
        self._step_lock = step_lock if step_lock is not None else contextlib.nullcontext()
        self._writer = None
        self._last: np.ndarray | None = None  # the newest frame, so a recording starts with a picture
        self._frame_index = 0
        self._start_req = None
        self._record_req: bool | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"interworld-session-{self.id}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------- from the server
    def start(self, image, prompt: str = "", seed: int = 0, label: str | None = None) -> None:
        """(Re)start the stream from `image` (path, PIL image or array); a newer request replaces an older one."""
        with self._lock:
            self._start_req = (image, prompt, seed, label)
        # released here, in message order: keys pressed after this request belong to the new stream
        self.inputs.release_all()
        self._wake.set()

    def act(self, keys, mouse=(0.0, 0.0), seq: int | None = None) -> None:
        """Apply one action message: `keys` held now, `mouse` motion in degrees since the last
        message. Raises ActionError on an unknown key or an absurd mouse delta."""
        self.inputs.apply(hot_keys(keys), mouse_delta(mouse), seq)

    def set_recording(self, on: bool) -> None:
        with self._lock:
            self._record_req = bool(on)
        self._wake.set()

    @property
    def recording(self) -> bool:
        return self._writer is not None

    def close(self) -> None:
        """Ask the worker to stop; it finishes the chunk it is making (if any) and exits."""
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def cleanup(self) -> None:
        """Delete the session's recordings (call after join)."""
        for p in self.recordings:
            p.unlink(missing_ok=True)
        self.recordings.clear()

    # ------------------------------------------------------------- the worker
    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.clear()
                if self._handle_requests():
                    continue
                if not self.stream.started:
                    self._wake.wait(0.5)
                    continue
                # just in time: start the next chunk when it would finish as the buffer runs dry
                slack = self.playout.end_time() - time.monotonic() - (self.chunk_s or 0.0)
                if slack > 0:
                    self._wake.wait(min(slack, 0.25))
                    continue
                self._chunk()
        except Exception as e:  # a bug or an out-of-memory: end this session, never the server
            log.exception("session %s: generation failed", self.id)
            self.error = f"{type(e).__name__}: {e}"
            self.notify({"type": "error", "code": "internal", "fatal": True,
                         "message": f"generation failed ({self.error}); this session ends"})
        finally:
            self._stop_recording(deliver=False)

    def _handle_requests(self) -> bool:
        with self._lock:
            start, self._start_req = self._start_req, None
            rec, self._record_req = self._record_req, None
        if start is not None:
            self._reset(*start)
        if rec is True and self._writer is None:
            self._start_recording()
        elif rec is False and self._writer is not None:
            self._stop_recording(deliver=True)
        return start is not None or rec is not None

    def _reset(self, image, prompt: str, seed: int, label: str | None) -> None:
        t0 = time.perf_counter()
        try:
            with self._step_lock:
                first = self.stream.reset(image, prompt, seed)
        except (ValueError, TypeError, FileNotFoundError) as e:
            self.notify({"type": "error", "code": "bad_image", "message": f"could not start from that image: {e}"})
            return
        self._stop_recording(deliver=True)  # a recording is one stream
        self.playout.clear()
        self.chunk_s = None
        ms = (time.perf_counter() - t0) * 1000
        h, w = first.shape[1:3]
        self.notify({"type": "started", "image": label, "width": w, "height": h, "seed": seed,
                     "frames_per_chunk": self.stream.frames_per_step, "reset_ms": round(ms, 1)})
        self._publish(first, self.inputs.seq, ms)

    def _chunk(self) -> None:
        n = self.stream.frames_per_step
        keys, mouse, seq = self.inputs.take(n)
        t0 = time.perf_counter()
        with self._step_lock:
            frames = self.stream.step(keys, mouse)
        self._publish(frames, seq, None, t0)
        if self._writer is not None:
            self._writer.write(frames)
            if self._writer.frames >= self.max_record_frames:
                self._stop_recording(deliver=True, reason="length limit reached")

    def _publish(self, frames: np.ndarray, seq: int, ms: float | None, t0: float | None = None) -> None:
        data = [encode_image(f, self.image_format, self.quality) for f in frames]
        if t0 is not None:
            dt = time.perf_counter() - t0
            self.chunk_s = dt if self.chunk_s is None else 0.7 * self.chunk_s + 0.3 * dt
            ms = dt * 1000
        out = []
        for d in data:
            out.append(Frame(self._frame_index, seq, round(ms, 1), d))
            self._frame_index += 1
        self._last = frames[-1]
        self.playout.push(out)

    def _start_recording(self) -> None:
        from interworld.io.video import VideoWriter

        if self.record_dir is None:
            self.notify({"type": "error", "code": "no_recording", "message": "recording is off on this server"})
            return
        if self._last is None:
            self.notify({"type": "error", "code": "not_started", "message": "start a stream before recording"})
            return
        path = self.record_dir / f"{uuid.uuid4().hex}.mp4"
        h, w = self._last.shape[:2]
        self._writer = VideoWriter(path, self.stream.fps, w, h)
        self._writer.write(self._last[None])
        self.recordings.append(path)
        self.notify({"type": "recording", "on": True})

    def _stop_recording(self, deliver: bool, reason: str | None = None) -> None:
        w, self._writer = self._writer, None
        if w is None:
            return
        try:
            w.close()
        except Exception:
            log.exception("session %s: could not finish the recording", self.id)
            if deliver:
                self.notify({"type": "error", "code": "recording_failed", "message": "the recording could not be written"})
            return
        if deliver:
            msg = {"type": "recording", "on": False, "url": self.record_prefix + w.path.name, "frames": w.frames,
                   "seconds": round(w.frames / self.stream.fps, 2)}
            if reason:
                msg["reason"] = reason
            self.notify(msg)

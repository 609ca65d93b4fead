"""Shared by the play tests: tiny worlds whose actions matter, a server in a thread, a WebSocket client."""

from __future__ import annotations

import contextlib
import json
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path

import torch

from interworld.config import get_preset
from interworld.engine.world import World

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def wake_actions(world: World, seed: int = 1) -> World:
    """Random values for the layers a fresh model zero-initialises (action and camera outputs),
    so that with random weights the keys and the mouse still change the frames."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in world.dit.parameters():
            if p.abs().max() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return world


def tiny_world(fps: float | None = None, world_cls=World, **kw) -> World:
    cfg = get_preset("tiny") if fps is None else get_preset("tiny", fps=fps)
    return wake_actions(world_cls.from_config(cfg, seed=0, **kw))


@contextlib.contextmanager
def serving(factory=None, *, fps: float | None = 30, **kw):
    """A real uvicorn server in a thread, playing tiny worlds; yields the BackgroundServer."""
    from interworld.serve.app import BackgroundServer, create_app

    kw.setdefault("examples_dir", EXAMPLES)
    app = create_app(factory or (lambda: tiny_world(fps)), **kw)
    with BackgroundServer(app, max_message_bytes=kw.get("max_message_bytes", 4 << 20)) as srv:
        yield srv


_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no environment proxy for 127.0.0.1


def http_get(url: str) -> bytes:
    with _direct.open(url, timeout=10) as r:
        return r.read()


def get_json(url: str):
    return json.loads(http_get(url))


def http_status(url: str) -> int:
    try:
        with _direct.open(url, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def wait_for(pred, timeout: float = 10.0, what: str = "condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Client:
    """A protocol client over the websockets library: parses frames, acks them on request."""

    def __init__(self, base_url: str, **kw):
        from websockets.sync.client import connect

        # proxy=None: a proxy set in the environment must not sit between us and 127.0.0.1
        self._cm = connect(base_url.replace("http://", "ws://") + "/ws", open_timeout=10, proxy=None, **kw)
        self.ws = self._cm.__enter__()
        self.notices: list[dict] = []
        self.frames: list[tuple[dict, bytes]] = []

    def send(self, msg) -> None:
        self.ws.send(msg if isinstance(msg, (str, bytes)) else json.dumps(msg))

    def recv(self, timeout: float = 10.0):
        """('notice', dict) or ('frame', (header, image bytes))."""
        m = self.ws.recv(timeout=timeout)
        if isinstance(m, str):
            msg = json.loads(m)
            self.notices.append(msg)
            return "notice", msg
        n = struct.unpack(">I", m[:4])[0]
        frame = (json.loads(m[4:4 + n]), m[4 + n:])
        self.frames.append(frame)
        return "frame", frame

    def _messages(self, timeout: float, ack: bool, failure):
        """Messages as they come (frames acked on the way); after `timeout` s an AssertionError
        with failure() as its message."""
        t0 = time.monotonic()
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                raise AssertionError(failure())
            kind, m = self.recv(left)
            if kind == "frame" and ack:
                self.send({"type": "ack", "frame": m[0]["i"]})
            yield kind, m

    def notice(self, pred=lambda m: True, timeout: float = 10.0, ack: bool = True) -> dict:
        """Read until a notice matching `pred` (acking frames on the way)."""
        for kind, m in self._messages(timeout, ack,
                                      lambda: f"no matching notice in {timeout} s; got {self.notices[-5:]}"):
            if kind != "frame" and pred(m):
                return m

    def error(self, code: str, timeout: float = 10.0) -> dict:
        return self.notice(lambda m: m["type"] == "error" and m["code"] == code, timeout)

    def take_frames(self, n: int = 1, timeout: float = 10.0, ack: bool = True, pred=lambda h: True):
        """The next n frames whose header matches `pred` (acking each one)."""
        got = []
        if n <= 0:
            return got
        for kind, m in self._messages(
                timeout, ack, lambda: f"got {len(got)} of {n} frames in {timeout} s; notices {self.notices[-5:]}"):
            if kind == "frame" and pred(m[0]):
                got.append(m)
                if len(got) == n:
                    return got

    def hello_and_start(self, **start) -> dict:
        hello = self.notice(lambda m: m["type"] == "hello")
        self.send({"type": "start", "image": "start.png", **start})
        self.notice(lambda m: m["type"] == "started")
        return hello

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

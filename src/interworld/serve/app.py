"""The web app: a page with a canvas, and a WebSocket per play session.

Protocol (all client messages are JSON text; `docs` in the README):

client -> server
  {"type": "start", "image": "start.png" | "upload": "<base64>", "prompt": "...", "seed": 0}
  {"type": "action", "seq": 12, "t": 1234.5, "keys": ["w", "space"], "mouse": [dx, dy]}
      keys: those held now; mouse: degrees moved since the previous action message;
      seq: increasing number echoed back in the frames that include this action.
  {"type": "ack", "frame": 41}            after drawing a frame (at most ack_window unacked)
  {"type": "record", "on": true|false}    MP4 of the stream; the reply carries its URL
server -> client
  JSON text: {"type": "hello" | "started" | "recording" | "error", ...}
  binary: one frame = uint32 big-endian header length N, N bytes of JSON header
          {"i": frame index, "a": last action seq included, "gen_ms": ..., "dropped": ...},
          then the JPEG or WebP image.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections import deque
from importlib import resources
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, HTTPException, WebSocket
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from interworld.config import KEYS
from interworld.engine.actions import ALIASES, MAX_MOUSE, ActionError, key_index
from interworld.serve.session import Session, SessionLimit
from interworld.serve.stream import IMAGE_FORMATS, decode_upload, mouse_delta

log = logging.getLogger("interworld.serve")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
MESSAGE_TYPES = ("start", "action", "ack", "record")
CLOSE_BUSY = 1013  # "try again later"
CLOSE_ERROR = 1011


def static_dir() -> Path:
    return Path(str(resources.files("interworld.serve"))) / "static"


def find_examples(folder: str | Path | None) -> dict[str, Path]:
    """Start images in `folder` (by file name), sorted."""
    if folder is None or not Path(folder).is_dir():
        return {}
    return {p.name: p for p in sorted(Path(folder).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}


class ProtocolError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _no_constants(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def create_app(world_factory: Callable[[], object], *, max_sessions: int = 2, model_label: str | None = None,
               examples_dir: str | Path | None = None, image_format: str = "jpeg", quality: int = 85,
               max_message_bytes: int = 4 << 20, ack_window: int = 2, record: bool = True,
               default_seed: int = 0, default_prompt: str = "", take_turns: bool = True) -> FastAPI:
    """The FastAPI app. `world_factory()` makes one World per session (its own stream state;
    the weights may be shared). `max_sessions` caps concurrent sessions; a client beyond it
    gets a "busy" error and close code 1013. `take_turns`: sessions run the model one at a
    time (on shared CPU cores, concurrent calls are much slower than turns)."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
    if ack_window < 1:
        raise ValueError("ack_window must be at least 1")
    limit = SessionLimit(max_sessions)
    examples = find_examples(examples_dir)
    rec_dir = Path(tempfile.mkdtemp(prefix="interworld-rec-")) if record else None
    step_lock = threading.Lock() if take_turns else None

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        if rec_dir is not None:
            shutil.rmtree(rec_dir, ignore_errors=True)

    app = FastAPI(title="interworld play", lifespan=lifespan)
    app.state.limit = limit
    page = (static_dir() / "index.html").read_text()
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return page

    @app.get("/api/status")
    async def status():
        return {"sessions": limit.active, "max_sessions": limit.max, "model": model_label}

    @app.get("/api/examples")
    async def list_examples():
        return {"examples": list(examples)}

    @app.get("/examples/{name}")
    async def example(name: str):
        if name not in examples:  # only files listed at start-up: no path tricks
            raise HTTPException(404, f"no example {name!r}")
        return FileResponse(examples[name])

    @app.get("/recordings/{name}")
    async def recording(name: str):
        p = rec_dir / name if rec_dir is not None else None
        if p is None or p.parent != rec_dir or p.suffix != ".mp4" or not p.is_file():
            raise HTTPException(404, "no such recording (recordings last as long as their session)")
        return FileResponse(p, media_type="video/mp4", filename=f"interworld-{name[:8]}.mp4")

    @app.websocket("/ws")
    async def play(ws: WebSocket):
        await ws.accept()
        if not limit.try_acquire():
            log.info("refused a session: %d of %d in use", limit.active, limit.max)
            with contextlib.suppress(Exception):
                await ws.send_text(json.dumps({
                    "type": "error", "code": "busy",
                    "message": f"the server is busy: it plays at most {limit.max} session"
                               f"{'s' if limit.max != 1 else ''} at a time and all are in use; "
                               f"try again when one ends"}))
                await ws.close(code=CLOSE_BUSY, reason="server busy")
            return
        try:
            conn = Connection(ws, world_factory, examples=examples, model_label=model_label,
                              image_format=image_format, quality=quality, max_message_bytes=max_message_bytes,
                              ack_window=ack_window, record_dir=rec_dir, default_seed=default_seed,
                              default_prompt=default_prompt, step_lock=step_lock)
            await conn.run()
        finally:
            limit.release()

    return app


class Connection:
    """One WebSocket and its Session: reads client messages, sends frames and notices."""

    def __init__(self, ws: WebSocket, world_factory, *, examples: dict[str, Path], model_label: str | None,
                 image_format: str, quality: int, max_message_bytes: int, ack_window: int,
                 record_dir: Path | None, default_seed: int, default_prompt: str,
                 step_lock: threading.Lock | None = None):
        self.ws, self.world_factory = ws, world_factory
        self.examples, self.model_label = examples, model_label
        self.image_format, self.quality = image_format, quality
        self.max_bytes, self.window = max_message_bytes, ack_window
        self.record_dir, self.default_seed, self.default_prompt = record_dir, default_seed, default_prompt
        self.step_lock = step_lock
        self.session: Session | None = None
        self.inflight: deque[int] = deque()  # frame indices sent and not yet acknowledged
        self.acked = asyncio.Event()
        self.frames_ready = asyncio.Event()
        self.notices: asyncio.Queue = asyncio.Queue()
        self.send_lock = asyncio.Lock()
        self.closed = False

    # ------------------------------------------------------------------ sending
    async def send_json(self, msg: dict) -> None:
        async with self.send_lock:
            await self.ws.send_text(json.dumps(msg))

    async def error(self, code: str, message: str) -> None:
        log.info("session %s: %s: %s", self.session.id if self.session else "-", code, message)
        await self.send_json({"type": "error", "code": code, "message": message})

    def _from_worker(self, loop, fn, *args) -> None:
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is gone (server shut down): nobody to tell
            pass

    async def _send_frames(self) -> None:
        s = self.session
        while True:
            while len(self.inflight) >= self.window:  # the client has not drawn what it has: wait
                self.acked.clear()
                if len(self.inflight) < self.window:
                    break
                await self.acked.wait()
            frame = None
            while frame is None:
                self.frames_ready.clear()  # cleared before looking, so a push in between still wakes us
                frame, wait = s.playout.take_due()
                if frame is None:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.frames_ready.wait(), wait)
            header = json.dumps({"i": frame.index, "a": frame.action_seq, "gen_ms": frame.gen_ms,
                                 "dropped": s.playout.dropped}).encode()
            async with self.send_lock:
                await self.ws.send_bytes(struct.pack(">I", len(header)) + header + frame.data)
            self.inflight.append(frame.index)

    async def _send_notices(self) -> None:
        while True:
            msg = await self.notices.get()
            await self.send_json(msg)
            if msg.get("fatal"):
                self.closed = True
                await self.ws.close(code=CLOSE_ERROR, reason="generation failed")
                return

    # ------------------------------------------------------------------ the session
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            world = await loop.run_in_executor(None, self.world_factory)
        except Exception as e:
            log.exception("could not build a World for a session")
            with contextlib.suppress(Exception):
                await self.error("internal", f"could not load the model: {e}")
                await self.ws.close(code=CLOSE_ERROR)
            return
        self.session = s = Session(
            world, image_format=self.image_format, quality=self.quality, record_dir=self.record_dir,
            step_lock=self.step_lock,
            notify=lambda m: self._from_worker(loop, self.notices.put_nowait, m),
            on_frames=lambda: self._from_worker(loop, self.frames_ready.set))
        log.info("session %s: opened", s.id)
        tasks = []
        try:
            await self.send_json(self._hello(world))
            tasks = [asyncio.create_task(self._send_frames()), asyncio.create_task(self._send_notices())]
            while not self.closed:
                try:
                    msg = await self.ws.receive()
                except (WebSocketDisconnect, RuntimeError):
                    break
                if msg["type"] == "websocket.disconnect":
                    break
                try:
                    await self.handle(msg)
                except ProtocolError as e:
                    await self.error(e.code, str(e))
                except (WebSocketDisconnect, OSError):
                    raise
                except Exception as e:  # a bug in handling one message must not end the session
                    log.exception("session %s: could not handle a message", s.id)
                    await self.error("internal", f"the server could not handle that message ({type(e).__name__})")
                if any(t.done() for t in tasks):  # a send failed: the client is gone
                    break
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client went away while we were answering it
        except Exception:
            log.exception("session %s: unexpected error", s.id)
        finally:
            for t in tasks:
                t.cancel()
            for r in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(r, Exception) and not isinstance(r, (WebSocketDisconnect, OSError, RuntimeError)):
                    log.error("session %s: sender failed: %r", s.id, r)
            s.close()
            # hold the session's slot until its worker has stopped using the CPU/GPU
            if not await loop.run_in_executor(None, s.join, 120.0):
                log.warning("session %s: worker still busy after 120 s", s.id)
            s.cleanup()
            log.info("session %s: closed", s.id)

    def _hello(self, world) -> dict:
        cfg = world.cfg
        return {"type": "hello", "session": self.session.id, "model": self.model_label or cfg.name,
                "width": cfg.width, "height": cfg.height, "fps": cfg.fps, "format": IMAGE_FORMATS[self.image_format],
                "keys": list(KEYS), "aliases": sorted(ALIASES), "max_mouse": MAX_MOUSE,
                "examples": list(self.examples), "prompt": self.default_prompt, "seed": self.default_seed,
                "max_message_bytes": self.max_bytes, "ack_window": self.window, "record": self.record_dir is not None}

    # ------------------------------------------------------------------ client messages
    async def handle(self, msg: dict) -> None:
        if msg.get("bytes") is not None:
            raise ProtocolError("bad_message", "binary messages are not part of the protocol: send JSON text")
        text = msg.get("text")
        if text is None:
            return
        size = len(text) if len(text) * 4 <= self.max_bytes else len(text.encode("utf-8", "replace"))
        if size > self.max_bytes:
            raise ProtocolError("too_big", f"message of {size} bytes is over the limit of {self.max_bytes} bytes")
        try:
            data = json.loads(text, parse_constant=_no_constants)
        except (ValueError, RecursionError) as e:
            raise ProtocolError("bad_json", f"message is not valid JSON ({str(e)[:120]})") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ProtocolError("bad_message", 'a message is a JSON object with a "type" field')
        kind = data["type"]
        if kind not in MESSAGE_TYPES:
            raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r}; the types are "
                                                f"{', '.join(MESSAGE_TYPES)}")
        await getattr(self, f"_on_{kind}")(data)

    @staticmethod
    def _fields(data: dict, allowed: set[str]) -> None:
        unknown = set(data) - allowed - {"type"}
        if unknown:
            names = ", ".join(repr(u[:40]) for u in sorted(unknown)[:5])
            raise ProtocolError("bad_message", f"{data['type']} message has unknown fields {names} "
                                               f"(allowed: {', '.join(sorted(allowed))})")

    async def _on_action(self, data: dict) -> None:
        self._fields(data, {"seq", "t", "keys", "mouse"})
        seq = data.get("seq")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**53):
            raise ProtocolError("bad_message", f"seq must be a non-negative integer, got {str(seq)[:40]}")
        keys = data.get("keys", [])
        if not isinstance(keys, list) or len(keys) > 4 * len(KEYS) or not all(isinstance(k, str) for k in keys):
            raise ProtocolError("bad_message", "keys must be a list of key names, e.g. [\"w\", \"space\"]")
        try:
            for k in keys:
                key_index(k)
        except ActionError as e:
            raise ProtocolError("unknown_key", str(e)[:300]) from None
        mouse = data.get("mouse", [0.0, 0.0])
        try:
            mouse = mouse_delta(mouse)
        except ActionError as e:
            raise ProtocolError("bad_mouse", str(e)[:300]) from None
        self.session.act(keys, mouse, seq)

    async def _on_ack(self, data: dict) -> None:
        self._fields(data, {"frame"})
        i = data.get("frame")
        if not isinstance(i, int) or isinstance(i, bool):
            raise ProtocolError("bad_message", "ack needs the integer frame index it acknowledges")
        while self.inflight and self.inflight[0] <= i:  # frames arrive in order: acking i frees all up to i
            self.inflight.popleft()
        self.acked.set()

    async def _on_record(self, data: dict) -> None:
        self._fields(data, {"on"})
        if not isinstance(data.get("on"), bool):
            raise ProtocolError("bad_message", 'record needs "on": true or false')
        if self.record_dir is None:
            raise ProtocolError("no_recording", "recording is off on this server")
        self.session.set_recording(data["on"])

    async def _on_start(self, data: dict) -> None:
        self._fields(data, {"image", "upload", "prompt", "seed"})
        prompt = data.get("prompt", self.default_prompt)
        if not isinstance(prompt, str) or len(prompt) > 2000:
            raise ProtocolError("bad_message", "prompt must be a string of at most 2000 characters")
        seed = data.get("seed", self.default_seed)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise ProtocolError("bad_message", "seed must be a non-negative integer")
        if "upload" in data and data.get("image") is not None:
            raise ProtocolError("bad_message", "give either image (an example's name) or upload, not both")
        if "upload" in data:
            try:
                image = await asyncio.get_running_loop().run_in_executor(None, decode_upload, data["upload"])
            except ValueError as e:
                raise ProtocolError("bad_image", str(e)) from None
            label = "upload"
        else:
            name = data.get("image")
            if name is None and self.examples:
                name = next(iter(self.examples))
            if name not in self.examples:
                have = ", ".join(self.examples) or "none on this server: upload one"
                raise ProtocolError("bad_image", f"unknown example image {str(name)[:60]!r}; the examples are: {have}")
            image, label = self.examples[name], name
        self.session.start(image, prompt, seed, label)


# ---------------------------------------------------------------------- running it
def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, bound before uvicorn starts so a taken port is a clean error and
    port 0 picks a free one. Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # listening now: a browser that connects before uvicorn runs waits, not refused
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def make_server(app: FastAPI, *, max_message_bytes: int = 4 << 20, log_level: str = "warning"):
    """A uvicorn Server for `app`. Frames bigger than twice our message limit are refused by
    uvicorn itself (close code 1009); between 1x and 2x the app answers "too_big" and goes on."""
    import uvicorn

    config = uvicorn.Config(app, ws_max_size=2 * max_message_bytes, log_level=log_level, lifespan="on",
                            timeout_graceful_shutdown=3)
    return uvicorn.Server(config)


class BackgroundServer:
    """Serve `app` from a thread (tests, notebooks): `with BackgroundServer(app) as srv: srv.url`."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, max_message_bytes: int = 4 << 20):
        self.sock = bind_socket(host, port)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.server = make_server(app, max_message_bytes=max_message_bytes)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> "BackgroundServer":
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() - t0 > timeout:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

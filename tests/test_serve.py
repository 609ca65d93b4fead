"""`interworld play`'s server over real WebSockets (uvicorn in a thread, the tiny preset):
frames arrive and follow actions, bad input is answered and survived, sessions are capped,
a slow client skips frames, a client that vanishes mid-chunk frees its session."""

import base64
import io
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("websockets")

from websockets.exceptions import ConnectionClosed  # noqa: E402

from interworld.cli.main import main  # noqa: E402
from interworld.engine.world import World, shipped_model_dir  # noqa: E402
from interworld.io.video import read_video  # noqa: E402
from interworld.serve.session import InputState, Playout, Frame  # noqa: E402
from interworld.serve.stream import default_examples_dir  # noqa: E402
from play_helpers import Client, get_json, http_get, http_status, serving, tiny_world, wait_for  # noqa: E402


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _sessions(srv) -> int:
    return get_json(srv.url + "/api/status")["sessions"]


@pytest.mark.parametrize("fmt,magic", [("jpeg", b"\xff\xd8"), ("webp", b"RIFF")])
def test_frames_arrive_follow_actions_and_change(fmt, magic):
    with serving(image_format=fmt) as srv, Client(srv.url) as c:
        assert http_status(srv.url + "/") == 200 and http_status(srv.url + "/static/play.js") == 200
        hello = c.hello_and_start(prompt="a dark corridor", seed=3)
        shipped = sorted(p.name for p in default_examples_dir().glob("*.png"))  # the repository's examples/
        assert hello["examples"] == shipped and "start.png" in shipped
        assert hello["keys"] == ["w", "s", "a", "d", "space", "attack"]
        assert hello["format"] == f"image/{fmt}"
        first = c.take_frames(1)[0]
        assert first[0]["i"] == 0 and first[1][:4].startswith(magic)
        c.send({"type": "action", "seq": 1, "t": 0, "keys": ["w"], "mouse": [4.0, -1.0]})
        walked = c.take_frames(8, pred=lambda h: h["a"] >= 1)  # the action is echoed in the frames that include it
        imgs = [_decode(d) for _, d in [first] + walked]
        assert all(im.shape == (32, 32, 3) for im in imgs)
        assert len({im.tobytes() for im in imgs}) > 1  # the picture moves
        idx = [h["i"] for h, _ in walked]
        assert idx == sorted(idx) and len(set(idx)) == len(idx)
        if fmt == "webp":
            assert b"WEBP" in walked[0][1][:16]


class SpyWorld(World):
    """A tiny world that remembers the actions of every chunk it makes."""

    def step(self, actions=None):
        self.calls.append(actions)
        return super().step(actions)


def test_actions_reach_the_model():
    """Keys held and mouse motion in action messages become the model's per-frame inputs:
    held keys on every frame of a chunk, the summed motion spread over its frames."""
    worlds = []

    def factory():
        w = tiny_world(fps=30, world_cls=SpyWorld)
        w.calls = []
        worlds.append(w)
        return w

    with serving(factory) as srv, Client(srv.url) as c:
        c.hello_and_start()
        c.send({"type": "action", "seq": 1, "keys": ["w", "jump"], "mouse": [6.0, 0.0]})
        c.send({"type": "action", "seq": 2, "keys": ["w", "jump"], "mouse": [2.0, -4.0]})
        c.take_frames(1, pred=lambda h: h["a"] >= 2)
        c.send({"type": "action", "seq": 3, "keys": []})
        c.take_frames(1, pred=lambda h: h["a"] >= 3)
    calls = worlds[0].calls
    moved = [(k, m) for k, m in calls if k[:, 0].any()]
    assert moved, calls
    total = sum(m.sum(0) for _, m in moved)
    assert total.tolist() == pytest.approx([8.0, -4.0])  # all motion arrives once, none twice
    for k, m in moved:
        assert (k[:, 0] == 1).all() and (k[:, 4] == 1).all() and k[:, [1, 2, 3, 5]].sum() == 0
        assert (m == m[0]).all()  # spread evenly over the chunk's frames
    assert not calls[-1][0].any()  # released


def test_bad_messages_are_answered_and_the_session_goes_on(caplog):
    caplog.set_level(logging.INFO, logger="interworld.serve")
    with serving() as srv, Client(srv.url) as c:
        c.hello_and_start()
        cases = [
            ("{not json", "bad_json"),
            ('{"type": "action", "mouse": [NaN, 0]}', "bad_json"),
            ("[1, 2, 3]", "bad_message"),
            (json.dumps({"no": "type"}), "bad_message"),
            (json.dumps({"type": "teleport"}), "unknown_type"),
            (json.dumps({"type": "action", "keys": ["q"]}), "unknown_key"),
            (json.dumps({"type": "action", "keys": ["shift"]}), "unknown_key"),
            (json.dumps({"type": "action", "keys": "w"}), "bad_message"),
            (json.dumps({"type": "action", "mouse": [1e9, 0]}), "bad_mouse"),
            (json.dumps({"type": "action", "mouse": [0, -91]}), "bad_mouse"),
            (json.dumps({"type": "action", "mouse": ["left", 0]}), "bad_mouse"),
            (json.dumps({"type": "action", "mouse": [1, 2, 3]}), "bad_mouse"),
            (json.dumps({"type": "action", "seq": -4}), "bad_message"),
            (json.dumps({"type": "action", "jump": True}), "bad_message"),
            (json.dumps({"type": "ack", "frame": "7"}), "bad_message"),
            (json.dumps({"type": "record", "on": "yes"}), "bad_message"),
            (json.dumps({"type": "start", "image": "../../etc/passwd"}), "bad_image"),
            (json.dumps({"type": "start", "upload": "%%%not base64%%%"}), "bad_image"),
            (json.dumps({"type": "start", "upload": base64.b64encode(b"GIF? no").decode()}), "bad_image"),
            (json.dumps({"type": "start", "seed": -1}), "bad_message"),
            ("[" * 100000 + "]" * 100000, "bad_json"),
            (b"\x00\x01binary", "bad_message"),
        ]
        for msg, code in cases:
            c.send(msg)
            err = c.error(code)
            assert err["message"], msg
        unknown = next(m for m in c.notices if m.get("code") == "unknown_key")
        assert "'q'" in unknown["message"] and "w, s, a, d" in unknown["message"]
        # the session still plays, and takes a good action after all that
        c.send({"type": "action", "seq": 99, "keys": ["a"], "mouse": [90, 90]})
        assert c.take_frames(2, pred=lambda h: h["a"] == 99)
        assert get_json(srv.url + "/api/status")["sessions"] == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("unknown_key" in r.getMessage() for r in caplog.records)  # bad input is logged


def test_oversized_messages():
    limit = 64 << 10
    with serving(max_message_bytes=limit) as srv:
        with Client(srv.url) as c:
            c.hello_and_start()
            c.send(json.dumps({"type": "action", "keys": ["w"], "pad": "x" * (limit + 10)}))
            err = c.error("too_big")
            assert str(limit) in err["message"]
            c.send({"type": "action", "seq": 5, "keys": ["d"]})
            assert c.take_frames(1, pred=lambda h: h["a"] == 5)  # goes on
        with Client(srv.url) as c:
            c.hello_and_start()
            # far over the limit: uvicorn refuses the frame itself and closes cleanly (1009)
            c.send("x" * (4 * limit))
            with pytest.raises(ConnectionClosed) as e:
                while True:
                    c.recv(timeout=10)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1009
        wait_for(lambda: _sessions(srv) == 0, what="the closed session to be released")
        with Client(srv.url) as c:  # the server still serves
            c.hello_and_start()
            assert c.take_frames(2)


def test_uploaded_start_image():
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(buf, format="PNG")
    data = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    with serving() as srv, Client(srv.url) as c:
        c.notice(lambda m: m["type"] == "hello")
        c.send({"type": "start", "upload": data, "prompt": "noise"})
        started = c.notice(lambda m: m["type"] == "started")
        assert started["image"] == "upload" and (started["width"], started["height"]) == (32, 32)
        assert c.take_frames(2)
        c.send({"type": "start", "upload": data, "image": "start.png"})
        assert "not both" in c.error("bad_message")["message"]


def test_session_cap_gives_a_clear_message():
    with serving(max_sessions=1) as srv:
        first = Client(srv.url)
        first.hello_and_start()
        with Client(srv.url) as extra:
            kind, msg = extra.recv()
            assert kind == "notice" and msg["code"] == "busy"
            assert "at most 1 session" in msg["message"] and "try again" in msg["message"]
            with pytest.raises(ConnectionClosed) as e:
                extra.recv()
            assert e.value.rcvd.code == 1013
        assert first.take_frames(2)  # the first session is untouched
        assert get_json(srv.url + "/api/status") == {"sessions": 1, "max_sessions": 1, "model": None}
        first.close()
        wait_for(lambda: _sessions(srv) == 0, what="the slot to be freed")
        with Client(srv.url) as again:
            again.hello_and_start()
            assert again.take_frames(1)


class SlowWorld(World):
    """A tiny world whose chunks take 0.3 s, so a client can leave in the middle of one."""
    stepping: threading.Event
    done: threading.Event

    def step(self, actions=None):
        self.stepping.set()
        time.sleep(0.3)
        try:
            return super().step(actions)
        finally:
            self.done.set()


def test_client_that_vanishes_mid_chunk(caplog):
    caplog.set_level(logging.INFO, logger="interworld.serve")
    worlds = []

    def factory():
        w = tiny_world(world_cls=SlowWorld)
        w.stepping, w.done = threading.Event(), threading.Event()
        worlds.append(w)
        return w

    with serving(factory) as srv:
        for abrupt in (True, False):
            c = Client(srv.url)
            c.hello_and_start()
            c.send({"type": "action", "seq": 1, "keys": ["w"]})
            assert worlds[-1].stepping.wait(10)
            assert not worlds[-1].done.is_set()  # in the middle of a chunk
            if abrupt:
                c.ws.socket.shutdown(socket.SHUT_RDWR)  # no close handshake: a crashed tab
                c.ws.socket.close()
            else:
                c.close()
            wait_for(lambda: _sessions(srv) == 0, what="the session to close")
            assert worlds[-1].done.is_set()  # the chunk was finished before the slot was given back
            wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("interworld-session-")],
                     what="the worker thread to exit")
        with Client(srv.url) as c:
            c.hello_and_start()
            assert c.take_frames(2, timeout=20)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


def test_slow_client_skips_frames_instead_of_queueing():
    with serving(fps=30) as srv, Client(srv.url) as c:
        c.hello_and_start()
        # take frames without acknowledging them: the browser is "busy"
        got = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            try:
                kind, m = c.recv(timeout=0.2)
            except TimeoutError:
                continue
            if kind == "frame":
                got.append(m[0])
        assert len(got) == 2  # the ack window: nothing more was sent
        c.send({"type": "ack", "frame": got[-1]["i"]})
        nxt = c.take_frames(1)[0][0]
        assert nxt["i"] > got[-1]["i"] + 10  # a second at 30 fps went by: old frames were dropped
        assert nxt["dropped"] > 10
        assert c.take_frames(5)  # and it streams on


def test_recording_to_mp4(tmp_path):
    with serving(fps=30) as srv:
        with Client(srv.url) as c:
            c.hello_and_start()
            c.send({"type": "record", "on": True})
            c.notice(lambda m: m["type"] == "recording" and m["on"])
            c.take_frames(5)
            c.send({"type": "record", "on": False})
            done = c.notice(lambda m: m["type"] == "recording" and not m["on"])
            assert done["url"].startswith("/recordings/") and done["frames"] >= 2
            out = tmp_path / "rec.mp4"
            out.write_bytes(http_get(srv.url + done["url"]))
            frames, fps = read_video(out)
            assert frames.shape[0] == done["frames"] and frames.shape[1:] == (32, 32, 3)
            assert fps == pytest.approx(30)
        wait_for(lambda: _sessions(srv) == 0)
        assert http_status(srv.url + done["url"]) == 404  # recordings go with their session
        assert http_status(srv.url + "/recordings/..%2F..%2Fetc%2Fpasswd") == 404
        assert http_status(srv.url + "/examples/start.png") == 200
        assert http_status(srv.url + "/examples/walk_and_turn.json") == 404


# ------------------------------------------------------------------ the pieces, without a server
def test_playout_keeps_the_newest_due_frame_and_stays_bounded():
    p = Playout(fps=100, max_frames=8)
    frames = [Frame(i, 0, 1.0, b"") for i in range(20)]
    p.push(frames)
    assert len(p) == 8 and p.dropped == 12  # bounded: the oldest went first
    t0 = frames[0].due
    assert [f.due - t0 for f in frames[:3]] == pytest.approx([0, 0.01, 0.02])  # 1/fps apart
    f, _ = p.take_due(now=t0 + 0.155)  # frames 12..15 are due: the newest wins
    assert f.index == 15 and p.dropped == 15
    f, wait = p.take_due(now=t0 + 0.155)
    assert f is None and wait == pytest.approx(0.005)
    p.clear()
    assert p.take_due() == (None, None) and p.end_time() == float("-inf")


def test_input_state_counts_taps_and_spreads_the_mouse():
    s = InputState()
    hot_w = [1.0, 0, 0, 0, 0, 0]
    s.apply(hot_w, (8.0, -4.0), 3)
    s.apply([0.0] * 6, (0.0, 0.0), 4)  # W tapped and released before the chunk was made
    keys, (dx, dy), seq = s.take(4)
    assert keys == hot_w and (dx, dy) == (2.0, -1.0) and seq == 4
    keys, (dx, dy), seq = s.take(4)
    assert keys == [0.0] * 6 and (dx, dy) == (0.0, 0.0) and seq == 4


# ------------------------------------------------------------------ the command
def _one_line_error(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_play_without_a_model_says_what_to_pass(capsys):
    _one_line_error(capsys, ["play", "--preset", "tiny"], "--checkpoint", "--preset tiny --random-init")
    if shipped_model_dir("small") is None:
        _one_line_error(capsys, ["play"], "--checkpoint", "--preset small --random-init")
    _one_line_error(capsys, ["play", "--checkpoint", "/nonexistent/ckpt"], "does not exist")
    _one_line_error(capsys, ["play", "--preset", "tiny", "--random-init", "--max-sessions", "0"], "--max-sessions")


def test_play_on_a_taken_port(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        _one_line_error(capsys, ["play", "--preset", "tiny", "--random-init", "--port", str(port)],
                        f"127.0.0.1:{port}", "--port")


def test_play_command_serves_and_stops(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "interworld.cli.main", "play", "--preset", "tiny", "--random-init",
                             "--port", "0", "--max-sessions", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        url = lines[1].split("open ", 1)[1].split("/ ", 1)[0]
        assert url.startswith("http://127.0.0.1:"), lines
        assert "tiny (random weights)" in lines[0]
        assert get_json(url + "/api/status")["max_sessions"] == 3
        with Client(url) as c:
            c.hello_and_start()
            assert c.take_frames(2)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_play_help_teaches_the_controls(capsys):
    with pytest.raises(SystemExit):
        main(["play", "--help"])
    out = capsys.readouterr().out
    for needle in ("W A S D", "Esc", "--checkpoint", "--max-sessions", "--random-init", "Shift"):
        assert needle in out

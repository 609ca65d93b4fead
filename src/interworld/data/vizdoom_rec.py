"""Recording ViZDoom gameplay: headless, one DoomGame per worker process.

Measured conventions of ViZDoom 1.3.2 (checked in tests/test_record.py):
- ANGLE is the yaw in degrees, counter-clockwise; TURN_LEFT_RIGHT_DELTA = +d turns right
  by d degrees per tic; turn deltas are ignored for the first tics of an episode.
- PITCH is positive looking DOWN, clamped to [-32, 56]; LOOK_UP_DOWN_DELTA = +d looks up.
  Shards store pitch positive UP (our convention), so pose pitch = -PITCH.
- A frame spans `skip` tics; per-tic deltas are the per-frame mouse divided by `skip`.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import random
import time
from pathlib import Path

import numpy as np

from interworld.config import KEYS
from interworld.data.policy import ExplorerPolicy
from interworld.data.shards import Shard, write_shard

TICRATE = 35
RESOLUTIONS = [(120, 160), (125, 200), (144, 256), (160, 256), (240, 320), (200, 320), (480, 640)]


def _vizdoom():
    try:
        import vizdoom
    except ImportError as e:
        raise RuntimeError(f"recording needs ViZDoom ({e}): pip install vizdoom==1.3.2") from None
    return vizdoom


def make_game(map_id: str, height: int, width: int, seed: int = 0, monsters: bool = False):
    """A headless DoomGame on `map_id` ('freedoom2:MAP01'); returns (game, native (h, w))."""
    vzd = _vizdoom()
    wad, level = map_id.split(":")
    h, w = min((r for r in RESOLUTIONS if r[0] >= height and r[1] >= width), default=RESOLUTIONS[-1],
               key=lambda r: r[0] * r[1])
    g = vzd.DoomGame()
    g.set_doom_game_path(os.path.join(os.path.dirname(vzd.__file__), f"{wad}.wad"))
    g.set_doom_map(level)
    g.set_screen_resolution(getattr(vzd.ScreenResolution, f"RES_{w}X{h}"))
    g.set_screen_format(vzd.ScreenFormat.RGB24)
    g.set_window_visible(False)
    g.set_sound_enabled(False)
    g.set_render_hud(False)
    g.set_render_crosshair(False)
    g.set_render_messages(False)
    g.set_render_weapon(True)
    g.add_game_args("+freelook 1 +sv_cheats 1" + ("" if monsters else " -nomonsters"))
    B = vzd.Button
    g.set_available_buttons([B.MOVE_FORWARD, B.MOVE_BACKWARD, B.MOVE_LEFT, B.MOVE_RIGHT, B.JUMP, B.ATTACK,
                             B.TURN_LEFT_RIGHT_DELTA, B.LOOK_UP_DOWN_DELTA])
    V = vzd.GameVariable
    g.set_available_game_variables([V.POSITION_X, V.POSITION_Y, V.POSITION_Z, V.ANGLE, V.PITCH])
    g.set_episode_timeout(0)
    g.set_seed(seed % (2**31))
    g.set_mode(vzd.Mode.PLAYER)
    # ViZDoom creates ./_vizdoom/ on init; two processes starting at once race to create it
    # and the loser crashes, so it is made here first
    os.makedirs("_vizdoom", exist_ok=True)
    g.init()
    return g, (h, w)


def engine_pose(game) -> np.ndarray:
    x, y, z, angle, pitch = game.get_state().game_variables
    return np.array([x, y, z, angle % 360.0, -pitch], dtype=np.float32)


def to_buttons(keys: list[int], dx: float, dy: float, skip: int) -> list[float]:
    b = [0.0] * 8
    for k in keys:
        b[k] = 1.0
    b[6] = dx / skip  # per tic
    b[7] = -dy / skip  # + dy looks down; the engine's + looks up
    return b


def start_episode(game) -> None:
    game.new_episode()
    for _ in range(8):  # turn deltas are ignored for the first 7 tics
        game.make_action([0.0] * 8)


def _frame(game, size) -> np.ndarray:
    f = game.get_state().screen_buffer
    if f.shape[:2] != size:
        from PIL import Image

        f = np.asarray(Image.fromarray(f).resize((size[1], size[0]), Image.BILINEAR))
    return np.ascontiguousarray(f)


def record_worker(worker: int, maps: list[str], frames: int, out: str, seed: int, height: int, width: int,
                  skip: int = 2, shard_frames: int = 512, episode_frames: int = 2048, counter=None,
                  compress: bool = False, mouse_rest: float = 0.0) -> int:
    """Record `frames` frames into whole shards under `out`; returns the frames written."""
    import vizdoom  # noqa: F401  (fail early in the worker too)

    rng = random.Random(seed * 1000 + worker)
    out_dir = Path(out)
    written, episode, shard_idx = 0, 0, 0
    game, cur_map = None, None
    size = (height, width)
    while written < frames:
        map_id = rng.choice(maps)
        if map_id != cur_map:
            if game is not None:
                game.close()
            game, _ = make_game(map_id, height, width, seed=rng.randrange(2**31))
            cur_map = map_id
        start_episode(game)
        policy = ExplorerPolicy(seed=rng.randrange(2**31), mouse_rest=mouse_rest)
        buf = {k: [] for k in ("frames", "keys", "mouse", "pose", "frame")}
        buf["frames"].append(_frame(game, size))
        buf["keys"].append(np.zeros(len(KEYS), np.uint8))
        buf["mouse"].append(np.zeros(2, np.float32))
        buf["pose"].append(engine_pose(game))
        buf["frame"].append(0)
        moved, n_ep = None, 1

        def flush():
            nonlocal shard_idx, written
            n = len(buf["frames"])
            if n == 0:
                return
            meta = {"map": cur_map, "fps": TICRATE / skip, "skip": skip, "height": height, "width": width,
                    "keys": list(KEYS), "policy_seed": policy.rng.random(), "worker": worker, "episode": episode,
                    "mouse_rest": mouse_rest,
                    "engine": "vizdoom 1.3.2", "pose": "x y z (map units), yaw (deg, ccw), pitch (deg, + up)"}
            shard = Shard(frames=np.stack(buf["frames"]), keys=np.stack(buf["keys"]), mouse=np.stack(buf["mouse"]),
                          pose=np.stack(buf["pose"]), episode=np.full(n, episode, np.int32),
                          frame=np.array(buf["frame"], np.int32), meta=meta)
            name = f"{cur_map.replace(':', '-')}_w{worker:02d}_s{seed}_{shard_idx:05d}.npz"
            write_shard(out_dir / name, shard, compress)
            shard_idx += 1
            written += n
            if counter is not None:
                with counter.get_lock():
                    counter.value += n
            for v in buf.values():
                v.clear()

        while n_ep < episode_frames and written + len(buf["frames"]) < frames:
            keys, dx, dy = policy.act(moved)
            prev = buf["pose"][-1] if buf["pose"] else engine_pose(game)
            game.make_action(to_buttons(keys, dx, dy, skip), skip)
            if game.is_episode_finished():  # e.g. died in a hazard
                break
            pose = engine_pose(game)
            moved = float(math.hypot(pose[0] - prev[0], pose[1] - prev[1]))
            hot = np.zeros(len(KEYS), np.uint8)
            hot[keys] = 1
            buf["frames"].append(_frame(game, size))
            buf["keys"].append(hot)
            buf["mouse"].append(np.array([dx, dy], np.float32))
            buf["pose"].append(pose)
            buf["frame"].append(n_ep)
            n_ep += 1
            if len(buf["frames"]) >= shard_frames:
                flush()
        flush()
        episode += 1
    if game is not None:
        game.close()
    return written


def record(out: str | Path, maps: list[str], frames: int, workers: int = 1, seed: int = 0, height: int = 128,
           width: int = 160, skip: int = 2, shard_frames: int = 512, progress=None, compress: bool = False,
           mouse_rest: float = 0.0) -> int:
    """Record with `workers` processes; `progress(done, total, fps)` is called as shards land;
    mouse_rest: the policy's share of spans with the mouse at rest (policy.py)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    per = [frames // workers + (1 if i < frames % workers else 0) for i in range(workers)]
    ctx = mp.get_context("spawn")  # a forked parent that imported vizdoom crashes its children
    counter = ctx.Value("q", 0)
    t0 = time.time()
    if workers == 1:
        import threading

        done = []
        th = threading.Thread(target=lambda: done.append(record_worker(
            0, maps, per[0], str(out), seed, height, width, skip, shard_frames, counter=counter, compress=compress,
            mouse_rest=mouse_rest)))
        th.start()
        while th.is_alive():
            th.join(0.2)
            if progress:
                progress(counter.value, frames, counter.value / max(time.time() - t0, 1e-6))
        return done[0] if done else counter.value
    procs = [ctx.Process(target=record_worker, args=(i, maps, per[i], str(out), seed, height, width, skip,
                                                      shard_frames, 2048, counter, compress, mouse_rest))
             for i in range(workers) if per[i] > 0]
    for p in procs:
        p.start()
    while any(p.is_alive() for p in procs):
        time.sleep(0.2)
        if progress:
            progress(counter.value, frames, counter.value / max(time.time() - t0, 1e-6))
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        raise RuntimeError(f"{len(bad)} recorder worker(s) failed (exit codes {bad})")
    return counter.value


def write_example_frame(map_id: str, out_png: str | Path, height: int = 128, width: int = 160, seed: int = 0,
                        walk: int = 20) -> Path:
    """One start frame from a map (a validation map for the shipped examples)."""
    from PIL import Image

    game, _ = make_game(map_id, height, width, seed=seed)
    start_episode(game)
    for _ in range(walk):
        game.make_action(to_buttons([0], 0.0, 0.0, 2), 2)
    Image.fromarray(_frame(game, (height, width))).save(out_png)
    game.close()
    return Path(out_png)

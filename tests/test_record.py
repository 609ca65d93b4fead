"""Recording real ViZDoom data: stored actions and poses against the engine, whole shards only."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from interworld.data import maps
from interworld.data.policy import ExplorerPolicy, has_full_circle
from interworld.data.shards import ClipDataset, list_shards, load_shard

vizdoom = pytest.importorskip("vizdoom", reason="pip install vizdoom==1.3.2 to record")

from interworld.data.vizdoom_rec import engine_pose, make_game, record, start_episode, to_buttons  # noqa: E402


def test_recorded_actions_and_poses_match_the_engine(tmp_path):
    n = record(tmp_path, ["freedoom2:MAP01"], 300, workers=1, seed=1, height=64, width=80, shard_frames=128,
               mouse_rest=0.3)
    shards = [load_shard(p) for p in list_shards(tmp_path)]
    assert n == 300 == sum(len(s) for s in shards)
    s = shards[0]
    assert s.frames.shape[1:] == (64, 80, 3) and s.frames.dtype == np.uint8
    assert s.keys.shape[1] == 6 and s.mouse.dtype == np.float32 and s.pose.shape[1] == 5
    assert s.meta["map"] == "freedoom2:MAP01" and s.meta["fps"] == 17.5 and s.meta["mouse_rest"] == 0.3
    # the policy, replayed with its seed, produced exactly the stored actions: check the yaw
    # the engine reports against the mouse we sent, frame by frame (dx > 0 turns right)
    for sh in shards:
        same_ep = sh.frame[1:] == sh.frame[:-1] + 1
        dyaw = (sh.pose[1:, 3] - sh.pose[:-1, 3] + 180) % 360 - 180
        assert np.abs(dyaw + sh.mouse[1:, 0])[same_ep].max() < 0.05
        dpitch = sh.pose[1:, 4] - sh.pose[:-1, 4]
        inside = same_ep & (np.abs(sh.pose[1:, 4]) < 31)  # away from the engine's clamp
        assert np.abs(dpitch + sh.mouse[1:, 1])[inside].max() < 0.05


def test_the_policy_can_rest_the_mouse_and_without_that_replays_as_before():
    """mouse_rest: whole key spans with the mouse still, pauses then truly still; 0 (the default)
    gives the very actions the policy gave before the option existed (the digest of seed 3's first
    3000 frames, taken from the policy as it was)."""
    import hashlib
    import json

    def run(n=6000, **kw):
        p = ExplorerPolicy(3, **kw)
        return [p.act(moved=1.0) for _ in range(n)]
    before = run(3000)
    assert hashlib.sha256(json.dumps(before).encode()).hexdigest()[:16] == "889c65f749ae4f46"
    assert run(3000, mouse_rest=0.0) == before
    still = lambda acts: np.array([dx == 0.0 and dy == 0.0 for _, dx, dy in acts])  # noqa: E731
    assert still(run()).mean() < 0.01  # without it the mouse rests only when stuck, never here
    acts = run(mouse_rest=0.4)
    s = still(acts)
    assert 0.2 < s.mean() < 0.6
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, s.astype(int), 0])))[::2]  # lengths of still runs
    assert np.median(runs) >= 8  # spans, not a flicker
    assert any(k == [] and ok for (k, _, _), ok in zip(acts, s))  # a pause stands truly still
    assert has_full_circle([dx for _, dx, _ in acts])  # the planned manoeuvres stay
    with pytest.raises(ValueError, match="mouse_rest"):
        ExplorerPolicy(0, mouse_rest=1.5)


def test_engine_conventions_turn_and_walk():
    game, _ = make_game("freedoom2:MAP01", 64, 80)
    start_episode(game)
    p0 = engine_pose(game)
    for _ in range(5):
        game.make_action(to_buttons([], 6.0, 0.0, 2), 2)
    p1 = engine_pose(game)
    assert (p0[3] - p1[3]) % 360 == pytest.approx(30.0, abs=0.05)  # 5 frames x 6 deg, to the right
    assert np.allclose(p0[:3], p1[:3])  # turning in place does not move
    for _ in range(6):
        game.make_action(to_buttons([0], 0.0, 0.0, 2), 2)  # hold W
    p2 = engine_pose(game)
    d = p2[:2] - p1[:2]
    heading = np.array([math.cos(math.radians(p1[3])), math.sin(math.radians(p1[3]))])
    assert np.linalg.norm(d) > 20 and float(d @ heading) / np.linalg.norm(d) > 0.99
    game.make_action(to_buttons([], 0.0, 3.0, 1), 1)  # + dy looks down: our pitch falls
    assert engine_pose(game)[4] == pytest.approx(p2[4] - 3.0, abs=0.05)
    game.close()


def test_killed_recorder_leaves_only_whole_shards(tmp_path):
    code = ("from interworld.data.vizdoom_rec import record; "
            f"record({str(tmp_path)!r}, ['freedoom2:MAP02'], 100000, workers=1, height=64, width=80, "
            "shard_frames=48)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        t0 = time.time()
        while len(list_shards(tmp_path)) < 2 and time.time() - t0 < 60:
            time.sleep(0.05)
        assert list_shards(tmp_path), "the recorder wrote no shard in 60 s"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for p in list_shards(tmp_path):  # every shard a reader sees is complete
        s = load_shard(p)
        assert len(s) == 48 and s.frames.shape[0] == s.keys.shape[0] == s.pose.shape[0]
    leftovers = [p.name for p in tmp_path.iterdir() if not p.name.endswith((".npz", ".npz.tmp"))]
    assert not leftovers


def test_clip_dataset_samples_aligned_clips(tmp_path):
    record(tmp_path, ["freedoom1:E1M1"], 200, workers=1, seed=2, height=64, width=80, shard_frames=100)
    ds = ClipDataset(tmp_path, length=9)
    b = ds.sample(4)
    assert b["frames"].shape == (4, 9, 64, 80, 3) and b["keys"].shape == (4, 9, 6) and b["pose"].shape == (4, 9, 5)
    assert (b["keys"][:, 0] == 0).all() and (b["mouse"][:, 0] == 0).all()  # frame 0 is given
    assert np.array_equal(ds.fixed(2, seed=5)["frames"], ds.fixed(2, seed=5)["frames"])
    with pytest.raises(ValueError, match="no shards"):
        ClipDataset(tmp_path, length=9, maps=["freedoom2:MAP05"])


def test_map_split():
    assert set(maps.TRAIN).isdisjoint(maps.VAL)
    assert set(maps.TRAIN + maps.VAL).isdisjoint(maps.RESERVED)
    assert len(maps.TRAIN) + len(maps.VAL) == 20 + 18 and len(maps.RESERVED) == 12 + 18
    assert maps.resolve("MAP01 E1M2") == ["freedoom2:MAP01", "freedoom1:E1M2"]
    assert maps.resolve(["val"]) == list(maps.VAL)
    for bad in ("MAP21", "freedoom1:E3M1", "E4M9"):
        with pytest.raises(ValueError, match="reserved"):
            maps.resolve([bad])
    assert maps.resolve(["MAP25"], allow_reserved=True) == ["freedoom2:MAP25"]
    with pytest.raises(ValueError, match="unknown map"):
        maps.resolve(["MAP99"])


def test_policy_is_deterministic_and_turns_full_circles():
    def run(seed, n=6000):
        p = ExplorerPolicy(seed)
        return [p.act(moved=1.0) for _ in range(n)]
    a, b = run(3), run(3)
    assert a == b and a != run(4)
    assert has_full_circle([m[1] for m in a])
    keys = [k for k, _, _ in a]
    assert sum(0 in k for k in keys) > 0.4 * len(keys)  # mostly walking forward
    assert any(k == [] for k in keys) and any(1 in k for k in keys)  # pauses and backing up

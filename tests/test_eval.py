"""interworld eval: metrics on known cases, engine replays, and a whole run on the tiny preset."""

import json

import numpy as np
import pytest
import torch

from interworld.eval.drift import drift_score
from interworld.eval.metrics import coarse_psnr, psnr, ssim
from interworld.eval.scripts import SCRIPTS, script


def _video(seed=0, t=6, h=32, w=40):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_identical_videos_are_perfect_and_noise_is_not():
    v = _video()
    assert np.isinf(psnr(v, v)).all()
    assert np.allclose(ssim(v, v), 1.0)
    noisy = np.clip(v.astype(int) + np.random.default_rng(1).integers(-20, 21, v.shape), 0, 255).astype(np.uint8)
    p = psnr(noisy, v)
    assert (p > 20).all() and (p < 30).all()  # +-20 uniform noise: about 22 dB
    assert (ssim(noisy, v) < 0.99).all() and (ssim(_video(2), v) < 0.1).all()


def test_coarse_psnr_judges_the_layout_not_the_texture():
    """A frame whose texture is a pixel off loses to a flat blur at full size, not at 1/4 size,
    and one with the wrong layout loses at both."""
    rng = np.random.default_rng(5)
    layout = np.kron(rng.integers(40, 216, (1, 8, 10, 3)), np.ones((1, 4, 4, 1)))  # 32x40 in 4x4 blocks
    texture = rng.integers(-30, 31, (1, 32, 42, 3))
    real = np.clip(layout + texture[:, :, :40], 0, 255).astype(np.uint8)
    shifted = np.clip(layout + texture[:, :, 2:], 0, 255).astype(np.uint8)  # the texture moved 2 pixels
    blur = np.clip(layout, 0, 255).astype(np.uint8)  # the mean: layout right, no texture
    wrong = np.clip(layout[:, ::-1] + texture[:, :, :40], 0, 255).astype(np.uint8)  # texture right, layout not
    assert psnr(blur, real)[0] > psnr(shifted, real)[0] + 2
    assert abs(coarse_psnr(blur, real)[0] - coarse_psnr(shifted, real)[0]) < 2
    assert coarse_psnr(shifted, real)[0] > coarse_psnr(wrong, real)[0] + 5
    assert np.isinf(coarse_psnr(real, real)).all()


def test_sharpness_at_quarter_size_keeps_edges_and_drops_pixel_texture():
    """A flat frame with the texture alone is as sharp as one with rooms at full size; at 1/4 size
    only the one with block edges stays sharp, and a blur of it (its layout) keeps that."""
    from interworld.eval.drift import sharpness
    rng = np.random.default_rng(6)
    layout = np.kron(rng.integers(40, 216, (2, 8, 10, 1)), np.ones((1, 4, 4, 3)))  # 32x40 in 4x4 blocks
    texture = rng.integers(-30, 31, (2, 32, 40, 1)) * np.ones((1, 1, 1, 3))
    rooms = np.clip(layout + texture, 0, 255).astype(np.uint8)
    haze = np.clip(128 + texture, 0, 255).astype(np.uint8)
    blur = layout.astype(np.uint8)
    assert sharpness(haze) > 0.4 * sharpness(rooms)  # full size: the texture is most of both
    assert sharpness(rooms, 4) > 50 * sharpness(haze, 4)
    assert np.isclose(sharpness(blur, 4), sharpness(rooms, 4), rtol=0.05)


def test_long_videos_are_measured_in_batches_with_the_same_result():
    a, b = _video(3, t=150), _video(4, t=150)  # more than two batches of frames
    assert np.array_equal(ssim(a, b), np.concatenate([ssim(a[i:i + 1], b[i:i + 1]) for i in range(150)]))
    assert np.array_equal(psnr(a, b), np.concatenate([psnr(a[i:i + 1], b[i:i + 1]) for i in range(150)]))


def test_drift_is_zero_for_a_stationary_video_and_sees_blur_and_colour():
    still = np.repeat(_video(t=1), 40, 0)
    d = drift_score(still, 10)
    assert d["drift"] == pytest.approx(0.0, abs=1e-9)
    blurred = still.copy()
    blurred[-10:] = (blurred[-10:].astype(float) * 0 + blurred[-10:].mean()).astype(np.uint8)  # flat grey end
    assert drift_score(blurred, 10)["sharpness_log_ratio"] < -5
    tinted = still.copy()
    tinted[-10:, ..., 0] = tinted[-10:, ..., 0] // 2  # red halves at the end
    dt = drift_score(tinted, 10)
    assert dt["colour_shift"] > 0.3 and dt["drift"] > 0.3


def test_scripts_are_well_formed():
    for name in SCRIPTS:
        k, m = script(name)
        assert k.shape[0] == m.shape[0] > 0 and k.shape[1] == 6
    k, m = script("turn_360")
    assert float(m[:, 0].sum()) == pytest.approx(360.0)
    with pytest.raises(ValueError, match="unknown script"):
        script("moonwalk")


vizdoom = pytest.importorskip("vizdoom", reason="pip install vizdoom==1.3.2 for engine replays")


def test_replay_follows_the_script_in_the_engine():
    from interworld.eval.replay import replay

    k, m = script("turn_left", 10)
    r = replay("freedoom2:MAP19", k, m, seed=3, warmup=20, height=32, width=40)
    assert r["frames"].shape == (11, 32, 40, 3) and r["pose"].shape == (11, 5)
    dyaw = (r["pose"][-1, 3] - r["pose"][0, 3] + 180) % 360 - 180
    assert dyaw == pytest.approx(30.0, abs=0.5)  # a left turn is counter-clockwise: yaw grows
    k, m = script("forward", 10)
    r = replay("freedoom2:MAP19", k, m, seed=3, warmup=20, height=32, width=40)
    assert np.hypot(*(r["pose"][-1, :2] - r["pose"][0, :2])) > 20  # it walked
    p = replay("freedoom2:MAP19", None, None, seed=3, warmup=20, height=32, width=40, policy_frames=12)
    q = replay("freedoom2:MAP19", p["keys"], p["mouse"], seed=3, warmup=20, height=32, width=40)
    assert np.array_equal(p["frames"], q["frames"])  # the policy's actions replay to the same frames
    # a player who leaves the mouse alone on half the spans (eval --mouse-rest); without it, never
    still = replay("freedoom2:MAP19", None, None, seed=3, warmup=20, height=32, width=40, policy_frames=200,
                   mouse_rest=0.5)
    rest = (still["mouse"].abs().sum(1) == 0).float().mean()
    assert 0.2 < rest < 0.8 and (p["mouse"].abs().sum(1) == 0).float().mean() == 0


def test_replays_survive_damaging_floors():
    """MAP19's exploring player with seed 0 walks into nukage and died within 500 frames, ending
    the episode (so --long evals gave up); replays now run in god mode."""
    from interworld.eval.replay import replay

    r = replay("freedoom2:MAP19", None, None, seed=0, height=32, width=40, policy_frames=600)
    assert r["frames"].shape == (601, 32, 40, 3)


def test_yaw_gain_tells_too_little_turning_from_noise():
    from interworld.eval.run import yaw_gain

    true = torch.tensor([10.0, -10.0, 20.0, -20.0])
    assert yaw_gain(0.5 * true, true) == pytest.approx(0.5)  # turns half as far
    noise = torch.tensor([4.0, 4.0, -2.0, -2.0])  # off by 2-4 degrees, as often too far as too short
    assert yaw_gain(true + noise, true) == pytest.approx(1.0)
    assert np.isnan(yaw_gain(torch.zeros(0), torch.zeros(0)))  # no turning window


def test_eval_writes_metrics_plots_strips_and_summary(tmp_path):
    from interworld.config import get_preset
    from interworld.engine.world import World
    from interworld.eval import run as ev

    # a tiny random model saved as a checkpoint folder, as users pass one
    from interworld.io.checkpoint import save_checkpoint

    w = World.from_config(get_preset("tiny"), seed=0)
    ck = save_checkpoint(tmp_path / "ck", w.cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder})
    from interworld.models.pose import PoseConfig, PoseNet
    from interworld.train.pose import save_pose

    pose = save_pose(tmp_path / "pose", PoseNet(PoseConfig(gap=2, height=16, width=20, width_mult=8)))
    out = tmp_path / "eval"
    seen = []
    res = ev.evaluate(ev.EvalArgs(out=str(out), maps=["freedoom2:MAP19"], checkpoint=str(ck), seconds=2.0,
                                  warmup=10, context_latents=2, tf_windows=2, pose_model=str(pose), camera="engine"),
                      progress=lambda d, n, what: seen.append((d, n)))
    assert seen[-1][0] == seen[-1][1] == 3
    s = res["summary"]
    for k in ("tf_psnr", "tf_repeat_psnr", "rollout_psnr", "repeat_last_rollout_psnr", "drift", "fps",
              "turn_360_engine_psnr", "turn_360_model_psnr", "out_and_back_model_psnr",
              "af_model_yaw_mae_deg", "af_estimator_on_real_yaw_mae_deg", "af_model_move_mae",
              "tf_sharpness", "rollout_sharpness", "engine_sharpness", "tf_real_sharpness",
              "rollout_coarse_sharpness", "engine_coarse_sharpness"):
        assert k in s and np.isfinite(s[k]), k
    assert s["engine_sharpness"] > 0 and "| rollout sharpness (engine's frames:" in (out / "summary.md").read_text()
    assert s["engine_coarse_sharpness"] > 0 and "| rollout sharpness at 1/4 size" in (out / "summary.md").read_text()
    # teacher forcing frame by frame: one value per frame of the predicted chunk, averaging to the whole's
    cfg = w.cfg
    ahead = (cfg.chunk_latents if cfg.scheme == "causal" else cfg.new_latents) * cfg.vae.temporal
    for by, whole in (("tf_psnr_by_frame", "tf_psnr"), ("tf_repeat_psnr_by_frame", "tf_repeat_psnr")):
        assert len(s[by]) == ahead and np.mean(s[by]) == pytest.approx(s[whole]), by
    assert "PSNR by frames ahead (dB): model 1: " in (out / "summary.md").read_text()
    assert s["fps"] > 0 and s["turn_360_engine_psnr"] > 20  # the engine comes back to (nearly) the same view
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["cases"][0]["rollout"]["psnr_per_s"]) == 2 and m["complete"] is True
    for f in ("summary.md", "psnr_over_time.png", "drift_sharpness.png", "strip_freedoom2-MAP19_s0.png"):
        assert (out / f).stat().st_size > 0, f
    assert "| rollout PSNR (dB) |" in (out / "summary.md").read_text()
    assert "action following: yaw error" in (out / "summary.md").read_text()
    assert "camera poses from the engine" in (out / "summary.md").read_text()  # the other tests: from the actions
    assert s["camera_displacement_error"] < 1e-3 < s["engine_displacement"]  # given the engine's own poses

    floor = ev.evaluate(ev.EvalArgs(out=str(tmp_path / "floor"), maps=["freedoom2:MAP19"], baseline="repeat-last",
                                    checkpoint=str(ck), seconds=2.0, warmup=10, context_latents=2, tf_windows=2,
                                    revisits=False))
    assert "rollout_psnr" not in floor["summary"] and "tf_psnr" not in floor["summary"]
    assert floor["summary"]["tf_repeat_psnr"] == pytest.approx(s["tf_repeat_psnr"])  # the same floor, no model
    assert floor["summary"]["repeat_last_rollout_psnr"] == pytest.approx(s["repeat_last_rollout_psnr"])


def test_an_eval_stopped_early_leaves_its_finished_cases(tmp_path):
    from interworld.config import get_preset
    from interworld.engine.world import World
    from interworld.eval import run as ev
    from interworld.io.checkpoint import save_checkpoint

    w = World.from_config(get_preset("tiny"), seed=0)
    ck = save_checkpoint(tmp_path / "ck", w.cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder})

    def stop_after_first(done, total, what):  # as a lease's time limit or Ctrl-C would, mid-run
        if done == 1:
            raise KeyboardInterrupt

    out = tmp_path / "eval"
    with pytest.raises(KeyboardInterrupt):
        ev.evaluate(ev.EvalArgs(out=str(out), maps=["freedoom2:MAP19"], checkpoint=str(ck), cases=2, seconds=1.0,
                                warmup=10, context_latents=2, tf_windows=1, revisits=False), progress=stop_after_first)
    m = json.loads((out / "metrics.json").read_text())
    assert m["complete"] is False and len(m["cases"]) == 1 and np.isfinite(m["summary"]["rollout_psnr"])
    assert not (out / "metrics.json.tmp").exists() and not (out / "summary.md").exists()


def test_eval_teacher_forces_after_as_many_real_latents_as_asked(tmp_path):
    from interworld.cli.main import main
    from interworld.config import get_preset
    from interworld.engine.world import World
    from interworld.io.checkpoint import save_checkpoint

    w = World.from_config(get_preset("tiny"), seed=0)
    ck = save_checkpoint(tmp_path / "ck", w.cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder})
    common = ["eval", "--checkpoint", str(ck), "--maps", "freedoom2:MAP19", "--no-revisits", "--quiet",
              "--seconds", "1"]
    assert main(common + ["--out", str(tmp_path / "c0"), "--context-latents", "0"]) == 2
    assert main(common + ["--out", str(tmp_path / "c1"), "--context-latents", "1"]) == 0
    m = json.loads((tmp_path / "c1" / "metrics.json").read_text())
    assert m["setup"]["context_latents"] == 1 and np.isfinite(m["summary"]["tf_psnr"])
    md = (tmp_path / "c1" / "summary.md").read_text()
    assert "| teacher-forced next chunk after 1 real latents, PSNR (dB) |" in md


def test_batched_rollouts_are_the_single_rollouts_item_by_item():
    from interworld.config import get_preset
    from interworld.engine.world import World
    from interworld.eval.rollout import rollout, rollouts

    w = World.from_config(get_preset("tiny"), seed=0)
    r = np.random.default_rng(0)
    a, b = ((r.random((32, 32, 3)) * 255).astype(np.uint8) for _ in range(2))
    T = 3 * 4 + 2  # the last chunk is cut short and held, as `rollout` does
    ka, kb = (torch.from_numpy(r.integers(0, 2, (T, 6))).float() for _ in range(2))
    ma, mb = (torch.from_numpy(r.normal(size=(T, 2)) * 10).float() for _ in range(2))
    one = rollout(w, a, ka, ma, "x", seed=3)["frames"]
    player = [w.reset(a, "x", seed=3)]  # a batch of one is what a player gets from reset and step
    while sum(len(f) for f in player) < T + 1:
        done = sum(len(f) for f in player) - 1
        player.append(w.step((ka[done:done + w.frames_per_step], ma[done:done + w.frames_per_step])))
    assert np.array_equal(np.concatenate(player)[: T + 1], one)
    both = rollouts(w, [a, b], [ka, kb], [ma, mb], "x", seed=[3, 4])
    assert both[0]["frames"].shape == both[1]["frames"].shape == one.shape == (T + 1, 32, 32, 3)
    # with a seed per item, item i of a batch is its rollout alone with its seed: neither the other
    # item's actions nor the batch it runs in reach it (eval's cases score the same at any --batch)
    alone = [one, rollout(w, b, kb, mb, "x", seed=4)["frames"]]
    for i in range(2):
        assert np.abs(both[i]["frames"].astype(int) - alone[i].astype(int)).max() <= 1, i
    swapped = rollouts(w, [b, a], [kb, ka], [mb, ma], "x", seed=[4, 3])
    assert np.abs(swapped[1]["frames"].astype(int) - one.astype(int)).max() <= 1
    # one seed for the batch: one draw for all, so an item's noise depends on its batch
    shared = rollouts(w, [a, b], [ka, kb], [ma, mb], "x", seed=3)
    assert np.abs(shared[1]["frames"].astype(int) - alone[1].astype(int)).max() > 1
    with pytest.raises(ValueError, match="3 seeds for a batch of 2"):
        rollouts(w, [a, b], [ka, kb], [ma, mb], "x", seed=[1, 2, 3])
    with pytest.raises(ValueError, match="same length"):
        rollouts(w, [a, b], [ka, kb[:5]], [ma, mb[:5]])


def test_eval_batches_the_rollouts_of_several_cases(tmp_path):
    from interworld.cli.main import main
    from interworld.config import get_preset
    from interworld.engine.world import World
    from interworld.io.checkpoint import save_checkpoint

    w = World.from_config(get_preset("tiny"), seed=0)
    ck = save_checkpoint(tmp_path / "ck", w.cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder})
    common = ["eval", "--checkpoint", str(ck), "--maps", "freedoom2:MAP19", "--no-revisits", "--quiet",
              "--seconds", "1", "--cases", "2"]
    assert main(common + ["--out", str(tmp_path / "b0"), "--batch", "0"]) == 2
    assert main(common + ["--out", str(tmp_path / "b2"), "--batch", "2"]) == 0
    m = json.loads((tmp_path / "b2" / "metrics.json").read_text())
    assert [c["seed"] for c in m["cases"]] == [0, 1] and all(c["speed"]["streams"] == 2 for c in m["cases"])
    assert all(np.isfinite(c["rollout"]["psnr"]) for c in m["cases"]) and m["complete"] is True
    # each case draws its own noise: one at a time it scores as in the batch (to float rounding)
    assert main(common + ["--out", str(tmp_path / "b1"), "--batch", "1"]) == 0
    m1 = json.loads((tmp_path / "b1" / "metrics.json").read_text())
    assert m["setup"]["noise"] == "per case"
    for c1, c2 in zip(m1["cases"], m["cases"]):  # one draw for the batch differed by 2e-3 dB and 1e-2 here
        r1, r2 = c1["rollout"], c2["rollout"]
        assert abs(r1["psnr"] - r2["psnr"]) < 2e-4 and abs(r1["sharpness"] / r2["sharpness"] - 1) < 2e-4, (r1, r2)
        assert c1["camera"] == pytest.approx(c2["camera"])  # each case's own poses, batched or not
    # the fixed kinematics against the engine's momentum and walls: an error, on the engine's scale
    assert all(0 < c["camera"]["displacement_error"] < 10 * c["camera"]["engine_displacement"] for c in m["cases"])

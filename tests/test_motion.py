"""The learned action-to-motion model: targets, integration, training on engine poses, use in streams."""

import numpy as np
import pytest
import torch

from interworld.config import Kinematics, get_preset
from interworld.models.camera import integrate_poses
from interworld.models.motion import MotionModel, motion_targets, to_heading, to_world


def test_heading_frames_and_targets():
    d = torch.tensor([[3.0, 4.0]])
    assert torch.allclose(to_world(to_heading(d, torch.tensor([30.0])), torch.tensor([30.0])), d, atol=1e-5)
    assert torch.allclose(to_heading(torch.tensor([[0.0, 5.0]]), torch.tensor([90.0])), torch.tensor([[5.0, 0.0]]),
                          atol=1e-5)  # facing +y, moving +y is forward
    pose = torch.tensor([[0, 0, 0, 90, 0], [0, 2, 0, 90, 0], [0, 5, 0, 90, 0.0]])
    prev, cur = motion_targets(pose)
    assert torch.allclose(prev, torch.tensor([[2.0, 0.0]]), atol=1e-5) and torch.allclose(cur, torch.tensor([[3.0, 0.0]]), atol=1e-5)


def test_integrate_turns_like_the_kinematics_and_carries_momentum():
    kin = Kinematics()
    m = MotionModel()
    with torch.no_grad():  # a hand-set model: displacement = 0.5 * previous + 8 * forward key
        for p in m.parameters():
            p.zero_()
    m.forward = lambda keys, prev: 0.5 * prev + torch.stack([keys[..., 0] * 8.0, torch.zeros_like(keys[..., 0])], -1)
    keys = torch.zeros(6, 6)
    keys[:3, 0] = 1
    mouse = torch.tensor([[10.0, 0.0]] * 6)
    poses, v = MotionModel.integrate(m, torch.zeros(5), keys, mouse, kin)
    ref = integrate_poses(torch.zeros(5), keys, mouse, kin)
    assert torch.allclose(poses[:, 3:], ref[:, 3:])  # yaw and pitch: exactly the mouse
    steps = (poses[1:, :2] - poses[:-1, :2]).norm(dim=1)
    assert steps[2] > steps[3] > steps[4] > 0  # keys released at frame 3: it slides on, slowing down
    assert float(v.norm()) == pytest.approx(float((poses[-1, :2] - poses[-2, :2]).norm()), rel=1e-5)


def test_trained_on_engine_frames_it_beats_the_fixed_kinematics_and_streams(tmp_path):
    pytest.importorskip("vizdoom", reason="pip install vizdoom==1.3.2 to record frames")
    from interworld.data.vizdoom_rec import record
    from interworld.engine.world import World
    from interworld.io.checkpoint import save_checkpoint
    from interworld.train.motion import save_motion, train_motion

    record(tmp_path / "d", ["freedoom2:MAP01", "freedoom2:MAP03"], 3000, workers=1, seed=0, height=16, width=16)
    record(tmp_path / "d" / "val", ["freedoom2:MAP19"], 1500, workers=1, seed=1, height=16, width=16)
    kin = Kinematics(move_step=16.0, strafe_step=15.0)
    model, rep = train_motion(str(tmp_path / "d"), steps=600, kin=kin, horizon=16)
    assert rep["cases"] > 10 and rep["learned_error"] < rep["kinematics_error"], rep

    cfg = get_preset("tiny")
    w = World.from_config(cfg, seed=0)
    ck = save_checkpoint(tmp_path / "ck", cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder})
    save_motion(model, ck, rep)
    w2 = World.from_pretrained(str(ck))
    assert w2.motion is not None
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    w2.reset(img, "x")
    n = w2.frames_per_step
    w2.step([{"keys": ["w"]}] * n)
    moved = w2.gen.poses[0, -1, :2].norm()
    assert moved > 0 and w2.gen.velocity[0] is not None  # the learned model drove the camera poses


@pytest.mark.parametrize("scheme", ["causal", "segment"])
def test_given_camera_poses_replace_the_integrated_ones(scheme):
    # `eval --camera engine`: the engine's poses in place of those integrated from the actions
    from interworld.engine.world import World
    from interworld.eval.rollout import rollout

    cfg = get_preset("tiny")
    w = World.from_config(cfg, seed=0, scheme=scheme)
    torch.manual_seed(0)
    with torch.no_grad():  # the camera layers start at zero (a base model starts unchanged): wake them
        for name, p in w.dit.named_parameters():
            if ".cam_" in name:
                p.normal_(0, 0.2)
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    T = 13  # not a whole number of chunks: the last one runs past the script
    keys = torch.zeros(T, 6)
    keys[:, 0] = 1
    mouse = torch.zeros(T, 2)
    start = torch.tensor([5.0, -3.0, 0.0, 0.0, 0.0])  # walking along x: poses exact in float32 and float64
    kin = torch.cat([start[None], integrate_poses(start, keys, mouse, cfg.kinematics)])
    # the poses the model would have integrated give the same frames (12: whole chunks, as past the
    # script's end the actions walk on where the given camera stays put)
    plain = rollout(w, img, keys[:12], mouse[:12], "x", seed=3, pose=start)
    same = rollout(w, img, keys[:12], mouse[:12], "x", seed=3, camera=kin[:13])
    assert np.array_equal(plain["frames"], same["frames"])
    latent_poses = kin[cfg.vae.temporal:13:cfg.vae.temporal]  # each latent's last frame
    assert torch.equal(w.gen.poses[0, 1:], latent_poses)
    still = kin.clone()
    still[:, :3] = start[:3]  # the engine's player stuck at a wall
    stuck = rollout(w, img, keys, mouse, "x", seed=3, camera=still)
    assert stuck["frames"].shape == (T + 1, 32, 32, 3)
    assert not np.array_equal(plain["frames"], stuck["frames"][:13])
    assert torch.equal(w.gen.poses[0], start.expand(w.gen.poses.shape[1], 5))
    with pytest.raises(ValueError, match="camera poses"):
        w.reset(img, "x")
        w.gen.next_chunk(keys[:w.frames_per_step], mouse[:w.frames_per_step], torch.zeros(1, 5))

"""The pose estimator of `interworld eval`: motion targets, training on engine frames, yaw sign."""

import numpy as np
import pytest
import torch

from interworld.models.pose import PoseConfig, relative_motion

pytest.importorskip("vizdoom", reason="pip install vizdoom==1.3.2 to record frames")


def test_relative_motion_in_the_first_frames_heading():
    a = torch.tensor([[0.0, 0.0, 0.0, 90.0, 0.0]])  # facing +y
    b = torch.tensor([[0.0, 10.0, 0.0, 100.0, 0.0]])  # 10 ahead, turned 10 degrees left
    assert torch.allclose(relative_motion(a, b), torch.tensor([[10.0, 10.0, 0.0]]), atol=1e-5)
    b = torch.tensor([[-10.0, 0.0, 0.0, 350.0 + 90 - 360, 0.0]])  # 10 to the left, turned 10 right
    assert torch.allclose(relative_motion(a, b), torch.tensor([[-10.0, 0.0, 10.0]]), atol=1e-5)


def test_trained_estimator_gets_the_yaw_sign_of_turns_and_shifted_images(tmp_path):
    from interworld.data.vizdoom_rec import record
    from interworld.eval.replay import replay
    from interworld.eval.scripts import script
    from interworld.train.pose import load_pose, train_pose

    record(tmp_path / "d", ["freedoom2:MAP01", "freedoom2:MAP02"], 1600, workers=1, seed=0, height=32, width=40,
           shard_frames=400)
    cfg = PoseConfig(gap=2, height=32, width=40, width_mult=16)
    out = train_pose(str(tmp_path / "d"), str(tmp_path / "pose"), steps=800, batch=32, lr=2e-3, cfg=cfg,
                     device="cpu", log_every=50)
    net = load_pose(out)
    assert net.cfg.gap == 2

    # turns on a validation map it never saw
    for name, sign in (("turn_left", 1), ("turn_right", -1)):
        k, m = script(name, 12)
        r = replay("freedoom2:MAP19", k, m, seed=2, warmup=0, height=32, width=40)  # no momentum: a pure turn
        est = net.along(r["frames"])
        assert (torch.sign(est[:, 0]) == sign).float().mean() >= 0.8, (name, est[:, 0])

    # an image shifted right (edge column repeated) is the camera turning left: yaw grows
    k, m = script("stand", 1)
    a = replay("freedoom2:MAP19", k, m, seed=2, warmup=0, height=32, width=40)["frames"][0]
    b = np.concatenate([np.repeat(a[:, :1], 3, 1), a[:, :-3]], 1)  # 3 px is about a 6-degree turn here
    ta, tb = torch.from_numpy(a)[None], torch.from_numpy(np.ascontiguousarray(b))[None]
    with torch.no_grad():
        assert net(ta, tb)[0, 0] > 0 and net(tb, ta)[0, 0] < 0

"""`interworld train motion`: the action-to-motion model (models/motion.py) from engine poses.

Fitted on every frame of the training maps' shards, teacher-forced on the engine's previous
displacement; judged on the validation maps by free rollouts from actions alone: the mean
position error after `horizon` frames, beside the fixed kinematics' error on the same
rollouts. The model is stored as `motion.*` tensors, alone or added to a world checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from interworld.config import Kinematics
from interworld.data.maps import TRAIN, VAL
from interworld.data.shards import list_shards, load_shard
from interworld.models.camera import integrate_poses
from interworld.models.motion import MotionModel, motion_targets


def _shards(folder, maps):
    return [s for s in (load_shard(p) for p in list_shards(folder)) if s.meta.get("map") in maps and len(s) > 3]


def _episodes(shard):
    """Runs of consecutive frames of one episode (an episode's first frame has no action)."""
    start = 0
    for j in range(1, len(shard) + 1):
        if j == len(shard) or shard.frame[j] != shard.frame[j - 1] + 1:
            yield slice(start, j)
            start = j


def _pairs(shards):
    keys, prev, target = [], [], []
    for s in shards:
        for sl in _episodes(s):
            pose = torch.from_numpy(s.pose[sl]).double()
            if len(pose) < 3:
                continue
            p, t = motion_targets(pose)
            keys.append(torch.from_numpy(s.keys[sl][2:]).float())
            prev.append(p.float())
            target.append(t.float())
    return torch.cat(keys), torch.cat(prev), torch.cat(target)


@torch.no_grad()
def rollout_errors(model: MotionModel, shards, kin: Kinematics, horizon: int = 32, max_cases: int = 200) -> dict:
    """Mean position error (map units) after `horizon` frames from rest-or-moving starts, from the
    actions alone: the learned model (given the engine's displacement into the start frame) and
    the fixed kinematics."""
    errs_m, errs_k = [], []
    for s in shards:
        for sl in _episodes(s):
            pose = torch.from_numpy(s.pose[sl]).float()
            keys, mouse = torch.from_numpy(s.keys[sl]).float(), torch.from_numpy(s.mouse[sl]).float()
            for a in range(1, len(pose) - horizon, horizon):
                if len(errs_m) >= max_cases:
                    break
                v0 = pose[a, :2] - pose[a - 1, :2]
                pm, _ = model.integrate(pose[a], keys[a + 1:a + 1 + horizon], mouse[a + 1:a + 1 + horizon], kin, v0)
                pk = integrate_poses(pose[a], keys[a + 1:a + 1 + horizon], mouse[a + 1:a + 1 + horizon], kin)
                true = pose[a + horizon, :2]
                errs_m.append(float((pm[-1, :2] - true).norm()))
                errs_k.append(float((pk[-1, :2] - true).norm()))
    n = max(1, len(errs_m))
    return {"learned_error": sum(errs_m) / n, "kinematics_error": sum(errs_k) / n, "cases": len(errs_m),
            "horizon_frames": horizon}


def train_motion(data: str, steps: int = 3000, lr: float = 3e-3, seed: int = 0, kin: Kinematics | None = None,
                 horizon: int = 32) -> tuple[MotionModel, dict]:
    torch.manual_seed(seed)
    kin = kin or Kinematics(move_step=16.0, strafe_step=15.0)
    keys, prev, target = _pairs(_shards(data, TRAIN))
    model = MotionModel(n_keys=keys.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for i in range(steps):
        idx = torch.randint(len(keys), (min(4096, len(keys)),), generator=g)
        loss = torch.nn.functional.smooth_l1_loss(model(keys[idx], prev[idx]) / model.SCALE, target[idx] / model.SCALE)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    val = _shards(data, VAL)
    report = {"train_frames": len(keys), "final_loss": float(loss.detach())}
    if val:
        report.update(rollout_errors(model, val, kin, horizon))
    return model, report


def save_motion(model: MotionModel, path: str | Path, report: dict) -> Path:
    """Into a world checkpoint folder (as motion.* tensors beside the others) or a folder of its own."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    w = path / "model.safetensors"
    tensors = load_file(str(w)) if w.is_file() else {}
    tensors = {k: v for k, v in tensors.items() if not k.startswith("motion.")}
    tensors.update({f"motion.{k}": v.detach().contiguous() for k, v in model.state_dict().items()})
    tmp = path / "model.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, w)
    meta_p = path / "config.json"
    meta = json.loads(meta_p.read_text()) if meta_p.is_file() else {}
    meta["motion"] = report
    tmp = path / "config.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, meta_p)
    return path

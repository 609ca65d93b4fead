"""`interworld train pose`: the pose estimator of the evaluation, on engine frames.

Pairs of frames `gap` apart from recorded shards (training maps), with the true relative
motion from the engine's poses as the target; validation on the validation maps. A
checkpoint is a folder with pose.json and pose.safetensors, written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from interworld.data.maps import TRAIN, VAL
from interworld.data.shards import ClipDataset
from interworld.models.pose import PoseConfig, PoseNet, move_error, relative_motion, yaw_error
from interworld.train import common


def _pairs(b: dict):
    """Clips of gap + 1 frames -> (first frames, last frames, true relative motion)."""
    f, p = b["frames"], b["pose"]
    return f[:, 0], f[:, -1], relative_motion(p[:, 0].double(), p[:, -1].double()).float()


def save_pose(path: str | Path, net: PoseNet, extra: dict | None = None) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / "pose.safetensors.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    os.replace(tmp, path / "pose.safetensors")
    tmp = path / "pose.json.tmp"
    tmp.write_text(json.dumps({"pose": net.cfg.to_dict(), **(extra or {})}, indent=2))
    os.replace(tmp, path / "pose.json")
    return path


def load_pose(path: str | Path, device="cpu") -> PoseNet:
    path = Path(path)
    if not (path / "pose.json").is_file():
        raise FileNotFoundError(f"{str(path)!r} is not a pose estimator: no pose.json (train one with "
                                f"`interworld train pose`)")
    net = PoseNet(PoseConfig(**json.loads((path / "pose.json").read_text())["pose"]))
    net.load_state_dict(load_file(str(path / "pose.safetensors")))
    return net.to(device).eval()


@torch.no_grad()
def validate(net: PoseNet, val: ClipDataset, device, n: int = 256) -> dict:
    a, b, t = _pairs(val.fixed(n, seed=1))
    net.eval()
    est = torch.cat([net(a[i:i + 64].to(device), b[i:i + 64].to(device)).cpu() for i in range(0, n, 64)])
    net.train()
    return {"val_yaw_mae_deg": yaw_error(est, t), "val_move_mae": move_error(est, t),
            "val_yaw_mae_zero_deg": yaw_error(torch.zeros_like(t), t)}


def train_pose(data: str, out: str, steps: int = 2000, batch: int = 64, lr: float = 1e-3, gap: int = 4,
               time_limit: float | None = None, device: str | None = None, seed: int = 0,
               log_every: int = 50, progress=None, cfg: PoseConfig | None = None) -> Path:
    budget = common.Budget(time_limit, margin=5.0)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    cfg = cfg or PoseConfig(gap=gap)
    ds = ClipDataset(data, cfg.gap + 1, maps=list(TRAIN), seed=seed)
    try:
        val = ClipDataset(data, cfg.gap + 1, maps=list(VAL), seed=seed)
    except ValueError:
        val = None
    net = PoseNet(cfg).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    log = common.Logger(run)
    step = 0
    while step < steps and not budget.done():
        a, b, t = _pairs(ds.sample(batch))
        flip = torch.rand(batch) < 0.5  # mirrored pairs: a left turn becomes a right one, doubling the data
        a, b = torch.where(flip[:, None, None, None], a.flip(2), a), torch.where(flip[:, None, None, None], b.flip(2), b)
        t = torch.where(flip[:, None], t * torch.tensor([-1.0, 1.0, -1.0]), t)
        for g in opt.param_groups:
            g["lr"] = common.cosine_lr(step, lr, 100, steps)
        loss = net.loss(a.to(dev), b.to(dev), t.to(dev))
        step = common.simple_step(opt, loss, step, log, log_every, steps, progress)
    metrics = validate(net, val, dev) if val is not None else {}
    log.log(step, **metrics)
    return save_pose(run, net, {"step": step, "train_frames": ds.frames, **metrics})

"""Does the DiT use the motion it is given, or only blur? Teacher forcing on clips deep in a
stream (as turn_diag.py), against two floors: the last real frame repeated, and the last real
frame turned by the engine's own yaw change (Doom draws column x at angle atan((x - cx) / f), with
f = half the width / tan(fov / 2)). Both are scored on the whole frame and on the part the last
real frame saw: above the weapon, off the strip a turn reveals (1.37 pixels a degree at 160 wide,
measured on the engine's frames). A model below the turned frame there fails at copying what it
could see; above it, what it lacks is elsewhere (docs/TRAINING.md, run 27).

    python scripts/shift_diag.py DATA MODEL [--batches 16] [--maps freedoom2:MAP19,freedoom2:MAP20]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F

from interworld.data.maps import VAL
from interworld.data.shards import ClipDataset
from interworld.engine.world import World, to_uint8
from interworld.eval.metrics import psnr
from interworld.train.fit import lead_clip_frames, split_lead
from interworld.train.world import teacher_forced_prediction

CONTEXT = 7  # real latents before the chunk, as `interworld eval`'s teacher forcing
WEAPON_ROW = 90  # of 128: the weapon and its bob below


def turned(frame: np.ndarray, dyaw: float, fov: float) -> np.ndarray:
    """frame [H, W, 3] uint8 as seen after turning dyaw degrees (positive: left), rows unchanged,
    the revealed strip filled with the edge's columns."""
    h, w = frame.shape[:2]
    f = 0.5 * w / math.tan(math.radians(fov) / 2)
    x = torch.arange(w, dtype=torch.float64) + 0.5 - w / 2
    src = f * torch.tan((torch.atan(x / f) - math.radians(dyaw)).clamp(-1.5, 1.5))  # where each column was
    grid = torch.stack([(src / (w / 2)).float()[None].expand(h, w),
                        torch.linspace(-1 + 1 / h, 1 - 1 / h, h)[:, None].expand(h, w)], -1)
    t = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    out = F.grid_sample(t, grid[None], mode="bilinear", padding_mode="border", align_corners=False)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def seen_psnr(v: np.ndarray, real: np.ndarray, dyaw: np.ndarray) -> float:
    """Mean PSNR over frames of the part the frame before them saw (see the module's doc)."""
    out = []
    for j in range(len(v)):
        px = int(round(1.37 * abs(dyaw[j]))) + 2
        cols = slice(px, None) if dyaw[j] > 0 else slice(0, v.shape[2] - px)
        e = ((v[j, :WEAPON_ROW, cols].astype(float) - real[j, :WEAPON_ROW, cols].astype(float)) ** 2).mean()
        out.append(10 * math.log10(255**2 / max(e, 1e-6)))
    return float(np.mean(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("model")
    ap.add_argument("--batches", type=int, default=16, help="batches of 8 clips")
    ap.add_argument("--maps", default=",".join(VAL), help="comma-separated map ids (default: the validation maps)")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    world = World.from_pretrained(a.model, device=a.device)
    cfg, tr = world.cfg, world.cfg.vae.temporal
    clips = ClipDataset(a.data, lead_clip_frames(cfg, CONTEXT), maps=a.maps.split(","), seed=0)
    last = (CONTEXT - 1) * tr  # the last real frame, within the clip
    rows = []  # per clip: |turn|, distance walked, then whole-frame and seen-part PSNR of model, repeat, turned
    for s in range(a.batches):
        batch, lead = split_lead(clips.fixed(8, seed=100 + s), cfg)
        with torch.no_grad():
            pred, _ = teacher_forced_prediction(world.dit, world.vae, world.text_encoder, batch, cfg, world.scheme,
                                                world.device, context_latents=CONTEXT, steps=cfg.steps, lead=lead)
        for i in range(len(batch.frames)):
            fr, pose = batch.frames[i].numpy(), batch.pose[i].double().numpy()
            p = to_uint8(pred[i:i + 1])
            real = fr[last + 1:last + 1 + len(p)]
            dy = (pose[last + 1:last + 1 + len(p), 3] - pose[last, 3] + 180) % 360 - 180
            rep = np.repeat(fr[last][None], len(p), 0)
            turn = np.stack([turned(fr[last], d, cfg.kinematics.fov) for d in dy])
            walked = float(np.hypot(*(pose[last + len(p), :2] - pose[last, :2])))
            rows.append([abs(dy[-1]), walked] + [psnr(v, real).mean() for v in (p, rep, turn)]
                        + [seen_psnr(v, real, dy) for v in (p, rep, turn)])
    r = np.array(rows)
    groups = {"all": np.ones(len(r), bool), "turning > 5 deg, walked < 8": (r[:, 0] > 5) & (r[:, 1] < 8),
              "turning > 10 deg": r[:, 0] > 10, "walking > 8, turning < 2 deg": (r[:, 1] > 8) & (r[:, 0] < 2)}
    for name, m in groups.items():
        if m.any():
            w, s = r[m, 2:5].mean(0), r[m, 5:8].mean(0)
            print(f"{name} ({m.sum()} clips): whole frame model {w[0]:.2f} repeat {w[1]:.2f} turned {w[2]:.2f} dB; "
                  f"seen part model {s[0]:.2f} repeat {s[1]:.2f} turned {s[2]:.2f} dB", flush=True)


if __name__ == "__main__":
    main()

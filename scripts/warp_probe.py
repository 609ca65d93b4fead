"""How far moving the last frame's pixels can go when the flow is learned (plan item 8 of
docs/TRAINING.md): a small CNN sees the last real frame and the next frames' keys and mouse, and
predicts one flow field per next frame; the predicted frames are the last frame warped by them
(no new content, nothing generated). Trained with L1 on recorded shards, it is scored on the same
validation windows as scripts/next_chunk_diag.py, by frames ahead, beside repeat-last. If such a
warp comes near the world model's own teacher-forced figures, a DiT that warps and then refines
is worth a lease; if it stays near repeat-last, it is not.

    python scripts/warp_probe.py TRAIN_SHARDS VAL_SHARDS [--seconds 900] [--ahead 4] [--out probe.pt]
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from interworld.data.shards import list_shards, load_shard
from interworld.eval.metrics import psnr

_spec = importlib.util.spec_from_file_location("next_chunk_diag", Path(__file__).with_name("next_chunk_diag.py"))
diag = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diag)


class FlowNet(nn.Module):
    """last frame [B, 3, H, W] in [0, 1] and actions [B, ahead * A] -> flows [B, ahead, 2, H, W] in
    pixels. A three-level encoder-decoder; the actions join at every level as channels. The last
    layer starts at zero, so an untrained net repeats the last frame."""

    def __init__(self, actions: int, ahead: int, width: int = 32):
        super().__init__()
        c = (width, 2 * width, 3 * width)
        self.ahead = ahead
        self.down = nn.ModuleList([nn.Conv2d(3 + actions, c[0], 3, 2, 1), nn.Conv2d(c[0] + actions, c[1], 3, 2, 1),
                                   nn.Conv2d(c[1] + actions, c[2], 3, 2, 1)])
        self.mid = nn.Sequential(nn.Conv2d(c[2], c[2], 3, 1, 1), nn.GELU(), nn.Conv2d(c[2], c[2], 3, 1, 1))
        self.up = nn.ModuleList([nn.Conv2d(c[2] + c[1], c[1], 3, 1, 1), nn.Conv2d(c[1] + c[0], c[0], 3, 1, 1),
                                 nn.Conv2d(c[0] + 3, c[0], 3, 1, 1)])
        self.head = nn.Conv2d(c[0], 2 * ahead, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, frame: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        def with_actions(x):
            return torch.cat([x, actions[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        skips, x = [frame], frame
        for conv in self.down:
            x = F.gelu(conv(with_actions(x)))
            skips.append(x)
        x = x + self.mid(x)
        for conv, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = F.gelu(conv(torch.cat([x, skip], 1)))
        b, _, h, w = frame.shape
        return self.head(x).reshape(b, self.ahead, 2, h, w)


def warp(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """frame [B, 3, H, W] moved by each flow [B, K, 2, H, W] (pixels; each output pixel is read
    from where the flow points back to, edges repeated) -> [B, K, 3, H, W]."""
    b, k, _, h, w = flow.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype), indexing="ij")
    gx = (xs + 0.5 + flow[:, :, 0]) / w * 2 - 1
    gy = (ys + 0.5 + flow[:, :, 1]) / h * 2 - 1
    src = frame[:, None].expand(-1, k, -1, -1, -1).reshape(b * k, 3, h, w)
    out = F.grid_sample(src, torch.stack([gx, gy], -1).reshape(b * k, h, w, 2), mode="bilinear",
                        padding_mode="border", align_corners=False)
    return out.reshape(b, k, 3, h, w)


def sample(shard, cut: int, ahead: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(last frame cut - 1, the actions that lead to frames cut ... cut + ahead - 1, those frames)."""
    acts = np.concatenate([shard.keys[cut:cut + ahead], shard.mouse[cut:cut + ahead] / 10.0], 1)
    return shard.frames[cut - 1], acts.reshape(-1).astype(np.float32), shard.frames[cut:cut + ahead]


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).float().div(255).movedim(-1, -3)


def predict(net: FlowNet, last: np.ndarray, acts: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        x = to_tensor(last[None])
        out = warp(x, net(x, torch.from_numpy(acts[None])))[0]
    return (out.movedim(1, -1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("train")
    p.add_argument("val")
    p.add_argument("--seconds", type=float, default=900)
    p.add_argument("--ahead", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", help="save the trained net here (a state dict)")
    a = p.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    shards = [load_shard(s) for s in list_shards(a.train)]
    net = FlowNet(shards[0].keys.shape[1] * a.ahead + 2 * a.ahead, a.ahead)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    t0, step = time.time(), 0
    while time.time() - t0 < a.seconds:
        batch = []
        for _ in range(a.batch):
            s = shards[rng.integers(len(shards))]
            batch.append(sample(s, int(rng.integers(1, len(s.frames) - a.ahead)), a.ahead))
        last, acts, target = (np.stack(x) for x in zip(*batch))
        x = to_tensor(last)
        loss = (warp(x, net(x, torch.from_numpy(acts))) - to_tensor(target)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step}, L1 {loss.item():.4f}, {time.time() - t0:.0f} s", flush=True)
    if a.out:
        torch.save(net.state_dict(), a.out)
    wins = list(diag.windows(a.val, 4, 3, a.ahead))
    rep, got = [], []
    for sh, s in wins:
        c = diag.chunk_start(s, a.ahead)
        rep.append(diag.repeat_last(sh, c, a.ahead))
        got.append(psnr(predict(net, *sample(sh, c, a.ahead)[:2]), sh.frames[c:c + a.ahead]))
    print(f"{step} steps; PSNR by frames ahead over {len(wins)} windows (dB):")
    diag.show("repeat-last", rep)
    diag.show("learned warp", got)


if __name__ == "__main__":
    main()

"""Where a model's frames lose their detail: sharpness (variance of the Laplacian, eval/drift.py)
and PSNR against the engine of (1) the VAE's reconstruction deep into a stream, (2) a
teacher-forced next chunk (6 real context latents, 3 steps) and (3) a free rollout from one real
frame with the recorded actions, for one validation window; (4) the sharpness of the DiT's
one-pass x0 estimate of that next chunk from its real latents noised to t = 50 ... 1000 (which
noise levels lose the detail); and one PNG: the engine's frames on top, then per checkpoint its
reconstruction and its rollout (docs/TRAINING.md, runs 9 and 12).

    python scripts/sharpness_diag.py SHARD_FOLDER MAP START OUT.png CKPT [CKPT ...]
    e.g. python scripts/sharpness_diag.py data/val MAP19 200 diag.png src/interworld/assets/small
"""

import dataclasses
import sys

import numpy as np
import torch
from PIL import Image

from interworld.data.shards import list_shards, load_shard
from interworld.diffusion.flow import add_noise, x0_from_velocity
from interworld.engine.world import World, to_uint8
from interworld.eval.drift import sharpness
from interworld.eval.metrics import psnr
from interworld.eval.rollout import rollout
from interworld.models.vae import decode_after
from interworld.train.world import WorldBatch, encode_and_condition, stream_latents, teacher_forced_prediction

if len(sys.argv) < 6:
    sys.exit(__doc__)
folder, map_id, s0, png = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
shard = load_shard([s for s in list_shards(folder) if map_id in s.name][0])
LEAD, N, CTX = 12, 48, 6  # latents of history, frames compared, context latents when teacher forced
tr = 4
if s0 < LEAD * tr or s0 + N + 1 > len(shard):
    sys.exit(f"START must be in [{LEAD * tr}, {len(shard) - N - 1}] for this shard")
real = shard.frames[s0 + 1:s0 + N + 1]
f = lambda a: torch.from_numpy(a)
rows = [real[8::8]]
LEVELS = (50, 200, 500, 800, 1000)


def x0_sharpness(w, b: WorldBatch, lead: torch.Tensor) -> list[float]:
    """Sharpness of the decoded one-pass x0 estimate of the latents after CTX real ones, per level."""
    z, hist = stream_latents(w.vae, torch.cat([lead, b.frames], 1), lead.shape[1] // tr)
    z, step, pl, ctx = encode_and_condition(w.cfg, w.vae, w.text_encoder, dataclasses.replace(b, latents=z),
                                            w.scheme, w.device, 1, CTX)
    out = []
    for level in LEVELS:
        t = torch.zeros(1, z.shape[2])
        t[:, CTX:] = level
        xt = add_noise(z, torch.randn(z.shape, generator=torch.Generator().manual_seed(0)), t)
        x0 = x0_from_velocity(xt, w.dit(xt, t, ctx, step, plucker=pl)[0], t)
        video = decode_after(w.vae, w.vae.denormalize(torch.cat([hist, z[:, :, 1:CTX], x0[:, :, CTX:]], 2)),
                             hist.shape[2] + CTX - 1)
        out.append(sharpness(to_uint8(video)))
    return out


print(f"engine: sharpness {sharpness(real):.1f}")
for ck in sys.argv[5:]:
    w = World.from_pretrained(ck)
    with torch.no_grad():
        z, hist = stream_latents(w.vae, f(shard.frames[s0 - LEAD * tr:s0 + N + 1])[None], LEAD)
        rec = to_uint8(w.vae.decode(w.vae.denormalize(torch.cat([hist, z[:, :, 1:]], 2))))[-N:]
        T = 1 + (CTX + 1) * tr
        keys = torch.cat([torch.zeros(1, shard.keys.shape[1]), f(shard.keys[s0:s0 + T - 1]).float()])
        mouse = torch.cat([torch.zeros(1, 2), f(shard.mouse[s0:s0 + T - 1]).float()])
        b = WorldBatch(f(shard.frames[s0:s0 + T])[None], keys[None], mouse[None], f(shard.pose[s0:s0 + T])[None],
                       [w.cfg.train_prompt or ""])
        pred, _ = teacher_forced_prediction(w.dit, w.vae, w.text_encoder, b, w.cfg, w.scheme, w.device,
                                            context_latents=CTX, steps=3, seed=0,
                                            lead=f(shard.frames[s0 - LEAD * tr:s0])[None])
        tf, tf_real = to_uint8(pred), shard.frames[s0 + 1 + (CTX - 1) * tr:s0 + T]
        levels = x0_sharpness(w, b, f(shard.frames[s0 - LEAD * tr:s0])[None])
    g = rollout(w, shard.frames[s0], f(shard.keys[s0 + 1:s0 + N + 1]).float(),
                f(shard.mouse[s0 + 1:s0 + N + 1]).float())["frames"][1:N + 1]
    print(f"{ck}: reconstruction sharpness {sharpness(rec):.1f} PSNR {psnr(rec, real).mean():.2f} | "
          f"teacher forced {sharpness(tf):.1f} / {psnr(tf, tf_real).mean():.2f} | "
          f"rollout first/last 16 frames {sharpness(g[:16]):.1f}/{sharpness(g[-16:]):.1f}, "
          f"PSNR {psnr(g, real).mean():.2f} | "
          "one-pass x0 sharpness at t = " + ", ".join(f"{t}: {v:.1f}" for t, v in zip(LEVELS, levels)), flush=True)
    rows += [rec[8::8], g[8::8]]
Image.fromarray(np.concatenate([np.concatenate(list(r), 1) for r in rows], 0)).save(png)
print(f"rows: engine, then reconstruction and rollout per checkpoint -> {png}")

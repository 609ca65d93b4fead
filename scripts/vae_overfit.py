"""Can a VAE of this shape draw sharp frames at all? Train it on a few fixed validation clips
only and watch PSNR and sharpness (variance of the Laplacian, eval/drift.py) against the real
frames' own. If even memorised clips stay blurred, the architecture or loss is the limit; if
they turn sharp, the shipped VAE is short of training (docs/TRAINING.md, run 10). One JSON line
per report on stdout.

    python scripts/vae_overfit.py --data DATA [--clips 4] [--frames 5] [--vae-dim 32] [--seconds 60] [--png OUT.png]
        [--precision bf16|fp32]
"""

import argparse
import dataclasses
import json
import time

import torch

from interworld.config import PRESETS
from interworld.data.maps import VAL
from interworld.data.shards import ClipDataset
from interworld.engine.world import to_uint8
from interworld.eval.strips import save_strip
from interworld.models.vae import CausalVAE
from interworld.train import common
from interworld.train.decoder import video_sharpness
from interworld.train.vae import psnr, vae_loss
from interworld.train.world import to_video

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--data", required=True)
p.add_argument("--preset", default="small")
p.add_argument("--vae-dim", type=int, help="encoder and decoder base width (default: the preset's)")
p.add_argument("--clips", type=int, default=4)
p.add_argument("--frames", type=int, default=5, help="frames per clip (1 + a multiple of the VAE's temporal factor)")
p.add_argument("--lr", type=float, default=5e-4)
p.add_argument("--seconds", type=float, default=60)
p.add_argument("--every", type=int, default=100, help="steps between reports")
p.add_argument("--png", help="at the end, a strip of the real frames above their reconstruction")
p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
               help="bf16: autocast, as `interworld train` does on a GPU by default (here on a CPU too, to compare "
                    "the two on one); fp32: none (TF32 on a GPU)")
a = p.parse_args()
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
cfg = PRESETS[a.preset]().vae
if a.vae_dim:
    cfg = dataclasses.replace(cfg, dim=a.vae_dim, dec_dim=a.vae_dim)
vae = CausalVAE(cfg).to(dev)
frames = ClipDataset(a.data, a.frames, maps=list(VAL), seed=0).fixed(a.clips, seed=1)["frames"]
video = to_video(frames.to(dev))
real = video_sharpness(video)
opt = torch.optim.AdamW(vae.parameters(), lr=a.lr)
# as training does on a GPU; on a CPU, where training never autocasts, bf16 is forced to compare the two
amp = common.autocast(dev, a.precision) if dev.type == "cuda" else torch.autocast("cpu", torch.bfloat16,
                                                                                  enabled=a.precision == "bf16")
t0, step = time.time(), 0
while time.time() - t0 < a.seconds:
    step += 1
    with amp:
        loss, _ = vae_loss(vae, frames, dev)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if step % a.every == 0:
        with torch.no_grad():
            rec = vae.decode(vae.encode(video)).float()
        print(json.dumps({"step": step, "s": round(time.time() - t0, 1), "psnr": round(psnr(rec, video), 2),
                          "sharpness": round(video_sharpness(rec), 1), "real_sharpness": round(real, 1)}), flush=True)
if a.png:
    with torch.no_grad():
        rec = vae.decode(vae.encode(video)).float()
    # each clip's first frame, side by side
    save_strip(a.png, {"real": to_uint8(video[:, :, 0].unsqueeze(0).transpose(1, 2)),
                       "vae": to_uint8(rec[:, :, 0].unsqueeze(0).transpose(1, 2))}, every=1)

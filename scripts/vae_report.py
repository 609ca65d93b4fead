"""Compare VAE checkpoints as the world model will use them: reconstruction of validation clips
deep into a stream (after 12 latents of history), as PSNR against the real frames and as
sharpness (variance of the Laplacian, eval/drift.py) beside the real frames' own, and a PNG
strip per checkpoint (real frames above, reconstruction below). Writes OUT/report.json and
OUT/NAME.png, and prints which checkpoint wins: of those within `--psnr-slack` dB of the best
PSNR (a blurred mean scores high PSNR; docs/TRAINING.md, run 9), the one whose sharpness is
closest to the real frames' on a log scale (sharper than real is grain, not detail).

    python scripts/vae_report.py --data DATA --out OUT RUN [RUN ...]
"""

import argparse
import json
import math
from pathlib import Path

import torch

from interworld.data.maps import VAL
from interworld.data.shards import ClipDataset
from interworld.eval.strips import save_strip
from interworld.io.checkpoint import load_into, load_tensors, read_config
from interworld.models.vae import CausalVAE, decode_after, frames_after
from interworld.engine.world import to_uint8
from interworld.train.decoder import video_sharpness
from interworld.train.vae import psnr
from interworld.train.world import to_video

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("runs", nargs="+")
p.add_argument("--data", required=True)
p.add_argument("--out", required=True)
p.add_argument("--clips", type=int, default=8)
p.add_argument("--history", type=int, default=12)
p.add_argument("--psnr-slack", type=float, default=1.0)
a = p.parse_args()
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
out = Path(a.out)
out.mkdir(parents=True, exist_ok=True)
report = {}
for run in a.runs:
    cfg, meta = read_config(run)
    vae = CausalVAE(cfg.vae).to(dev).eval()
    load_into(vae, load_tensors(run), "vae", run)
    tr = cfg.vae.temporal
    frames = ClipDataset(a.data, 1 + (a.history + 3 - 1) * tr, maps=list(VAL), seed=0).fixed(a.clips, seed=1)["frames"]
    with torch.no_grad():
        video = to_video(frames.to(dev))
        rec = decode_after(vae, vae.encode(video), a.history).float()
    real = frames_after(video, a.history, tr)
    name = Path(run).name
    report[name] = {"psnr": psnr(rec, real), "sharpness": video_sharpness(rec), "real_sharpness": video_sharpness(real),
                    "params_m": sum(p.numel() for p in vae.parameters()) / 1e6, "step": meta.get("step"),
                    "vae": {"dim": cfg.vae.dim, "dec_dim": cfg.vae.dec_dim, "z_dim": cfg.vae.z_dim}}
    save_strip(out / f"{name}.png", {"real": to_uint8(real), "vae": to_uint8(rec)}, every=2)
    print(name, {k: round(v, 2) if isinstance(v, float) else v for k, v in report[name].items()}, flush=True)
best = max(r["psnr"] for r in report.values())
win = min((n for n, r in report.items() if r["psnr"] >= best - a.psnr_slack),
          key=lambda n: abs(math.log(max(report[n]["sharpness"], 1e-6) / report[n]["real_sharpness"])))
report["winner"] = win
(out / "report.json").write_text(json.dumps(report, indent=1))
print("winner:", win)

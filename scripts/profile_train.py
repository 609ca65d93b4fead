"""Where a world-model training step spends its time: data, VAE encode, DiT forward+backward.

Usage: python scripts/profile_train.py DATA CHECKPOINT [BATCH] [LATENTS] [--compile]
Times the full step eager, and with --compile also with the DiT blocks compiled (engine/accel.py).
"""

import sys
import time

import torch

from interworld.data.maps import TRAIN
from interworld.data.shards import ClipDataset
from interworld.io.checkpoint import load_into, load_tensors, read_config
from interworld.models.dit import build_dit
from interworld.models.text import BuiltinTextEncoder
from interworld.models.vae import CausalVAE
from interworld.train.world import DEFAULT_PROMPT, WorldBatch, to_video, world_loss

data, ck = sys.argv[1], sys.argv[2]
pos = [a for a in sys.argv[3:] if not a.startswith("--")]
batch = int(pos[0]) if pos else 48
latents = int(pos[1]) if len(pos) > 1 else 8
dev = torch.device("cuda")
cfg, _ = read_config(ck)
t = load_tensors(ck)
vae, dit = CausalVAE(cfg.vae).to(dev), build_dit(cfg).to(dev)
text = BuiltinTextEncoder(cfg.text_dim, cfg.text_len, cfg.builtin_text_layers).to(dev)
for name, m in (("vae", vae), ("dit", dit), ("text", text)):
    load_into(m, t, name)
ds = ClipDataset(data, 1 + 4 * (latents - 1), maps=list(TRAIN))
opt = torch.optim.AdamW(list(dit.parameters()) + list(text.parameters()), lr=1e-5)


def timed(fn, n=10):
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        out = fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1000, out


ms, b = timed(lambda: ds.sample(batch))
print(f"data sample: {ms:.1f} ms")
ms, _ = timed(lambda: b["frames"].to(dev))
print(f"host->device of frames: {ms:.1f} ms")
with torch.autocast("cuda", dtype=torch.bfloat16), torch.no_grad():
    ms, _ = timed(lambda: vae.encode(to_video(b["frames"].to(dev))))
print(f"VAE encode (bf16 autocast): {ms:.1f} ms")
wb = WorldBatch(b["frames"], b["keys"], b["mouse"], b["pose"], [DEFAULT_PROMPT] * batch)


def step():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss, _ = world_loss(dit, vae, text, wb, cfg, "causal", dev)
    opt.zero_grad()
    loss.backward()
    opt.step()


ms, _ = timed(step, 5)
print(f"full world step (batch {batch}, {latents} latents): {ms:.1f} ms")
if "--compile" in sys.argv:
    from interworld.engine.accel import compile_blocks

    compile_blocks(dit)
    t0 = time.perf_counter()
    step()
    torch.cuda.synchronize()
    print(f"first compiled step (compiling): {time.perf_counter() - t0:.1f} s")
    ms, _ = timed(step, 10)
    print(f"full world step, blocks compiled: {ms:.1f} ms")
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as p:
    step()
    torch.cuda.synchronize()
print(p.key_averages().table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=40))
print(p.key_averages().table(sort_by="cpu_time_total", row_limit=10, max_name_column_width=40))

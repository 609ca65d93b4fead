"""Host-side cost of one chunk's KV-cache update under `--offload`, where the cache lives in host
memory: appending a chunk of 10 latents to 1 sink + 8 window latents and evicting back to them,
per block at mg3-5b's size (3520 tokens per latent, 24 heads of 128, bf16), scaled to its 30
blocks. Joined (one tensor per block, as on a GPU) against in pieces (KVCache.pieces).

    python benchmarks/kv_host_bench.py [BLOCKS_MEASURED]   (3 blocks need about 6 GB of memory)
"""

import sys
import time

import torch

from interworld.engine.generator import KVCache

TOKENS, HEADS, HEAD_DIM, LAYERS = 3520, 24, 128, 30
blocks = int(sys.argv[1]) if len(sys.argv) > 1 else 3


def kv(latents: int):
    shape = (1, latents * TOKENS, HEADS, HEAD_DIM)
    return [(torch.randn(shape, dtype=torch.bfloat16), torch.randn(shape, dtype=torch.bfloat16)) for _ in range(blocks)]


for pieces in (False, True):
    cache = KVCache(1, 8, pieces=pieces, tokens_per_frame=TOKENS)
    cache.append("main", kv(9), list(range(9)))
    cache.commit(list(range(9)))
    times = []
    for it in range(3):
        new, ids = kv(10), list(range(9 + 10 * it, 19 + 10 * it))
        t0 = time.perf_counter()
        cache.append("main", new, ids)
        cache.commit(ids)
        times.append(time.perf_counter() - t0)
    print(f"{'pieces' if pieces else 'joined'}: {sorted(times)[1] / blocks * LAYERS:.2f} s per chunk for {LAYERS} blocks "
          f"(median of 3, {blocks} blocks measured, {torch.get_num_threads()} threads)")

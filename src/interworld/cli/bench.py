"""`interworld bench`: per-stage speed of streaming generation at any preset."""

from __future__ import annotations

import json


def add_parser(sub):
    p = sub.add_parser(
        "bench", help="measure speed per stage (random weights)",
        description="Measure the streaming generator stage by stage: each denoising step, the KV-cache update, "
                    "memory retrieval, VAE decode; frames per second with and without decode, latency from an "
                    "action to its first frame, peak memory, and the floor the FLOP count allows at the measured "
                    "GEMM/SDPA ceilings. Weights are random: speed does not depend on their values.\n\n"
                    "Example (Matrix-Game-3.0 size on a GPU):\n"
                    "  interworld bench --preset mg3-5b --device cuda --height 704 --width 1280 --steps 3 "
                    "--scheme causal --new-latents 10")
    p.add_argument("--preset", default="small", help="tiny, small, ti2v-5b, mg3-5b or a14b-moe (default: small)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], help="default: bf16 on GPU, fp32 on CPU")
    p.add_argument("--quantize", choices=["int8"], help="int8: torchao INT8 weight-only linear layers in the DiT")
    p.add_argument("--height", type=int, help="default: the preset's")
    p.add_argument("--width", type=int, help="default: the preset's")
    p.add_argument("--steps", type=int, default=3, help="denoising steps (default 3)")
    p.add_argument("--scheme", choices=["segment", "causal"], help="default: the preset's")
    p.add_argument("--new-latents", type=int, help="new latent frames per iteration (segment new_latents or causal "
                                                  "chunk_latents; default: the preset's)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up iterations (default 2)")
    p.add_argument("--iters", type=int, default=5, help="measured iterations; medians are reported (default 5)")
    p.add_argument("--no-memory", action="store_true", help="segment scheme without memory retrieval")
    p.add_argument("--json", help="also write the result as JSON to this path")


def run(args) -> int:
    import dataclasses

    import torch
    from rich.console import Console
    from rich.progress import Progress

    from interworld.cli.main import UsageError
    from interworld.engine.bench import render, run_bench

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA GPU")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, None: None}[args.dtype]
    with Progress(transient=True) as bar:
        task = bar.add_task("bench iterations", total=None)
        r = run_bench(args.preset, device=args.device, dtype=dtype, height=args.height, width=args.width,
                      steps=args.steps, scheme=args.scheme, new_latents=args.new_latents, warmup=args.warmup,
                      iters=args.iters, memory=not args.no_memory, quantize=args.quantize,
                      progress=lambda i, n: bar.update(task, completed=i, total=n))
    Console().print(render(r))
    if args.json:
        d = dataclasses.asdict(r)
        d.update(fps=r.fps, fps_no_decode=r.fps_no_decode, floor_s=r.floor_s())
        with open(args.json, "w") as f:
            json.dump(d, f, indent=2)
    return 0

"""`interworld bench`: per-stage speed of streaming generation at any preset."""

from __future__ import annotations

import argparse
import json

from interworld.cli.speed import add_speed_args, check_speed_args

HELP = """\
Measure the streaming generator stage by stage: each denoising step, the KV-cache update,
memory retrieval, VAE decode; frames per second with and without decode, latency from an
action to its first frame, peak memory, and the floor the FLOP count allows at the measured
GEMM/SDPA ceilings. Weights are random: speed does not depend on their values.

One GPU (Matrix-Game-3.0 size):
  interworld bench --preset mg3-5b --device cuda --height 704 --width 1280 --steps 3 \\
      --scheme causal --new-latents 10 --json one.json

Several GPUs of one host: one process per GPU under torchrun, with --parallel. The last GPU
decodes chunk n while the others generate chunk n+1 with sequence-parallel attention
(--decode inline: all GPUs run the DiT, GPU 0 decodes after each chunk). Rank 0 prints the
table and each GPU's peak memory; --compare gives the speed-up over a one-GPU JSON:
  torchrun --nproc-per-node 4 -m interworld.cli.main bench --parallel --preset mg3-5b \\
      --device cuda --height 704 --width 1280 --steps 3 --scheme causal --new-latents 10 \\
      --compare one.json
"""


def add_parser(sub):
    p = sub.add_parser(
        "bench", help="measure speed per stage (random weights)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small", help="tiny, small, ti2v-5b, mg3-5b or a14b-moe (default: small)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], help="default: bf16 on GPU, fp32 on CPU")
    p.add_argument("--height", type=int, help="default: the preset's")
    p.add_argument("--width", type=int, help="default: the preset's")
    p.add_argument("--steps", type=int, default=3, help="denoising steps (default 3)")
    p.add_argument("--scheme", choices=["segment", "causal"], help="default: the preset's")
    p.add_argument("--new-latents", type=int, help="new latent frames per iteration (segment new_latents or causal "
                                                  "chunk_latents; default: the preset's)")
    p.add_argument("--light-decoder", type=float, metavar="SCALE",
                   help="a pruned VAE decoder, widths x SCALE (0.5: as MG-LightVAE and `train decoder`)")
    p.add_argument("--dit-dim", type=int, metavar="N",
                   help="a DiT N wide (a multiple of 64; heads of 64, FFN 3x), to price a size before training it "
                        "(`train world --dit-dim`); default: the preset's")
    p.add_argument("--dit-layers", type=int, metavar="L", help="a DiT L blocks deep (default: the preset's)")
    p.add_argument("--dit-patch", type=int, choices=[1, 2], metavar="P",
                   help="a DiT with P x P latent pixels per token (default: the preset's)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up iterations (default 2)")
    p.add_argument("--iters", type=int, default=5, help="measured iterations; medians are reported (default 5)")
    p.add_argument("--no-memory", action="store_true", help="without memory retrieval (on by default, as in "
                                                            "Matrix-Game-3.0)")
    p.add_argument("--json", help="also write the result as JSON to this path")
    p.add_argument("--parallel", action="store_true",
                   help="run over the GPUs of a torchrun job (torchrun --nproc-per-node N -m interworld.cli.main "
                        "bench --parallel ...): sequence-parallel DiT, VAE decode per --decode")
    p.add_argument("--decode", choices=["separate", "inline", "overlap"],
                   help="inline: after each chunk, where the DiT runs (the default on one device); overlap: one "
                        "device, a thread decodes chunk n on its own stream while chunk n+1 is generated; with "
                        "--parallel, separate (the default there) decodes on the last GPU, overlapped with the "
                        "next chunk on the others, and inline runs the DiT on every GPU and decodes on GPU 0")
    add_speed_args(p)
    p.add_argument("--compare", metavar="JSON", help="a one-GPU result (--json of a run at the same settings): "
                                                    "print the speed-up over it")


def run(args) -> int:
    import dataclasses
    import os
    import sys
    import traceback

    import torch
    from rich.console import Console
    from rich.progress import Progress

    from interworld.cli.main import UsageError
    from interworld.engine.bench import (bench_config, check_baseline, render, run_bench, run_bench_parallel,
                                         speed_label)

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA GPU")
    if args.parallel and "RANK" not in os.environ:
        raise UsageError("--parallel runs one process per GPU under torchrun: torchrun --nproc-per-node N -m "
                         "interworld.cli.main bench --parallel ...")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, None: None}[args.dtype]
    shape = dict(height=args.height, width=args.width, scheme=args.scheme, new_latents=args.new_latents,
                 light_decoder=args.light_decoder, dit_dim=args.dit_dim, dit_layers=args.dit_layers,
                 dit_patch=args.dit_patch)
    try:
        bench_config(args.preset, **shape)
    except ValueError as e:
        raise UsageError(str(e)) from None
    baseline = None
    if args.compare:
        with open(args.compare) as f:
            baseline = json.load(f)
        try:
            check_baseline(args.preset, baseline, device=args.device, dtype=dtype, steps=args.steps, **shape)
        except ValueError as e:
            raise UsageError(f"--compare {args.compare}: {e}") from None
    check_speed_args(args)
    decode = args.decode or ("separate" if args.parallel else "inline")
    if decode == "separate" and not args.parallel:
        raise UsageError("--decode separate needs --parallel (several GPUs); on one device use inline or overlap")
    if decode == "overlap" and args.parallel:
        raise UsageError("--parallel decodes separate or inline; overlap is for one device")
    if args.parallel and (args.compile or args.offload):
        raise UsageError("--parallel does not take --compile or --offload yet: measure those on one GPU")
    kw = dict(device=args.device, dtype=dtype, steps=args.steps, warmup=args.warmup, iters=args.iters,
              memory=not args.no_memory, quantize=args.quantize, **shape)
    if not args.parallel:
        kw.update(compile=args.compile, attention=args.attention, offload=args.offload, decode=decode)
    main_rank = int(os.environ.get("RANK", 0)) == 0
    with Progress(transient=True, disable=not main_rank) as bar:
        task = bar.add_task("bench iterations", total=None)
        progress = lambda i, n: bar.update(task, completed=i, total=n)  # noqa: E731
        if args.parallel:
            import torch.distributed as dist

            from interworld.engine.accel import attention_backend

            try:
                with attention_backend(args.attention):
                    r = run_bench_parallel(args.preset, decode=decode, progress=progress, **kw)
            except BaseException:
                # a peer may be blocked in a send or receive to this rank (the decode GPU waits for
                # latents): tearing the process group down would wait on it too. Leave at once, so
                # that torchrun stops the other ranks (an OOM on one GPU hung a run for 9 minutes).
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(1)
            if r is not None:
                r.speed = speed_label(quantize=args.quantize, attention=args.attention,
                                      light_decoder=args.light_decoder)
            dist.destroy_process_group()
        else:
            r = run_bench(args.preset, progress=progress, **kw)
    if r is None:  # not rank 0 of a parallel run: rank 0 reports
        return 0
    Console().print(render(r, baseline))
    if args.json:
        d = dataclasses.asdict(r)
        d.update(fps=r.fps, fps_no_decode=r.fps_no_decode, floor_s=r.floor_s())
        with open(args.json, "w") as f:
            json.dump(d, f, indent=2)
    return 0

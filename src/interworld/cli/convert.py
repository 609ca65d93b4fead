"""`interworld convert SRC DST`: an official Wan2.2 / Matrix-Game-3.0 folder -> interworld's layout."""

from __future__ import annotations

import argparse

HELP = """Convert an official release folder into interworld's checkpoint layout
(config.json + model.safetensors), streaming the weights one shard at a time.

SRC may be:
  Wan-AI/Wan2.2-TI2V-5B             (native: config.json + diffusion_pytorch_model*.safetensors + Wan2.2_VAE)
  Wan-AI/Wan2.2-TI2V-5B-Diffusers   (diffusers: transformer/ + vae/ + text_encoder/ + tokenizer/)
  Wan-AI/Wan2.2-T2V-A14B[-Diffusers] (two experts; their Wan2.1 VAE is not loaded)
  Skywork/Matrix-Game-3.0           (base_distilled_model/ or base_model/ + Wan2.2_VAE + MG-LightVAE)

Pickled .pth files (Wan2.2_VAE.pth, MG-LightVAE*.pth, models_t5_umt5-xxl-enc-bf16.pth) are
never opened; convert each once with scripts/pth_to_safetensors.py (the error names the command).

Examples:
  interworld convert ~/hf/Matrix-Game-3.0 ckpt/mg3 --vae lightvae_v2 --text-encoder
  interworld generate --checkpoint ckpt/mg3 --text-encoder ckpt/mg3/text_encoder --device cuda ...
  interworld convert ~/hf/Wan2.2-TI2V-5B ckpt/ti2v-actions --with-actions   (a start for --init)

An official folder can also be used without converting: --checkpoint accepts it directly."""


def add_parser(sub):
    p = sub.add_parser("convert", help="official Wan2.2 / Matrix-Game-3.0 weights -> interworld checkpoint",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="official folder as downloaded")
    p.add_argument("dst", help="output folder (must not hold a checkpoint yet)")
    p.add_argument("--variant", choices=["distilled", "base"],
                   help="Matrix-Game-3.0: base_distilled_model (default, 3 steps) or base_model (50 steps)")
    p.add_argument("--vae", default="auto", choices=["auto", "wan", "lightvae", "lightvae_v2", "none"],
                   help="which VAE: the Wan2.2 VAE (auto/wan), the MG-LightVAE decoder (50%% / 75%% pruned) with the "
                        "Wan2.2 encoder, or none")
    p.add_argument("--with-actions", action="store_true",
                   help="Wan base checkpoints: add the Matrix-Game action and camera modules, zero-initialised so the "
                        "model starts as the base (for `interworld train world --init DST`)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"],
                   help="DiT precision written (default: bfloat16; the VAE is written in float32)")
    p.add_argument("--device", default="cpu", help="where the model is assembled (default: cpu)")
    p.add_argument("--text-encoder", action="store_true",
                   help="also write the umT5 encoder as a transformers folder DST/text_encoder (for --text-encoder)")


def run(args) -> int:
    import time

    import torch
    from rich.console import Console

    from interworld.cli.main import UsageError
    from interworld.io.official import convert, detect

    layout = detect(args.src, args.variant)
    if layout.is_interworld:
        raise UsageError(f"{args.src!r} is an interworld checkpoint already; nothing to convert")
    con = Console(stderr=True)
    con.print(f"[bold]{args.src}[/]: {layout.name} layout; writing {args.dst}")
    t0 = time.perf_counter()
    rep = convert(args.src, args.dst, device=args.device, dtype=getattr(torch, args.dtype), variant=args.variant,
                  vae=args.vae, with_actions=args.with_actions, text_encoder=args.text_encoder)
    con.print(f"read {rep.loaded} tensors from {len(rep.files)} files in {time.perf_counter() - t0:.1f} s"
              + (f"; {len(rep.new)} new tensors initialised (the model starts as the base)" if rep.new else "")
              + (f"; dropped {len(rep.dropped)} training-only tensors" if rep.dropped else ""))
    for note in rep.notes:
        con.print(f"note: {note}")
    print(args.dst)
    return 0

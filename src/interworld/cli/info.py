"""`interworld info`: the presets, their sizes and schedules (built on the meta device)."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("info", help="list presets with parameter counts",
                       description="Build every preset on the meta device (no memory used) and print its size.")
    p.add_argument("--preset", action="append", help="only these presets (repeatable)")


def run(args) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from interworld.config import PRESETS, get_preset
    from interworld.models.dit import build_dit, count_params
    from interworld.models.vae import CausalVAE

    t = Table(title="interworld presets")
    for c in ("preset", "DiT params", "VAE params", "dim x layers", "latent (z, spatial, temporal)", "scheme", "size"):
        t.add_column(c)
    for name in args.preset or list(PRESETS):
        cfg = get_preset(name)
        with torch.device("meta"):
            dit, vae = build_dit(cfg), CausalVAE(cfg.vae)
        n = count_params(dit)
        experts = f" ({cfg.num_experts} experts)" if cfg.num_experts > 1 else ""
        t.add_row(name, f"{n / 1e9:.3f}B{experts}" if n > 1e8 else f"{n / 1e6:.2f}M",
                  f"{count_params(vae) / 1e6:.1f}M", f"{cfg.dim} x {cfg.num_layers}",
                  f"{cfg.vae.z_dim}, {cfg.vae.spatial}x, {cfg.vae.temporal}x", cfg.scheme,
                  f"{cfg.height}x{cfg.width}@{cfg.fps}")
    Console().print(t)
    return 0

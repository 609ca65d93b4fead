"""The speed options shared by generate, play and bench (engine/accel.py, engine/quantize.py)."""

from __future__ import annotations

from interworld.config import ATTENTION_BACKENDS, COMPILE_MODES


def add_speed_args(p, offload: bool = True) -> None:
    g = p.add_argument_group("speed (each can be measured alone with `interworld bench`)")
    g.add_argument("--quantize", choices=["int8", "fp8"],
                   help="int8: torchao INT8 weight-only linear layers in the DiT (half the weight memory of bf16); "
                        "fp8: FP8 activations and weights on Hopper/Ada GPUs")
    g.add_argument("--compile", nargs="?", const="default", choices=COMPILE_MODES, metavar="MODE",
                   help="torch.compile the DiT blocks; MODE: default, reduce-overhead (adds CUDA graphs) or "
                        "max-autotune-no-cudagraphs. The first chunks are slow while it compiles")
    g.add_argument("--attention", choices=ATTENTION_BACKENDS, default="auto",
                   help="SDPA backend tried first for the DiT; calls it has no kernel for fall to the others "
                        "(default: auto, PyTorch's choice per call)")
    if offload:  # not for play: its sessions share one DiT, and the offload hooks serve one stream at a time
        g.add_argument("--offload", action="store_true",
                       help="keep the DiT blocks in host memory and stream them to the GPU one by one "
                            "(cards with less memory than the model; needs --device cuda)")


def build_device(args) -> str:
    """Where the World is built: on the CPU when its blocks are to be offloaded."""
    return "cpu" if getattr(args, "offload", False) else args.device


def check_speed_args(args) -> None:
    """What can be refused before any model is built."""
    from interworld.cli.main import UsageError

    if getattr(args, "offload", False) and not args.device.startswith("cuda"):
        raise UsageError("--offload streams weights to a GPU: use it with --device cuda")


def apply_speed_args(world, args):
    from interworld.cli.main import UsageError

    check_speed_args(args)
    offload = getattr(args, "offload", False)
    try:
        return world.accelerate(compile=args.compile, quantize=args.quantize,
                                offload=args.device if offload else None, attention=args.attention)
    except (RuntimeError, ValueError) as e:
        raise UsageError(str(e)) from None

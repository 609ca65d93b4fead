"""`interworld generate`: start image + prompt + action script -> MP4."""

from __future__ import annotations

import argparse
from pathlib import Path

from interworld.cli.speed import add_speed_args, apply_speed_args, build_device

HELP = """Generate a video that follows an action script.

The script is JSON: a list of entries {"keys": ["w"], "mouse": [dx, dy], "frames": N}, each
held for N video frames (mouse in degrees per frame; positive dx turns right, positive dy
looks down). Keys: w s a d space attack. Example:

  interworld generate --image examples/start.png --prompt "a dark corridor" \\
      --actions examples/walk_and_turn.json --out walk.mp4

Without --checkpoint the model that ships in the package is used; --random-init builds the
preset with random weights (a smoke run: the video is noise, the pipeline is real)."""


def add_parser(sub):
    p = sub.add_parser("generate", help="image + prompt + action script -> MP4", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", required=True, help="start image (PNG or JPEG); centre-cropped to the model's aspect")
    p.add_argument("--prompt", default="",
                   help="text prompt describing the world (default: the prompt the model was trained with)")
    p.add_argument("--actions", required=True, help="action script (JSON), see above")
    p.add_argument("--out", required=True, help="output MP4 path")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="checkpoint folder (config.json + model.safetensors), or an official "
                                          "Wan2.2 / Matrix-Game-3.0 folder as downloaded")
    src.add_argument("--preset", default="small", help="preset name when no checkpoint is given (default: small)")
    p.add_argument("--random-init", action="store_true", help="random weights (smoke runs without a checkpoint)")
    p.add_argument("--text-encoder", help="umT5 encoder for the full presets: a transformers folder, a diffusers "
                                         "pipeline or an official Wan2.2 / Matrix-Game-3.0 folder (the small models "
                                         "have a built-in encoder)")
    p.add_argument("--scheme", choices=["segment", "causal"], help="attention scheme (default: the model's)")
    p.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="noise seed: the same seed gives the same frames")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--height", type=int, help="output height (default: the model's)")
    p.add_argument("--width", type=int, help="output width (default: the model's)")
    p.add_argument("--no-memory", action="store_true", help="no memory retrieval (models trained with memory use it by default)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_speed_args(p)


def run(args) -> int:
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from interworld.cli.main import UsageError
    from interworld.engine.actions import load_script
    from interworld.engine.world import World, load_image
    from interworld.io.video import VideoWriter

    keys, mouse = load_script(args.actions)  # validate inputs before loading any model
    if not Path(args.image).is_file():
        raise UsageError(f"image {args.image!r} does not exist")
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise UsageError(f"--out must end in .mp4, got {args.out!r}")
    if not out.parent.exists():
        raise UsageError(f"output folder {str(out.parent)!r} does not exist")
    if args.steps is not None and args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA GPU")
    try:
        load_image(args.image, 16, 16)
    except ValueError as e:
        raise UsageError(str(e)) from None
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    world = World.from_pretrained(args.checkpoint or args.preset, device=build_device(args), dtype=dtype,
                                  random_init=args.random_init, text_encoder_path=args.text_encoder,
                                  scheme=args.scheme, steps=args.steps,
                                  memory=False if args.no_memory else None)
    apply_speed_args(world, args)
    try:
        first = world.reset(args.image, args.prompt, seed=args.seed, height=args.height, width=args.width)
    except ValueError as e:
        raise UsageError(str(e)) from None
    total = keys.shape[0]
    done = 0
    h, w = first.shape[1:3]
    with VideoWriter(out, world.cfg.fps, w, h) as vw, Progress(
            TextColumn("[bold]generate"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
            TimeRemainingColumn(), disable=args.quiet) as bar:
        task = bar.add_task("frames", total=total + 1)
        vw.write(first)
        bar.advance(task, 1)
        while done < total:
            n = world.frames_per_step
            frames = world.step((keys[done:done + n], mouse[done:done + n]))
            take = min(n, total - done)  # the last chunk may overshoot the script: keep what it asked for
            vw.write(frames[:take])
            done += take
            bar.advance(task, take)
    print(f"wrote {out} ({vw.frames} frames, {w}x{h}, {world.cfg.fps} fps)")
    return 0

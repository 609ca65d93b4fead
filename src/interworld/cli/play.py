"""`interworld play`: the world model in the browser (FastAPI + uvicorn + WebSockets)."""

from __future__ import annotations

import argparse
from pathlib import Path

from interworld.cli.speed import add_speed_args, apply_speed_args

HELP = """Play the world model in the browser.

Starts a web server and prints its URL. Open it, click the picture to capture the mouse
(pointer lock), then:

  W A S D, arrows   walk and strafe          mouse         look (right turns right)
  Space             jump                     click, Ctrl   attack
  Esc               release the mouse        Shift         ignored: not in the action set

Pick a start image (the examples folder's images, or upload one), a prompt and a seed,
then Restart. Record saves the stream as MP4. The page shows frames per second and the
latency from an action to the first frame that shows it.

  interworld play                                   # the model that ships, on the CPU
  interworld play --checkpoint runs/world --device cuda --port 8080
  interworld play --preset small --random-init      # smoke run: random weights, the video is noise

Each browser tab is one session with its own stream; --max-sessions caps them and an extra
tab is told the server is busy. Listen beyond this machine (--host 0.0.0.0) only on a
network you trust: there is no login."""


def add_parser(sub):
    p = sub.add_parser("play", help="play the world model in the browser", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="checkpoint folder (config.json + model.safetensors)")
    src.add_argument("--preset", default="small", help="preset name when no checkpoint is given (default: small)")
    p.add_argument("--random-init", action="store_true", help="random weights (smoke runs without a checkpoint)")
    p.add_argument("--text-encoder", help="folder of a umT5 encoder + tokenizer, for the full presets")
    p.add_argument("--scheme", choices=["segment", "causal"], help="attention scheme (default: the model's)")
    p.add_argument("--steps", type=int, help="denoising steps (default: the model's; fewer is faster)")
    p.add_argument("--seed", type=int, default=0, help="default noise seed of a new stream (the page can change it)")
    p.add_argument("--no-memory", action="store_true", help="no memory retrieval (models with memory use it by default)")
    p.add_argument("--prompt", default="",
                   help="default prompt shown on the page (empty: the prompt the model was trained with)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    p.add_argument("--max-sessions", type=int, default=2, help="concurrent sessions (browser tabs) allowed (default: 2)")
    p.add_argument("--format", choices=["jpeg", "webp"], default="jpeg", help="frame encoding (default: jpeg)")
    p.add_argument("--quality", type=int, default=85, help="JPEG/WebP quality 1-100 (default: 85)")
    p.add_argument("--examples", help="folder of start images offered on the page (default: the repository's "
                                      "examples/ folder, when there is one)")
    p.add_argument("--no-record", action="store_true", help="hide MP4 recording (nothing is written to disk)")
    add_speed_args(p, offload=False)


def run(args) -> int:
    import logging

    import torch

    from interworld.cli.main import UsageError
    from interworld.config import PRESETS
    from interworld.engine.world import World, shipped_model_dir

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0-65535, got {args.port}")
    if args.max_sessions < 1:
        raise UsageError("--max-sessions must be at least 1")
    if args.steps is not None and args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if not 1 <= args.quality <= 100:
        raise UsageError(f"--quality must be 1-100, got {args.quality}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA GPU")
    if args.examples and not Path(args.examples).is_dir():
        raise UsageError(f"--examples folder {args.examples!r} does not exist")
    if not args.checkpoint:
        if args.preset not in PRESETS:
            raise UsageError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
        if not args.random_init and shipped_model_dir(args.preset) is None:
            raise UsageError(f"no trained {args.preset!r} model ships with this build yet: pass --checkpoint DIR, "
                             f"or --preset {args.preset} --random-init for a smoke run (random weights)")
    elif not Path(args.checkpoint).is_dir():
        raise UsageError(f"checkpoint folder {args.checkpoint!r} does not exist")
    try:
        from interworld.serve.app import bind_socket, create_app, make_server
        from interworld.serve.stream import default_examples_dir
    except ImportError as e:
        raise UsageError(f"play needs the web server packages ({e.name} is missing): "
                         f"pip install 'interworld[serve]'") from None
    try:  # before the model loads: a taken port should fail at once
        sock = bind_socket(args.host, args.port)
    except OSError as e:
        raise UsageError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e}); pick another --port") from None

    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    base = World.from_pretrained(args.checkpoint or args.preset, device=args.device, dtype=dtype,
                                 random_init=args.random_init, text_encoder_path=args.text_encoder,
                                 scheme=args.scheme, steps=args.steps, seed=args.seed, memory=False if args.no_memory else None)
    apply_speed_args(base, args)

    def new_world() -> World:  # one stream state per session; the weights are shared, not copied
        w = World(base.cfg, base.dit, base.vae, base.text_encoder, base.device, base.dtype,
                  scheme=base.scheme, steps=base.steps, memory=base.memory, motion=base.motion)
        w.attention = base.attention
        return w

    if args.checkpoint:
        label = f"{base.cfg.name} ({Path(args.checkpoint).resolve().name})"
    else:
        label = f"{base.cfg.name} ({'random weights' if args.random_init else 'shipped'})"
    label += f", {base.scheme}, {args.device}"
    examples = args.examples or default_examples_dir()
    app = create_app(new_world, max_sessions=args.max_sessions, model_label=label, examples_dir=examples,
                     image_format=args.format, quality=args.quality, record=not args.no_record,
                     default_seed=args.seed, default_prompt=args.prompt)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
    serve_log = logging.getLogger("interworld.serve")
    serve_log.addHandler(handler)
    serve_log.setLevel(logging.INFO)
    port = sock.getsockname()[1]
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    host = f"[{host}]" if ":" in host else host
    where = " (listening on all interfaces)" if args.host in ("0.0.0.0", "::", "") else ""
    print(f"interworld play: {label}\n  open http://{host}:{port}/ in a browser{where}; Ctrl+C stops", flush=True)
    try:
        make_server(app).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after its clean shutdown: that is how one stops it
        pass
    finally:
        sock.close()
    print("interworld play: stopped", flush=True)
    return 0

"""`interworld record`: real gameplay data from ViZDoom, in whole shards."""

from __future__ import annotations

HELP = """Record ViZDoom gameplay (headless) with an exploring policy that moves like a person:
held keys, smooth mouse turns, pauses, backing up, full 360-degree turns, walking back.
Each shard (.npz) holds frames, keys, mouse deltas, camera poses and the map: see docs/DATA.md.

Maps: ids like freedoom2:MAP01 or E1M1, or the words `train` / `val` (the split in
interworld.data.maps). The final-evaluation maps (freedoom2 MAP21-32, freedoom1 E3-E4) are refused.

Example: interworld record --out data/doom --maps train --frames 200000 --workers 16"""


def add_parser(sub):
    import argparse

    p = sub.add_parser("record", help="record ViZDoom gameplay into dataset shards", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder for the shards")
    p.add_argument("--maps", nargs="+", default=["train"], help="map ids, or train / val (default: train)")
    p.add_argument("--frames", type=int, default=10000, help="total frames to record (default 10000)")
    p.add_argument("--workers", type=int, default=1, help="parallel ViZDoom processes (default 1)")
    p.add_argument("--height", type=int, default=128, help="frame height (default 128)")
    p.add_argument("--width", type=int, default=160, help="frame width (default 160)")
    p.add_argument("--skip", type=int, default=2, help="engine tics per frame; 35/skip fps (default 2: 17.5 fps)")
    p.add_argument("--shard-frames", type=int, default=512, help="frames per shard (default 512)")
    p.add_argument("--seed", type=int, default=0, help="seed of maps and policies (default 0)")
    p.add_argument("--mouse-rest", type=float, default=0.0, metavar="P",
                   help="share of the policy's key spans in which the mouse rests (no turn, no look), as a player's "
                        "often does; default 0, the policy the shipped model was trained on, whose mouse rests only "
                        "to back away from a wall")
    p.add_argument("--compress", action="store_true", help="zlib-compress shards (smaller, slower)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    import os
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from interworld.cli.main import UsageError
    from interworld.data.maps import resolve

    try:
        maps = resolve(args.maps)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not 0.0 <= args.mouse_rest <= 1.0:
        raise UsageError(f"--mouse-rest is a share of spans between 0 and 1, got {args.mouse_rest}")
    try:
        import vizdoom  # noqa: F401
    except ImportError as e:  # the reason matters: a broken install reads like a missing one
        raise UsageError(f"recording needs ViZDoom ({e}): pip install vizdoom==1.3.2") from None
    for name, v in (("--frames", args.frames), ("--workers", args.workers), ("--skip", args.skip),
                    ("--shard-frames", args.shard_frames)):
        if v < 1:
            raise UsageError(f"{name} must be at least 1")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {str(out)!r}: {e.strerror}") from None
    if not os.access(out, os.W_OK):
        raise UsageError(f"{str(out)!r} is not writable")
    from interworld.data.vizdoom_rec import record

    with Progress(TextColumn("[bold]record"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[fps]}"),
                  TimeRemainingColumn(), disable=args.quiet) as bar:
        task = bar.add_task("frames", total=args.frames, fps="")
        n = record(out, maps, args.frames, args.workers, args.seed, args.height, args.width, args.skip,
                   args.shard_frames, compress=args.compress, mouse_rest=args.mouse_rest,
                   progress=lambda d, t, fps: bar.update(task, completed=d, fps=f"{fps:,.0f} frames/s"))
    print(f"recorded {n} frames from {len(maps)} map(s) into {out}")
    return 0

"""`interworld`: play, generate, record, train, eval, bench, info.

Each subcommand lives in its own module with `add_parser(sub)` and `run(args)`; this
file only wires them up and turns expected errors into one clean line and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# a fixed thread count in the CPU math libraries, so the same seed gives the same video even
# when the machine is busy (set before torch loads them; the commands import torch lazily)
os.environ.setdefault("MKL_DYNAMIC", "FALSE")
os.environ.setdefault("OMP_DYNAMIC", "FALSE")

COMMANDS = ["play", "generate", "record", "train", "distill", "eval", "bench", "info", "convert"]  # module names under interworld.cli


class UsageError(Exception):
    """An error in what the user gave us: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="interworld",
        description="interworld: a real-time interactive world model engine. Give it a start image, a prompt and "
                    "keyboard/mouse actions; it answers with video that follows them.",
        epilog="Run `interworld COMMAND --help` for each command's options.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"interworld.cli.{name}")
        except ImportError as e:  # an optional part (e.g. record without vizdoom) must not break the rest
            s = sub.add_parser(name, help=f"(unavailable: {e})")
            s.set_defaults(_error=str(e))
            continue
        mod.add_parser(sub)
        sub.choices[name].set_defaults(func=mod.run)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    if getattr(args, "_error", None):
        print(f"interworld {args.command}: unavailable: {args._error}", file=sys.stderr)
        return 2
    from interworld.engine.actions import ActionError
    from interworld.io.checkpoint import CheckpointError

    try:
        return int(args.func(args) or 0)
    except (UsageError, ActionError, CheckpointError, FileNotFoundError) as e:
        print(f"interworld {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interworld {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # `python -m interworld.cli.main` runs this file as __main__, a second copy of the module:
    # call the imported one, so the commands' UsageError is the class main() catches
    from interworld.cli.main import main as _main

    sys.exit(_main())

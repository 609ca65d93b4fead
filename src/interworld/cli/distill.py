"""`interworld distill`: a few-step causal student from a trained teacher (DMD + self-rollout)."""

from __future__ import annotations

import argparse

HELP = """Distil a world-model teacher into a few-step student (causal or segment scheme).

The student starts as a copy of the teacher (or from --student-init) and learns by
Distribution Matching Distillation on its own multi-chunk rollouts through its KV cache
(self-rollout), with a fake-score network trained online on its samples and, optionally,
an error buffer that feeds its residuals back into its context. Each part has a switch so
its effect can be measured with `interworld eval`.

  interworld distill --teacher runs/world --data data/doom --out runs/student --steps 2000
  interworld distill ... --no-self-rollout          # the ablation: real context in the cache
  interworld distill ... --error-buffer 1024        # with the error buffer
  interworld distill ... --scheme segment           # the official scheme's student
  interworld distill ... --regress 0.2              # plus the first chunk regressed on the engine's
  interworld distill ... --regress 3 --regress-pool 2   # the same on 2x2 means: layout, not detail
  interworld distill ... --student-init runs/world320   # a smaller student on the teacher's VAE

Several GPUs: torchrun --nproc_per_node N -m interworld.cli.main distill ...
Runs resume from OUT; the student in OUT is a world checkpoint (generate/play/eval take it)."""


def add_parser(sub):
    p = sub.add_parser("distill", help="distil a few-step causal student (DMD)", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="teacher checkpoint folder (interworld train world)")
    p.add_argument("--data", required=True, help="folder of shards (start images and actions)")
    p.add_argument("--out", required=True, help="run folder: the student checkpoint, fake score, logs")
    p.add_argument("--steps", type=int, default=2000, help="student updates (default 2000)")
    p.add_argument("--batch", type=int, default=8, help="start images per rollout and GPU (default 8)")
    p.add_argument("--chunks", type=int, default=3, help="chunks per self-rollout (default 3)")
    p.add_argument("--student-steps", type=int, default=3, help="the student's sampling steps (default 3)")
    p.add_argument("--lr", type=float, default=2e-5, help="student learning rate (default 2e-5)")
    p.add_argument("--fake-lr", type=float, default=2e-5, help="fake-score learning rate (default 2e-5)")
    p.add_argument("--fake-steps", type=int, default=5, help="fake-score updates per student update (default 5)")
    p.add_argument("--scheme", choices=["causal", "segment"], default="causal",
                   help="the student's attention scheme: causal (KV cache, low latency; default) or segment "
                        "(the official bidirectional segments with past and memory frames)")
    p.add_argument("--no-self-rollout", action="store_true",
                   help="real latents as the next chunks' context, not the student's own")
    p.add_argument("--error-buffer", type=int, default=0, metavar="N", help="error buffer of N latent frames (0: off)")
    p.add_argument("--regress", type=float, default=0.0, metavar="W",
                   help="add W x the MSE against the real latents of the chunks whose context is real (the "
                        "first; with --no-self-rollout every chunk) to the student's loss (default 0: off)")
    p.add_argument("--regress-pool", type=int, default=1, metavar="P",
                   help="regress P x P spatial averages of the latents only: the anchor holds the scene's layout "
                        "and colours and leaves finer detail to DMD, where the full regression keeps the few-step "
                        "blur (default 1: every latent)")
    p.add_argument("--student-init", metavar="CKPT",
                   help="start the student and the fake score from this world model instead of copies of the "
                        "teacher: a DiT of another width or depth trained on the teacher's VAE (`train world "
                        "--init TEACHER --dit-dim N`), so a wider teacher teaches a smaller, faster student")
    p.add_argument("--camera", choices=["actions", "engine"], default="actions",
                   help="the camera poses of the student's rollouts: integrated from the actions by the fixed "
                        "kinematics (default, as the shipped student was made), or the recorded engine poses, which "
                        "the teacher was trained on and a checkpoint's learned motion model approximates in play")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the DiT blocks of the student, teacher and fake score (fewer, fused kernels; "
                        "the first updates compile)")
    p.add_argument("--time-limit", type=float, help="wall-clock seconds; checkpoint and stop before they run out")
    p.add_argument("--ckpt-every", type=int, default=500, help="checkpoint every N student updates (default 500)")
    p.add_argument("--log-every", type=int, default=10, help="log every N student updates (default 10)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from pathlib import Path

    from interworld.cli.main import UsageError
    from interworld.cli.progress import step_bar
    from interworld.data.shards import list_shards
    from interworld.train.distill import DistillArgs, distill

    if not (Path(args.teacher) / "config.json").is_file():
        raise UsageError(f"{args.teacher!r} is not a checkpoint folder (train one with `interworld train world`)")
    if not Path(args.data).is_dir() or not list_shards(args.data):
        raise UsageError(f"no shards in {args.data!r}: record some with `interworld record`")
    a = DistillArgs(data=args.data, out=args.out, teacher=args.teacher, steps=args.steps, batch=args.batch,
                    chunks=args.chunks, student_steps=args.student_steps, lr=args.lr, fake_lr=args.fake_lr,
                    fake_steps=args.fake_steps, self_rollout=not args.no_self_rollout,
                    error_buffer=args.error_buffer, time_limit=args.time_limit, ckpt_every=args.ckpt_every,
                    log_every=args.log_every, device=args.device, seed=args.seed, scheme=args.scheme,
                    compile=args.compile, regress=args.regress, regress_pool=args.regress_pool,
                    student_init=args.student_init, camera=args.camera)
    try:
        with step_bar("distill", args.steps, "dmd", args.quiet) as update:
            out = distill(a, progress=lambda s, n, m: update(s, m.get("dmd", 0.0)))
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"student in {out}")
    return 0

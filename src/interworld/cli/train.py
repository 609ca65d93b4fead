"""`interworld train vae|world`: resumable training on recorded shards, one GPU or several."""

from __future__ import annotations

import argparse

HELP = """Train the VAE, then the world model, on shards from `interworld record`.

  interworld train vae   --data data/doom --out runs/vae   --steps 4000 --batch 16
      (add --adversarial 0.5 for sharp decoding: L1/MSE alone give the blurred mean;
       --init src/interworld/assets/small --temporal-down 1,0: the shipped VAE fine-tuned to latents of 2 frames)
  interworld train world --data data/doom --out runs/world --init runs/vae --steps 20000 --batch 16
  interworld train pose  --data data/doom --out runs/pose  --steps 3000   (for `interworld eval`)
  interworld train decoder --data data/doom --init runs/world --out runs/world-light --width 0.5
      (a pruned VAE decoder trained against the full one: faster decoding, same latents)
  interworld train motion --data data/doom --out runs/world              (adds the learned
      action-to-motion model to a world checkpoint: camera poses with Doom's momentum)

Several GPUs: torchrun --nproc_per_node 2 -m interworld.cli.main train world ...
Runs resume: start the same command on the same --out and it continues from the last
checkpoint (weights, optimizer state, step). --time-limit checkpoints before a lease ends.
Logs: OUT/log.jsonl (and OUT/tb for TensorBoard when it is installed). Training uses the
training maps only; validation metrics come from the validation maps (docs/DATA.md)."""


def _levels(text: str) -> tuple[bool, ...]:
    """'1,0' -> (True, False)."""
    parts = [t.strip().lower() for t in text.split(",")]
    if not parts or any(t not in ("1", "0", "true", "false") for t in parts):
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or 0 per level, e.g. 1,0")
    return tuple(t in ("1", "true") for t in parts)


def add_parser(sub):
    p = sub.add_parser("train", help="train the VAE or the world model", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["vae", "world", "pose", "motion", "decoder"],
                   help="what to train (pose: the motion estimator that judges action following; motion: "
                        "actions to camera motion, stored into the --out checkpoint)")
    p.add_argument("--data", required=True, help="folder of shards (interworld record)")
    p.add_argument("--out", required=True, help="run folder: checkpoint, optimizer state, logs")
    p.add_argument("--preset", default="small", help="model preset for a new run (default: small)")
    p.add_argument("--init", help="checkpoint to start from (world: a trained VAE or world checkpoint)")
    p.add_argument("--steps", type=int, default=4000, help="total optimizer steps (default 4000)")
    p.add_argument("--batch", type=int, default=8, help="clips per step and GPU (default 8)")
    p.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (default 2e-4)")
    p.add_argument("--warmup", type=int, default=100, help="warm-up steps (default 100)")
    p.add_argument("--latents", type=int, default=8, help="latent frames per clip (default 8: 29 video frames)")
    p.add_argument("--scheme", choices=["segment", "causal"], help="attention scheme (default: the preset's)")
    p.add_argument("--time-limit", type=float, help="wall-clock seconds; checkpoint and stop before they run out")
    p.add_argument("--fit-time", action="store_true",
                   help="vae, world: with --time-limit, set the schedule's length from the measured steps per "
                        "second so that the learning rate's cosine ends when the time does, instead of being cut "
                        "off high or ending early; --steps is then its cap (the plan is logged as planned_steps)")
    p.add_argument("--val-every", type=int, default=500, help="validate every N steps (default 500)")
    p.add_argument("--ckpt-every", type=int, default=1000, help="checkpoint every N steps (default 1000)")
    p.add_argument("--log-every", type=int, default=20, help="log every N steps (default 20)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--error-buffer", type=int, default=0, metavar="N",
                   help="world: feed the model's own residuals back into its context, from a buffer of N latent "
                        "frames (0: off; try 1024)")
    p.add_argument("--compile", action="store_true",
                   help="world: torch.compile the DiT blocks (fewer, fused kernels; the first steps compile)")
    p.add_argument("--memory", type=float, default=0.0, metavar="P",
                   help="world: share of batches (0-1) whose last chunk sees memory frames retrieved by view "
                        "overlap from earlier in the episode, so the model learns to use memory (default 0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gap", type=int, default=4, help="pose: frames between the two inputs (default 4)")
    p.add_argument("--width", type=float, default=0.5,
                   help="decoder: width of the light decoder (default 0.5; 1: fine-tune the full decoder)")
    p.add_argument("--history", type=int, default=0, metavar="N",
                   help="decoder: latent frames decoded before the trained ones, without gradients, so the "
                        "decoder learns the middle of long streams, not only their start (default 0; try 12)")
    p.add_argument("--adversarial", type=float, default=0.0, metavar="W",
                   help="vae, decoder: weight of a patch discriminator's loss beside L1/MSE, so the decoder "
                        "draws texture instead of the blurred mean (default 0: off; try 0.5)")
    p.add_argument("--vae-dim", type=int, metavar="N",
                   help="vae: base width of a new VAE's encoder and decoder (default: the preset's; small: 32)")
    p.add_argument("--vae-z", type=int, metavar="N",
                   help="vae: latent channels of a new VAE (default: the preset's; small: 16, where Wan2.2's VAE "
                        "has 48). More channels keep more detail per latent pixel; the DiT's input grows with them")
    p.add_argument("--temporal-down", type=_levels, metavar="L,L",
                   help="vae: per downsampling level, 1 if it also halves time (default: the preset's; small: 1,1, "
                        "latents of 4 frames; 1,0 gives latents of 2). With --init the VAE is fine-tuned from that "
                        "one, the temporal layers of levels turned off dropped")
    p.add_argument("--dit-dim", type=int, metavar="N",
                   help="world: width of a new DiT on --init's VAE (a multiple of 64; default: the config's). "
                        "--init may be a world model, the shipped one included: its DiT is then not used")
    p.add_argument("--dit-layers", type=int, metavar="N", help="world: blocks of a new DiT (default: the config's)")
    p.add_argument("--dit-patch", type=int, choices=[1, 2], metavar="P",
                   help="world: a new DiT with P x P latent pixels per token (default: the config's, 2; 1 gives "
                        "four times the tokens, each carrying a quarter of the detail)")
    p.add_argument("--no-camera", action="store_true",
                   help="world: a new DiT conditioned on the actions alone, without camera poses. Training's poses "
                        "are the engine's, which stop at walls; a player's are integrated from the actions and walk "
                        "on through them (docs/TRAINING.md, run 28). Without poses the DiT must find the walls in "
                        "the pictures, as play needs")
    p.add_argument("--ray-rope", action="store_true",
                   help="world: a new DiT whose rotary position of each token is where it looks in the world (its "
                        "frame's yaw and pitch plus its angle off the axis), not its row and column, so that after "
                        "a turn attention finds what a token sees where it was before (config ray_rope)")
    p.add_argument("--ema", type=float, default=0.0, metavar="D",
                   help="world: also keep an exponential moving average of the weights with decay D (e.g. 0.999) and "
                        "save it as a checkpoint of its own in OUT/ema, validated beside the trained weights "
                        "(val_next_chunk_psnr_ema in the log); diffusion models sample better from the average "
                        "(default 0: none)")
    p.add_argument("--prev-latent", action="store_true",
                   help="world: add the previous-frame path to the DiT (each frame also embeds the latent before "
                        "it, a direct way to copy what stays in view); zero at first, so --init's DiT starts as "
                        "it was")
    p.add_argument("--self-context", type=float, default=0.0, metavar="P",
                   help="world (causal): share of batches (0-1) whose context is the model's own rollout of 1-4 "
                        "latents from the clip's first frame, made with the generator as generate streams, and "
                        "whose targets are the real frames after it, so it learns to continue and correct its own "
                        "output (default 0: real context; each such batch costs a few extra sampler passes)")
    p.add_argument("--self-context-sink", choices=("own", "other"), default="own",
                   help="world, with --self-context: the attention sink those batches show the DiT, the clip's own "
                        "start frame (default) or another clip's, as deep in a rollout the start frame is a place "
                        "left behind and copying it does not pay; the rollout still starts from the clip's own")
    p.add_argument("--adv-start", type=int, metavar="N",
                   help="vae, decoder: steps before the discriminator's loss reaches the decoder (default: 2000 "
                        "for a VAE, which must learn to reconstruct first; 200 for a decoder fine-tune)")
    p.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                   help="vae, world, decoder on a GPU: bf16 autocast (default) or fp32 with TF32 matmuls and "
                        "convolutions, slower. On a CPU training is always fp32")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from pathlib import Path

    from interworld.cli.progress import step_bar
    from interworld.cli.main import UsageError
    from interworld.data.shards import list_shards
    from interworld.train.fit import FitArgs, fit

    if not Path(args.data).is_dir() or not list_shards(args.data):
        raise UsageError(f"no shards in {args.data!r}: record some with `interworld record`")
    if args.kind == "decoder":
        from interworld.train.decoder import train_decoder

        if not args.init:
            raise UsageError("train decoder needs --init: the world (or VAE) checkpoint whose decoder to train")
        with step_bar("train decoder", args.steps, "loss", args.quiet) as update:
            out = train_decoder(args.init, args.data, args.out, width=args.width, steps=args.steps, batch=args.batch,
                                latents=args.latents, history=args.history, lr=args.lr,
                                time_limit=args.time_limit, device=args.device, adversarial=args.adversarial,
                                precision=args.precision,
                                **({} if args.adv_start is None else {"disc_start": args.adv_start}),
                                seed=args.seed, progress=lambda s, n, loss: update(s, loss))
        print(f"checkpoint with the light decoder in {out}")
        return 0
    if args.kind == "motion":
        from interworld.train.motion import save_motion, train_motion

        model, report = train_motion(args.data, steps=args.steps, lr=args.lr if args.lr != 2e-4 else 3e-3,
                                     seed=args.seed)
        save_motion(model, args.out, report)
        print(f"motion model in {args.out}: after {report.get('horizon_frames')} frames from actions alone, "
              f"position error {report.get('learned_error', float('nan')):.1f} map units "
              f"(fixed kinematics {report.get('kinematics_error', float('nan')):.1f}) on the validation maps")
        return 0
    if args.kind == "pose":
        from interworld.train.pose import train_pose

        with step_bar("train pose", args.steps, "loss", args.quiet) as update:
            out = train_pose(args.data, args.out, steps=args.steps, batch=args.batch, lr=args.lr, gap=args.gap,
                             time_limit=args.time_limit, device=args.device, seed=args.seed,
                             progress=lambda s, n, loss: update(s, loss))
        print(f"pose estimator in {out}")
        return 0
    if args.kind == "world" and not args.init and not (Path(args.out) / "config.json").is_file():
        raise UsageError("world training needs --init with a trained VAE (interworld train vae)")
    fa = FitArgs(kind=args.kind, data=args.data, out=args.out, preset=args.preset, init=args.init, steps=args.steps,
                 batch=args.batch, lr=args.lr, warmup=args.warmup, latents=args.latents, time_limit=args.time_limit,
                 fit_time=args.fit_time,
                 log_every=args.log_every, val_every=args.val_every, ckpt_every=args.ckpt_every, device=args.device,
                 scheme=args.scheme, seed=args.seed, error_buffer=args.error_buffer,
                 compile=args.compile, memory=args.memory, adversarial=args.adversarial,
                 **({} if args.adv_start is None else {"adv_start": args.adv_start}),
                 vae_dim=args.vae_dim, vae_z=args.vae_z,
                 temporal_down=args.temporal_down,
                 dit_dim=args.dit_dim, dit_layers=args.dit_layers, dit_patch=args.dit_patch,
                 dit_camera=False if args.no_camera else None,
                 dit_ray_rope=True if args.ray_rope else None,
                 precision=args.precision, ema=args.ema,
                 prev_latent=args.prev_latent, self_context=args.self_context,
                 self_context_sink=args.self_context_sink)
    try:
        with step_bar(f"train {args.kind}", args.steps, "loss", args.quiet) as update:
            out = fit(fa, progress=lambda s, n, m: update(s, m.get("loss", 0.0)))
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"checkpoint in {out}")
    return 0

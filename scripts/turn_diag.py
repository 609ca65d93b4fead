"""Do models turn as far as the engine when their context is real? Teacher forcing on validation
clips (as sink_diag.py), then the pose estimator on the last real context frame and the last
predicted frame, one chunk (4 frames) apart, against the engine's true turn between them.

In rollouts the self-context runs turn less than the shipped model (yaw gain, `interworld eval`;
docs/TRAINING.md, run 20). If they turn as far here, they follow the actions from real context
and turn less only from their own; if not, they turn less whatever the context.

    python scripts/turn_diag.py DATA POSE_MODEL MODEL [MODEL ...] [--context 2] [--batches 6]

Prints per model the yaw gain (least-squares slope of the estimated turn on the engine's, over
the windows that turn more than 2 degrees) and the yaw error, on the predicted frames and, as the
estimator's own floor, on the real ones; then each model's gain paired against the first's.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from interworld.data.maps import VAL
from interworld.data.shards import ClipDataset
from interworld.engine.world import World, to_uint8
from interworld.eval.run import yaw_gain
from interworld.models.pose import relative_motion, yaw_error
from interworld.train.fit import lead_clip_frames, split_lead
from interworld.train.pose import load_pose
from interworld.train.world import teacher_forced_prediction


def turns(world: World, pose_net, val: ClipDataset, context: int, batches: int, size: int = 8) -> dict:
    """Per clip: the engine's turn, the estimated turn on the real and on the predicted frames (deg)."""
    cfg = world.cfg
    last_ctx = (context - 1) * cfg.vae.temporal  # the last real frame of the context, within the clip
    out = {"true": [], "real": [], "gen": []}
    for s in range(batches):
        batch, lead = split_lead(val.fixed(size, seed=1 + s), cfg)  # the clip's latents as deep in a stream
        frames = batch.frames
        with torch.no_grad():
            pred, _ = teacher_forced_prediction(world.dit, world.vae, world.text_encoder, batch, cfg, world.scheme,
                                                world.device, context_latents=context, steps=cfg.steps, lead=lead)
            end = last_ctx + pred.shape[2]  # the last predicted frame
            a = frames[:, last_ctx]
            out["real"].append(pose_net(a, frames[:, end])[:, 0])
            last = torch.from_numpy(to_uint8(pred[:, :, -1:].transpose(0, 2)))  # each clip's as a frame of one video
            out["gen"].append(pose_net(a, last)[:, 0])
        pose = batch.pose.double()
        out["true"].append(relative_motion(pose[:, last_ctx], pose[:, end])[:, 0].float())
    return {n: torch.cat(v) for n, v in out.items()}


def paired_gain(mine: torch.Tensor, theirs: torch.Tensor, true: torch.Tensor, n: int = 1000) -> tuple[float, float]:
    """Yaw gain of `mine` minus that of `theirs` on the same windows, and its standard error over n
    bootstrap resamples of the windows. The difference is the one on all windows: a gain is a ratio,
    so the resamples' mean strays from it where one large turn dominates the denominator."""
    g = np.random.default_rng(0)
    d = []
    for _ in range(n):
        i = torch.from_numpy(g.integers(0, len(true), len(true)))
        d.append(yaw_gain(mine[i], true[i]) - yaw_gain(theirs[i], true[i]))
    return yaw_gain(mine, true) - yaw_gain(theirs, true), float(np.std(d))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("pose_model")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--context", type=int, default=2, help="real latents before the chunk, sink included")
    ap.add_argument("--batches", type=int, default=6, help="batches of 8 clips")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    pose_net = load_pose(a.pose_model)
    first = None
    for m in a.models:
        world = World.from_pretrained(m, device=a.device)
        chunk = world.cfg.chunk_latents * world.cfg.vae.temporal
        if pose_net.cfg.gap != chunk:
            raise SystemExit(f"{a.pose_model} estimates motion over {pose_net.cfg.gap} frames, {m} predicts chunks of "
                             f"{chunk}: train an estimator with that gap (`interworld train pose`)")
        val = ClipDataset(a.data, lead_clip_frames(world.cfg, a.context), maps=list(VAL), seed=0)
        r = turns(world, pose_net, val, a.context, a.batches)
        moving = r["true"].abs() > 2.0
        gains = {n: yaw_gain(r[n][moving], r["true"][moving]) for n in ("gen", "real")}
        err = {n: yaw_error(r[n][:, None], r["true"][:, None]) for n in ("gen", "real")}
        line = (f"{m}: yaw gain {gains['gen']:.3f} (real frames {gains['real']:.3f}), yaw error {err['gen']:.2f} deg "
                f"(real {err['real']:.2f}), over {int(moving.sum())} turning windows of {len(moving)} clips")
        if first is None:
            first = r
        else:  # the same clips: this model's gain against the first's
            d, se = paired_gain(r["gen"][moving], first["gen"][moving], r["true"][moving])
            line += f"; against the first model {d:+.3f} (bootstrap standard error {se:.3f})"
        print(line, flush=True)


if __name__ == "__main__":
    main()

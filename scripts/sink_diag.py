"""How much do models lean on the attention sink? Teacher forcing on validation clips, once as it is
and once with each clip's first latent (the sink every chunk sees) swapped for another clip's
(`teacher_forced_prediction(sink_from=...)`). A long rollout's sink is its start frame, a place long
left behind, so a model that loses much here leans on something a rollout cannot give it.

    python scripts/sink_diag.py DATA MODEL [MODEL ...] [--context 2 4] [--batches 3]

DATA holds recorded shards with the validation maps (DATA or DATA/val); MODEL is a checkpoint folder.
Prints, per model and context length, the mean PSNR with the real and the swapped sink, their
paired difference, and that difference paired against the first model's (the same clips).
"""

from __future__ import annotations

import argparse

import torch

from interworld.data.maps import VAL
from interworld.data.shards import ClipDataset
from interworld.engine.world import World
from interworld.train.fit import lead_clip_frames, split_lead
from interworld.train.vae import psnr
from interworld.train.world import teacher_forced_prediction


def _se(d: torch.Tensor) -> float:
    return float(d.std() / len(d) ** 0.5)


def losses(world: World, val: ClipDataset, context: int, batches: int, size: int = 8) -> torch.Tensor:
    """[clips, 2]: each clip's PSNR with its real sink and with the swapped one. val's clips hold
    VAL_LEAD latents of lead, the context and one chunk."""
    cfg = world.cfg
    out = []
    for s in range(batches):
        batch, lead = split_lead(val.fixed(size, seed=1 + s), cfg)  # the clip's latents as deep in a stream
        per = []
        for sink_from in (None, torch.arange(size).roll(1)):  # clip i sees clip i-1's sink
            pred, real = teacher_forced_prediction(world.dit, world.vae, world.text_encoder, batch, cfg,
                                                   world.scheme, world.device, context_latents=context,
                                                   steps=cfg.steps, lead=lead, sink_from=sink_from)
            per.append(torch.tensor([float(psnr(pred[i:i + 1], real[i:i + 1])) for i in range(size)]))
        out.append(torch.stack(per, 1))
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--context", type=int, nargs="+", default=[2], help="real latents before the chunk, sink included")
    ap.add_argument("--batches", type=int, default=3, help="batches of 8 clips")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    first: dict[int, torch.Tensor] = {}  # per context: the first model's paired differences
    for m in a.models:  # each model loaded once
        world = World.from_pretrained(m, device=a.device)
        for c in a.context:
            val = ClipDataset(a.data, lead_clip_frames(world.cfg, c), maps=list(VAL), seed=0)
            r = losses(world, val, c, a.batches)
            d = r[:, 1] - r[:, 0]
            line = (f"context {c}, {m}: real sink {r[:, 0].mean():.2f} dB, swapped {r[:, 1].mean():.2f}, "
                    f"paired {d.mean():+.2f} (standard error {_se(d):.2f}) over {len(d)} clips")
            if c in first:
                line += f"; against the first model {d.mean() - first[c].mean():+.2f} ({_se(d - first[c]):.2f})"
            else:
                first[c] = d
            print(line, flush=True)


if __name__ == "__main__":
    main()

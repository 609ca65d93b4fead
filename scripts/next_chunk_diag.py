"""What a model's teacher-forced next chunk is made of (docs/TRAINING.md, run 31), on validation
shards of `interworld record`:

  ahead    PSNR of each frame of the chunk, 1, 2, ... frames after the last real one: the
           prediction at 3 steps and at 1 (the model's mean), the VAE's own reconstruction deep
           in a stream, and repeat-last
  uses     the same chunk with its conditioning changed: actions zeroed, camera poses held at the
           last real frame's, both, the turn mirrored
  history  the same chunk after 1, 2, 4 and 7 real latents
  oracle   each block of the target taken from the last real frame at the displacement that best
           matches the target itself (an upper bound on moving the last frame's content)
  warp     the last real frame turned by the camera's rotation to each target frame (the engine's
           yaw and pitch, which play integrates from the mouse; no depth, so no walking), and the
           same turned the wrong way as a control: how far a warp alone goes (run 32)

    python scripts/next_chunk_diag.py SHARDS MODEL [--per-shard 4] [--every 3] [--parts ahead,uses,history,oracle,warp]
    e.g. python scripts/next_chunk_diag.py data/doom/val src/interworld/assets/small
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from interworld.data.shards import list_shards, load_shard
from interworld.engine.world import World, to_uint8
from interworld.eval.metrics import psnr
from interworld.models.vae import decode_after
from interworld.train.world import WorldBatch, stream_latents, teacher_forced_prediction

CONTEXT, LEAD = 7, 12  # real latents before the chunk; latents of the frames before those, decoded first
GRID = 4  # frames per latent of the shipped VAE, on which the windows are placed
USES = ("as recorded", "no actions", "poses held", "neither", "turn mirrored")


def conditioned(keys, mouse, pose, cut: int, how: str):
    """The clip's actions [T, K], [T, 2] and poses [T, 5] with those of frames cut... changed `how` (USES)."""
    keys, mouse, pose = keys.clone(), mouse.clone(), pose.clone()
    if how in ("no actions", "neither"):
        keys[cut:], mouse[cut:] = 0, 0
    if how in ("poses held", "neither"):
        pose[cut:] = pose[cut - 1]
    if how == "turn mirrored":  # the mouse's x and the yaw's change negated
        mouse[cut:, 0] = -mouse[cut:, 0]
        pose[cut:, 3] = 2 * pose[cut - 1, 3] - pose[cut:, 3]
    elif how not in USES:
        raise ValueError(f"{how!r}: one of {USES}")
    return keys, mouse, pose


def oracle_blocks(last: np.ndarray, target: np.ndarray, block: int, radius: int) -> np.ndarray:
    """target [H, W, 3] rebuilt from last [H, W, 3]: each block x block tile at the shift within +-radius
    pixels (edges repeated) that matches the target best. It chooses with the answer: an upper bound."""
    h, w, _ = target.shape
    if h % block or w % block:
        raise ValueError(f"blocks of {block} must tile {h}x{w}")
    pad = np.pad(last.astype(np.float32), ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    t = target.astype(np.float32)
    best, out = np.full((h // block, w // block), np.inf), np.zeros_like(t)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            cand = pad[radius + dy:radius + dy + h, radius + dx:radius + dx + w]
            err = ((cand - t) ** 2).reshape(h // block, block, w // block, block, 3).sum((1, 3, 4))
            better = err < best
            best = np.where(better, err, best)
            out = np.where(np.repeat(np.repeat(better, block, 0), block, 1)[..., None], cand, out)
    return out.round().astype(np.uint8)


def rotate_frame(frame: np.ndarray, dyaw: float, dpitch: float, fov: float) -> np.ndarray:
    """frame [H, W, 3] as a pinhole camera of horizontal field of view `fov` sees it after turning
    by dyaw (degrees, positive turns left, as the engine's yaw grows) and dpitch (positive looks up):
    each pixel's ray is looked up where it was before the turn, bilinearly, edges repeated."""
    h, w, _ = frame.shape
    focal = 0.5 / np.tan(np.radians(fov) / 2)  # in widths
    u = (np.arange(w) + 0.5 - w / 2) / w / focal  # tan of each column's angle right of the axis
    v = (np.arange(h) + 0.5 - h / 2) / w / focal  # rows go down
    u0 = np.tan(np.arctan(u) - np.radians(dyaw))  # turning left moves what was seen to the right
    v0 = np.tan(np.arctan(v) - np.radians(dpitch))
    grid = np.stack(np.broadcast_arrays(2 * focal * u0[None, :], 2 * focal * v0[:, None] * w / h), -1)
    img = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    out = torch.nn.functional.grid_sample(img, torch.from_numpy(grid)[None].float(), mode="bilinear",
                                          padding_mode="border", align_corners=False)
    return out[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def turned(shard, cut: int, tr: int, fov: float, sign: float = 1.0) -> np.ndarray:
    """The last real frame (cut - 1) rotated to each of the tr frames from cut on, by the engine's
    yaw and pitch changes times `sign` (-1: the wrong way, a control)."""
    last, pose = shard.frames[cut - 1], shard.pose.astype(np.float64)
    d = pose[cut:cut + tr, 3:5] - pose[cut - 1, 3:5]
    d[:, 0] = (d[:, 0] + 180) % 360 - 180  # yaw wraps at 360
    return np.stack([rotate_frame(last, sign * dy, sign * dp, fov) for dy, dp in d])


def windows(folder: str, per_shard: int, every: int, tr: int):
    """(shard, start) pairs: `per_shard` windows in every `every`-th full-length shard, with LEAD
    latents of frames before each. They are placed for latents of GRID frames and shifted so that
    the chunk begins on the same frame whatever `tr`: models of 2- and 4-frame latents (run 32)
    predict the same frames 1 and 2 ahead."""
    if tr > GRID:
        raise ValueError(f"latents of {tr} frames: windows are placed for latents of at most {GRID}")
    paths = list_shards(folder)
    sizes = [len(load_shard(p).frames) for p in paths]
    for path in [p for p, n in zip(paths, sizes) if n == max(sizes)][::every]:
        s = load_shard(path)
        last = len(s.frames) - (1 + CONTEXT * GRID) - 1
        for start in np.linspace(LEAD * GRID, last, per_shard).astype(int) // GRID * GRID:
            yield s, int(start) + (CONTEXT - 1) * (GRID - tr)


def chunk_start(start: int, tr: int) -> int:
    """The first frame of the chunk of the window that starts at `start` (latents of tr frames)."""
    return start + 1 + (CONTEXT - 1) * tr


def repeat_last(shard, cut: int, n: int) -> np.ndarray:
    """Per-frame PSNR of the last real frame (cut - 1) repeated over the n frames from cut."""
    return psnr(np.repeat(shard.frames[cut - 1][None], n, 0), shard.frames[cut:cut + n])


def predict(w, shard, start: int, context: int, how: str = "as recorded", steps: int = 3) -> np.ndarray:
    """Per-frame PSNR of the chunk after the `context` real latents that end where CONTEXT's do."""
    tr = w.cfg.vae.temporal
    end = start + 1 + CONTEXT * tr  # the chunk is frames end - tr ... end - 1, whatever the context
    st = end - (1 + context * tr)
    f = lambda a: torch.from_numpy(np.asarray(a)).float()  # noqa: E731
    keys = torch.cat([torch.zeros(1, shard.keys.shape[1]), f(shard.keys[st:end - 1])])
    mouse = torch.cat([torch.zeros(1, 2), f(shard.mouse[st:end - 1])])
    keys, mouse, pose = conditioned(keys, mouse, f(shard.pose[st:end]), 1 + (context - 1) * tr, how)
    b = WorldBatch(torch.from_numpy(shard.frames[st:end])[None], keys[None], mouse[None], pose[None], [""])
    lead = torch.from_numpy(shard.frames[st - LEAD * tr:st])[None]
    pred, _ = teacher_forced_prediction(w.dit, w.vae, w.text_encoder, b, w.cfg, w.scheme, w.device,
                                        context_latents=context, steps=steps, seed=0, lead=lead)
    return psnr(to_uint8(pred), shard.frames[end - tr:end])


def reconstruct(w, shard, start: int) -> np.ndarray:
    """Per-frame PSNR of the VAE's own decoding of the chunk, deep in a stream."""
    tr = w.cfg.vae.temporal
    end = start + 1 + CONTEXT * tr
    video = torch.from_numpy(shard.frames[start - LEAD * tr:end])[None]
    z, hist = stream_latents(w.vae, video, LEAD)
    rec = decode_after(w.vae, w.vae.denormalize(torch.cat([hist, z[:, :, 1:]], 2)), hist.shape[2] + CONTEXT - 1)
    return psnr(to_uint8(rec), shard.frames[end - tr:end])


def show(name: str, rows: list) -> None:
    v = np.stack(rows)
    print(f"  {name}: " + " / ".join(f"{x:.2f}" for x in v.mean(0)) + f"  (mean {v.mean():.2f}, {len(v)} windows)")


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shards")
    p.add_argument("model")
    p.add_argument("--per-shard", type=int, default=4)
    p.add_argument("--every", type=int, default=3, help="every Nth full shard")
    p.add_argument("--parts", default="ahead,uses,history,oracle")
    a = p.parse_args()
    parts = a.parts.split(",")
    w = World.from_pretrained(a.model, device="cpu")
    tr = w.cfg.vae.temporal
    wins = list(windows(a.shards, a.per_shard, a.every, tr))
    cut = lambda s: chunk_start(s, tr)  # noqa: E731
    if "ahead" in parts:
        print("PSNR by frames ahead (dB):")
        show("prediction, 3 steps", [predict(w, sh, s, CONTEXT) for sh, s in wins])
        show("prediction, 1 step", [predict(w, sh, s, CONTEXT, steps=1) for sh, s in wins])
        show("VAE reconstruction", [reconstruct(w, sh, s) for sh, s in wins])
        show("repeat-last", [repeat_last(sh, cut(s), tr) for sh, s in wins])
    if "uses" in parts:
        print("the chunk's conditioning changed:")
        rows = {how: np.stack([predict(w, sh, s, CONTEXT, how) for sh, s in wins]) for how in USES}
        for how in USES:
            show(how, list(rows[how]))
        for how in USES[1:]:
            d = (rows[USES[0]] - rows[how]).mean(1)
            print(f"  {USES[0]} - {how}: {d.mean():+.2f} dB (standard error {d.std(ddof=1) / np.sqrt(len(d)):.2f})")
    if "history" in parts:
        print("after 1, 2, 4 and 7 real latents:")
        for c in (1, 2, 4, CONTEXT):
            show(f"{c} real", [predict(w, sh, s, c) for sh, s in wins])
    if "warp" in parts:
        fov = w.cfg.kinematics.fov
        print("the last real frame turned by the engine's rotation:")
        show("repeat-last", [repeat_last(sh, cut(s), tr) for sh, s in wins])
        for name, sign in (("turned", 1.0), ("turned the wrong way", -1.0)):
            show(name, [psnr(turned(sh, cut(s), tr, fov, sign), sh.frames[cut(s):cut(s) + tr]) for sh, s in wins])
    if "oracle" in parts:
        print("the last real frame's blocks moved, chosen with the target (an upper bound):")
        for block, radius in ((16, 12), (8, 8)):
            show(f"{block}x{block} blocks, +-{radius} px",
                 [psnr(np.stack([oracle_blocks(sh.frames[cut(s) - 1], sh.frames[cut(s) + k], block, radius)
                                 for k in range(tr)]), sh.frames[cut(s):cut(s) + tr]) for sh, s in wins])


if __name__ == "__main__":
    main()

"""`interworld train decoder`: a light VAE decoder, trained against the full one.

The decoder is the slowest stage on a CPU (70% of a small-model chunk) and a large one on a
GPU. A pruned decoder (widths x `width`, as MG-LightVAE prunes Wan's) is trained with the
encoder frozen, so the latents, and the world model trained on them, stay exactly as they
are: its targets are the real frames and the full decoder's output of the same latents.
The result is a copy of the world checkpoint with the light decoder in place of the full
one; validation reports its PSNR against the full decoder and against the real frames.

With `width` 1 the full decoder itself is fine-tuned (from its own weights, on the real frames
alone). `history` latents decoded before the trained ones, without gradients, put the decoder
where a stream spends its time: the VAE trains on short clips, and deep into a long stream its
encoder and decoder leave the regime they learned (docs/TRAINING.md, run 7). Started again on
the same `out`, a run resumes: weights, optimizer, step and discriminator.

`adversarial` > 0 adds a patch discriminator (models/discriminator.py) whose hinge loss, balanced
against the reconstruction loss at the decoder's last layer and scaled by `adversarial`, makes
the decoder draw texture where L1/MSE alone draw the blurred mean (docs/TRAINING.md, run 9).
The discriminator learns alone for the first `disc_start` steps. Validation then also reports
sharpness (variance of the Laplacian, eval/drift.py) of the decoded and the real frames.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from interworld.data.maps import TRAIN, VAL
from interworld.data.shards import ClipDataset
from interworld.io.checkpoint import carried_parts, load_into, load_tensors, read_config, save_checkpoint
from interworld.models.discriminator import Adversary
from interworld.models.vae import CausalVAE, decode_after, frames_after
from interworld.train import common
from interworld.train.vae import psnr
from interworld.train.world import to_video


@torch.no_grad()
def compare(light: CausalVAE, full: CausalVAE, frames: torch.Tensor, device, history: int = 0) -> dict:
    video = to_video(frames.to(device))
    z = full.encode(video)
    a, b = decode_after(light, z, history), decode_after(full, z, history)
    real = frames_after(video, history, full.cfg.temporal)
    return {"val_light_vs_full_psnr": psnr(a, b), "val_light_vs_real_psnr": psnr(a, real),
            "val_full_vs_real_psnr": psnr(b, real), "val_light_sharpness": video_sharpness(a),
            "val_full_sharpness": video_sharpness(b), "val_real_sharpness": video_sharpness(real)}


def video_sharpness(video: torch.Tensor) -> float:
    """eval/drift.py's sharpness of the frames of videos [B, 3, T, H, W] in [-1, 1]."""
    from interworld.engine.world import to_uint8
    from interworld.eval.drift import sharpness

    return sharpness(np.concatenate([to_uint8(v[None]) for v in video]))


def train_decoder(init: str, data: str, out: str, width: float = 0.5, steps: int = 4000, batch: int = 8,
                  latents: int = 3, history: int = 0, lr: float = 5e-4, time_limit: float | None = None,
                  device: str | None = None, seed: int = 0, log_every: int = 50, progress=None,
                  adversarial: float = 0.0, disc_start: int = 200, precision: str = "bf16") -> Path:
    budget = common.Budget(time_limit)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    cfg, meta = read_config(init)
    tensors = load_tensors(init)
    full = CausalVAE(cfg.vae).to(dev).requires_grad_(False).eval()
    load_into(full, tensors, "vae", init)
    lcfg = dataclasses.replace(cfg, vae=dataclasses.replace(cfg.vae, dec_width_scale=width))
    light = CausalVAE(lcfg.vae).to(dev)
    # everything but the decoder is the full VAE's, frozen: the latents do not change.
    # At full width the decoder starts from its own weights (a fine-tune); pruned ones start afresh.
    finetune = width == 1.0
    keep = {k[4:]: v for k, v in tensors.items()
            if k.startswith("vae.") and (finetune or not k.startswith("vae.decoder."))}
    missing, unexpected = light.load_state_dict(keep, strict=False)
    if unexpected or any(not k.startswith("decoder.") for k in missing):
        raise ValueError(f"{init}: its VAE does not fit apart from the decoder (missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]})")
    run = Path(out)
    # the same command on the same `out` goes on from where it stopped (a lease's time limit)
    resume = (run / "state.json").is_file() and (run / "model.safetensors").is_file()
    if resume:
        load_into(light, load_tensors(run), "vae", str(run))
    trainable = list(light.decoder.parameters())
    light.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    names = common.param_names({"decoder": light.decoder})
    amp = common.autocast(dev, precision)
    # the two losses' gradients are balanced at the decoder's last layer
    adv = Adversary(adversarial, light.decoder.head[1].weight, dev, 2 * lr, disc_start, amp) if adversarial > 0 else None
    disc_file = run / "discriminator.safetensors"
    step = 0
    if resume:
        step = common.load_training_state(run)["step"]
        common.load_optimizer(run, opt, names)
        if adv is not None:
            adv.load(disc_file)
    tr = cfg.vae.temporal
    T = 1 + (history + latents - 1) * tr
    ds = ClipDataset(data, T, maps=list(TRAIN), seed=seed + step)
    try:
        val = ClipDataset(data, T, maps=list(VAL), seed=seed)
    except ValueError:
        val = None
    run.mkdir(parents=True, exist_ok=True)
    log = common.Logger(run)
    while step < steps and not budget.done():
        video = to_video(ds.sample(batch)["frames"].to(dev))
        for g in opt.param_groups:
            g["lr"] = common.cosine_lr(step, lr, 100, steps)
        # a quarter of the steps decode from the start of a stream, so its first frames stay right
        h = history if history and step % 4 else 0
        if not h:
            video = video[:, :, :1 + (latents - 1) * tr]
        real = frames_after(video, h, tr)
        with torch.no_grad(), amp:
            z = full.encode(video)
        with amp:
            rec = decode_after(light, z, h).float()
        loss = F.l1_loss(rec, real) + F.mse_loss(rec, real)
        if not finetune:  # a pruned decoder also learns from the full one's output
            with torch.no_grad(), amp:
                target = decode_after(full, z, h).float()
            loss = loss + F.l1_loss(rec, target)
        if adv is not None:
            adv.update(real, rec)
            loss = loss + adv.term(loss, rec, step)
            if (step + 1) % log_every == 0:
                log.log(step + 1, **{k: float(v) for k, v in adv.last_stats.items()})
        step = common.simple_step(opt, loss, step, log, log_every, steps, progress)
    light.eval()
    metrics = compare(light, full, val.fixed(8, seed=1)["frames"], dev, history) if val is not None else {}
    log.log(step, **metrics)
    parts = {"dit": {k[4:]: v for k, v in tensors.items() if k.startswith("dit.")}, "vae": light,
             **carried_parts(tensors)}
    text = {k[5:]: v for k, v in tensors.items() if k.startswith("text.")}
    if text:
        parts["text"] = text
    # read_config took the model section out of meta: the rest (step, metrics) carries over
    trained = {"width": width, "history": history, "steps": step, "adversarial": adversarial, **metrics}
    out_dir = save_checkpoint(run, lcfg, parts, extra={**meta, "decoder": trained})
    if adv is not None:
        adv.save(disc_file)
    common.save_training_state(run, step, opt, names)
    return out_dir



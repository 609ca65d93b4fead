"""The training loop shared by `interworld train vae` and `interworld train world`.

One process per GPU under torchrun (DDP), bf16 autocast on GPUs (or fp32), AdamW with warm-up and
cosine decay, JSON-lines logs (and TensorBoard if installed), validation on the
validation maps, and checkpoints that a later run resumes from: the weights in
interworld's checkpoint layout plus the optimizer state and step, all safetensors,
written before a wall-clock budget runs out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from interworld.config import ModelConfig, get_preset
from interworld.data.maps import TRAIN, VAL
from interworld.data.shards import ClipDataset
from interworld.io.checkpoint import carried_meta, carried_parts, load_into, load_tensors, read_config, save_checkpoint
from interworld.models.discriminator import Adversary
from interworld.models.dit import build_dit
from interworld.models.memory import view_frustum
from interworld.models.text import BuiltinTextEncoder
from interworld.models.vae import CausalVAE
from interworld.train import common
from interworld.train.error_buffer import ErrorBuffer
from interworld.train.latents import LatentClips
from interworld.train.vae import reconstruction_psnr, set_latent_stats, vae_loss
from interworld.train.world import DEFAULT_PROMPT, WorldBatch, teacher_forced_prediction, world_loss


@dataclass
class FitArgs:
    kind: str  # "vae" or "world"
    data: str
    out: str
    preset: str = "small"
    init: str | None = None  # checkpoint to start from (world: its VAE is used and frozen)
    steps: int = 1000
    batch: int = 8
    lr: float = 2e-4
    warmup: int = 100
    latents: int = 8  # latent frames per training clip
    time_limit: float | None = None  # seconds of wall clock for this run
    fit_time: bool = False  # the schedule ends with time_limit: `steps` is then its cap (common.steps_for_time)
    log_every: int = 20
    val_every: int = 500
    ckpt_every: int = 1000
    device: str | None = None
    scheme: str | None = None
    seed: int = 0
    quiet: bool = False
    error_buffer: int = 0  # world: capacity of the error buffer in latent frames (0: off)
    compile: bool = False  # world: torch.compile the DiT blocks (engine/accel.py)
    memory: float = 0.0  # world: share of batches whose last chunk sees retrieved memory frames
    adversarial: float = 0.0  # vae: weight of the patch discriminator's term (0: off)
    adv_start: int = 2000  # vae: steps of reconstruction alone before the decoder feels the discriminator
    vae_dim: int | None = None  # vae: base width of a new VAE (default: the preset's)
    vae_z: int | None = None  # vae: latent channels of a new VAE (default: the preset's; small: 16)
    # vae: which downsampling levels also halve time (e.g. (True, False): latents of 2 frames), for a new
    # VAE or one fine-tuned from --init's, whose temporal convolutions of levels turned off are dropped
    temporal_down: tuple[bool, ...] | None = None
    dit_dim: int | None = None  # world: width of a new DiT (heads of 64, FFN 3x; default: the config's)
    dit_layers: int | None = None  # world: blocks of a new DiT (default: the config's)
    dit_patch: int | None = None  # world: latent pixels per token side of a new DiT (default: the config's)
    dit_camera: bool | None = None  # world: a new DiT with (True) or without (False) camera poses
    dit_ray_rope: bool | None = None  # world: a new DiT whose RoPE follows each token's ray (config.ray_rope)
    prev_latent: bool = False  # world: give the DiT the previous-frame path (config.prev_latent), zero at first
    self_context: float = 0.0  # world: share of batches whose context is the model's own rollout (causal)
    self_context_sink: str = "own"  # world: "other": those batches see another clip's start latent as the sink
    precision: str = "bf16"  # on a GPU: "bf16" autocast, or "fp32" with TF32 matmuls and convolutions
    ema: float = 0.0  # world: decay of an exponential moving average of the weights, saved in OUT/ema (0: off)


VAL_LEAD = 12  # latents of earlier frames before each validation clip: a long stream's state
SELF_CONTEXT_MAX = 4  # latents a self-context batch generates at most: each chunk costs a few sampler passes


def lead_clip_frames(cfg: ModelConfig, context: int) -> int:
    """Frames of a clip for teacher forcing deep in a stream: VAL_LEAD latents of lead, `context`
    real latents (the sink included) and one chunk to predict (scripts/sink_diag.py, turn_diag.py)."""
    return 1 + (VAL_LEAD + context + cfg.chunk_latents - 1) * cfg.vae.temporal


def split_lead(b: dict, cfg: ModelConfig) -> tuple[WorldBatch, torch.Tensor]:
    """A sampled validation clip (ClipDataset.fixed) as (the clip after its VAL_LEAD latents of
    lead, the lead's frames), as `teacher_forced_prediction(batch, ..., lead=...)` takes them."""
    k = VAL_LEAD * cfg.vae.temporal
    batch = WorldBatch(b["frames"][:, k:], b["keys"][:, k:], b["mouse"][:, k:], b["pose"][:, k:],
                       [DEFAULT_PROMPT] * len(b["frames"]))
    return batch, b["frames"][:, :k]


def _val_psnr_world(dit, vae, text, val: ClipDataset, cfg: ModelConfig, scheme: str, device) -> dict:
    from interworld.train.vae import psnr

    batch, lead = split_lead(val.fixed(8, seed=1), cfg)
    f = 1 + (batch.frames.shape[1] - 1) // cfg.vae.temporal
    pred, real = teacher_forced_prediction(dit, vae, text, batch, cfg, scheme, device, context_latents=f - 1,
                                           steps=cfg.steps, lead=lead)
    last_ctx = batch.frames[:, -cfg.vae.temporal - 1].to(device)  # the last real frame before the predicted ones
    repeat = last_ctx.permute(0, 3, 1, 2)[:, :, None].float().div(127.5).sub(1).expand_as(real)
    return {"val_next_chunk_psnr": psnr(pred, real), "val_repeat_last_psnr": psnr(repeat, real)}


class EMA:
    """An exponential moving average of the trainable weights, in float32. Its decay ramps up as
    min(decay, (1 + step) / (10 + step)), so that the average of a short run is not dominated by
    its random start. Resumed from a run's `ema` checkpoint when there is one."""

    def __init__(self, modules: dict[str, torch.nn.Module], decay: float, resume_from: Path | None = None):
        if not 0 < decay < 1:
            raise ValueError(f"--ema {decay}: a decay between 0 and 1 (such as 0.999), or 0 for none")
        self.modules, self.decay = modules, decay
        self.params = {k: dict(m.named_parameters()) for k, m in modules.items()}
        self.avg = {k: {n: p.detach().float().clone() for n, p in ps.items()} for k, ps in self.params.items()}
        if resume_from is not None and (resume_from / "model.safetensors").is_file():
            saved = load_tensors(resume_from)
            for k, ps in self.avg.items():
                for n, v in ps.items():
                    v.copy_(saved[f"{k}.{n}"])

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, ps in self.params.items():
            names = list(ps)
            torch._foreach_lerp_([self.avg[k][n] for n in names], [ps[n].detach().float() for n in names], 1 - d)

    @contextlib.contextmanager
    def applied(self):
        """The modules hold the averaged weights inside the block, their own again after it."""
        own = {k: {n: p.detach().clone() for n, p in ps.items()} for k, ps in self.params.items()}
        with torch.no_grad():
            for k, ps in self.params.items():
                for n, p in ps.items():
                    p.copy_(self.avg[k][n])
        try:
            yield
        finally:
            with torch.no_grad():
                for k, ps in self.params.items():
                    for n, p in ps.items():
                        p.copy_(own[k][n])

    def state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        """Each module's state dict with the averaged weights in place of its own (buffers as they are)."""
        out = {}
        for k, m in self.modules.items():
            sd = m.state_dict()
            out[k] = {n: (self.avg[k][n].to(v.dtype) if n in self.avg[k] else v) for n, v in sd.items()}
        return out


def retime_vae_tensors(tensors: dict[str, torch.Tensor], vae: CausalVAE, where: str) -> dict[str, torch.Tensor]:
    """A VAE checkpoint fitted to `vae` of other temporal downsampling: the temporal convolutions
    of levels that no longer halve time are dropped, those of levels that now do start as `vae`'s
    own; every other tensor must still fit (load_into names any that does not)."""
    own = {f"vae.{k}": v for k, v in vae.state_dict().items()}
    retimed = lambda k: ".time_conv." in k  # noqa: E731
    out = {k: v for k, v in tensors.items() if not (k.startswith("vae.") and retimed(k) and k not in own)}
    new = {k: v for k, v in own.items() if retimed(k) and k not in tensors}
    if common.is_main():
        print(f"VAE of {where} retimed: {len(tensors) - len(out)} temporal tensors dropped, {len(new)} new")
    return {**out, **new}


def fit(a: FitArgs, progress=None) -> Path:
    budget = common.Budget(a.time_limit)  # from the start: loading and encoding data count too
    if a.fit_time and not a.time_limit:
        raise ValueError("--fit-time sets the schedule's length from the time left: give --time-limit too")
    if a.ema and a.kind != "world":
        raise ValueError(f"--ema averages a world model's weights; train {a.kind} keeps none")
    if a.temporal_down is not None and a.kind != "vae":
        raise ValueError(f"--temporal-down shapes a VAE; train {a.kind} uses the VAE of --init as it is")
    device, rank, world = common.setup_distributed(a.device)
    torch.manual_seed(a.seed + rank)
    run = Path(a.out)
    run.mkdir(parents=True, exist_ok=True)
    resume = (run / "config.json").is_file()
    src = run if resume else (Path(a.init) if a.init else None)
    cfg, meta = read_config(src) if src is not None else (get_preset(a.preset), {})
    if not resume and meta.get("kind") == "student":
        # a student samples in few x0 steps; a world model trained from its file (or from a VAE trained
        # from it) samples as its preset does
        p = get_preset(cfg.name)
        cfg = cfg.replace(scheme=p.scheme, sampler=p.sampler, steps=p.steps)
    # a new VAE's shape; a resumed run or --init's VAE keeps its own, so a different value is refused
    # (the same one is fine: a lease's follow-up call resumes with the arguments it started with)
    for flag, val, have in (("--vae-dim", a.vae_dim, cfg.vae.dim), ("--vae-z", a.vae_z, cfg.vae.z_dim)):
        if val is not None and (a.kind != "vae" or val < 1 or (src is not None and val != have)):
            raise ValueError(f"{flag} {val} shapes a new VAE (train vae, a positive value), and "
                             f"{src or 'the preset'} has {have}: leave it out to keep that one, or give a new "
                             f"--out without --init")
    if a.vae_dim and src is None:
        cfg = cfg.replace(vae=dataclasses.replace(cfg.vae, dim=a.vae_dim, dec_dim=a.vae_dim))
    if a.vae_z and src is None:
        cfg = cfg.replace(vae=dataclasses.replace(cfg.vae, z_dim=a.vae_z))
    if a.temporal_down is not None:
        if resume:
            raise ValueError(f"--temporal-down shapes a new VAE, and {run} already has one: resume it without it, "
                             f"or give a new --out")
        if not 0 < len(a.temporal_down) <= len(cfg.vae.dim_mult) - 1:
            raise ValueError(f"--temporal-down needs 1 to {len(cfg.vae.dim_mult) - 1} levels for this VAE "
                             f"({len(cfg.vae.dim_mult) - 1} downsamplings), got {len(a.temporal_down)}")
        cfg = cfg.replace(vae=dataclasses.replace(cfg.vae, temporal_down=tuple(a.temporal_down)))
    scheme = a.scheme or cfg.scheme
    if a.self_context_sink not in ("own", "other") or (a.self_context_sink == "other" and not (
            a.kind == "world" and a.self_context > 0 and a.batch >= 2)):
        raise ValueError(f"--self-context-sink {a.self_context_sink}: own, or other for world training with "
                         f"--self-context P and --batch 2 or more")
    if a.kind == "world" and a.self_context > 0:
        if not 0 < a.self_context <= 1 or scheme != "causal":
            raise ValueError(f"--self-context {a.self_context}: give a share in (0, 1], for the causal scheme "
                             f"(this run trains {scheme})")
        if a.latents < 2 + cfg.chunk_latents:
            raise ValueError(f"--self-context needs clips of at least {2 + cfg.chunk_latents} latents "
                             f"(--latents {a.latents}): the start latent, a generated chunk and a target")
    if a.kind == "world" and a.memory > 0:
        if cfg.memory_latents < 1:
            raise ValueError(f"--memory needs a model with memory frames; {cfg.name} has memory_latents 0")
        cfg = cfg.replace(memory_trained=True)  # generate and play then use memory by default
    if a.kind == "world":
        cfg = cfg.replace(train_prompt=DEFAULT_PROMPT)  # every clip is captioned with it
        if a.prev_latent and not resume:
            cfg = cfg.replace(prev_latent=True)
    tensors = load_tensors(src) if src is not None else {}
    carried = carried_parts(tensors)  # the motion model, unchanged: per frame, whatever the VAE's latents
    carried_info = carried_meta(carried, meta)
    shape = (a.dit_dim, a.dit_layers, a.dit_patch, a.dit_camera, a.dit_ray_rope)
    if a.kind == "world" and any(v is not None for v in shape):  # 0 too: with_dit refuses it
        if resume:
            raise ValueError(f"--dit-dim/--dit-layers/--dit-patch/--no-camera/--ray-rope shape a new DiT, and {run} "
                             f"already has one: resume it without them, or give a new --out")
        if any(k.startswith("dit.") for k in tensors):  # e.g. the shipped model: its VAE is what a user has
            tensors = {k: v for k, v in tensors.items() if k.startswith("vae.")}
            if common.is_main():
                print(f"a new DiT on the VAE of {src}: its DiT and text encoder are not used")
        cfg = cfg.with_dit(*shape)

    vae = CausalVAE(cfg.vae).to(device)
    if any(k.startswith("vae.") for k in tensors):
        if a.temporal_down is not None:
            tensors = retime_vae_tensors(tensors, vae, str(src))
        load_into(vae, tensors, "vae", str(src))
    modules: dict[str, torch.nn.Module] = {"vae": vae}
    if a.kind == "world":
        if not any(k.startswith("vae.") for k in tensors):
            raise ValueError("world training needs a trained VAE: pass --init with a VAE or world checkpoint")
        dit = build_dit(cfg).to(device)
        # the small models learn their built-in encoder; the full ones (umT5) train on empty text states
        text = (BuiltinTextEncoder(cfg.text_dim, cfg.text_len, cfg.builtin_text_layers).to(device)
                if cfg.text_encoder == "builtin" else None)
        if any(k.startswith("dit.") for k in tensors):
            if cfg.prev_latent and "dit.patch_embedding_prev.weight" not in tensors:  # a new path on a trained DiT
                tensors.update({f"dit.{k}": v for k, v in dit.state_dict().items()
                                if k.startswith("patch_embedding_prev.")})
            load_into(dit, tensors, "dit", str(src))
            if text is not None:
                load_into(text, tensors, "text", str(src))
        vae.requires_grad_(False).eval()
        if a.compile:  # in place: parameter names, checkpoints and DDP see the same model
            from interworld.engine.accel import compile_blocks

            compile_blocks(dit)
        modules.update(dit=dit, text=text)
        trainable = {"dit": dit, **({"text": text} if text is not None else {})}
    else:
        trainable = {"vae": vae}
    names = common.param_names(trainable)
    params = [p for m in trainable.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.99), weight_decay=0.01)
    state = common.load_training_state(run) if resume else None
    step = state["step"] if state else 0
    warm_from = 0  # the step the learning-rate warm-up starts from
    if resume and not common.load_optimizer(run, opt, names):
        warm_from = step  # weights without optimizer state (a checkpoint carried to a new lease): warm up again
    ema = EMA(trainable, a.ema, run / "ema" if resume else None) if a.ema else None  # world only (checked above)
    ddp = (lambda m: DDP(m, device_ids=[device.index] if device.type == "cuda" else None)) if world > 1 else None
    wrapped = {k: (ddp(m) if ddp else m) for k, m in trainable.items()}

    T = 1 + (a.latents - 1) * cfg.vae.temporal
    # each rank loads its own share of the shards (all of them if there are too few to share)
    data = ClipDataset(a.data, T, maps=list(TRAIN), seed=a.seed * 1000 + rank + step, part=(rank, world))
    n_frames = data.frames
    amp = common.autocast(device, a.precision)
    if a.kind == "world":  # the VAE is frozen: encode every clip once
        data = LatentClips(data, vae, a.latents, device, seed=a.seed * 1000 + rank + step, amp=amp)
    try:
        lead = VAL_LEAD if a.kind == "world" else 0
        val = ClipDataset(a.data, 1 + (lead + 3) * cfg.vae.temporal, maps=list(VAL), seed=0)
    except ValueError:
        val = None
    log = common.Logger(run)
    if common.is_main() and not resume:
        log.log(step, train_frames=n_frames, val_frames=val.frames if val else 0, world_size=world)
    t_log, last = time.time(), {}
    errors = ErrorBuffer(a.error_buffer) if a.kind == "world" and a.error_buffer > 0 else None
    buffer_file = run / f"error_buffer.{rank}.safetensors"  # each rank fills its own
    if errors is not None and resume:
        errors.load(buffer_file, device)
    adversary = None
    if a.kind == "vae" and a.adversarial > 0:
        adversary = Adversary(a.adversarial, vae.decoder.head[1].weight, device, a.lr, a.adv_start, amp, wrap=ddp)
        if resume:
            adversary.load(run / "discriminator.safetensors")

    def checkpoint(extra=None):
        if errors is not None:
            errors.save(buffer_file)
        if common.is_main():
            parts = {"vae": vae} if a.kind == "vae" else {"dit": modules["dit"], "vae": vae}
            if a.kind == "world" and modules["text"] is not None:
                parts["text"] = modules["text"]
            parts.update(carried)
            save_checkpoint(run, cfg, parts, extra={"kind": a.kind, "step": step, **carried_info, **(extra or {})})
            if ema is not None:  # the averaged weights as a checkpoint of their own, e.g. for eval --checkpoint
                save_checkpoint(run / "ema", cfg, {**parts, **ema.state_dicts()},
                                extra={"kind": a.kind, "step": step, "ema": a.ema, **carried_info})
            if adversary is not None:
                adversary.save(run / "discriminator.safetensors")
            common.save_training_state(run, step, opt, names)

    def validate():
        if val is None or not common.is_main():
            return {}
        for m in trainable.values():
            m.eval()
        if a.kind == "vae":
            b = val.fixed(8, seed=1)
            metrics = {"val_recon_psnr": reconstruction_psnr(vae, b["frames"], device)}
        else:
            metrics = _val_psnr_world(modules["dit"], vae, modules["text"], val, cfg, scheme, device)
            if ema is not None:
                with ema.applied():
                    m_ema = _val_psnr_world(modules["dit"], vae, modules["text"], val, cfg, scheme, device)
                metrics["val_next_chunk_psnr_ema"] = m_ema["val_next_chunk_psnr"]
        for m in trainable.values():
            m.train()
        log.log(step, **metrics)
        return metrics

    for m in trainable.values():
        m.train()
    stop = False
    mem_rng = random.Random(a.seed * 1000 + rank)
    self_rng = random.Random(a.seed * 1000 + rank + 500)
    self_chunks = max(1, min(SELF_CONTEXT_MAX, a.latents - 2) // cfg.chunk_latents)
    last_val: dict = {}
    query_from = a.latents - (cfg.chunk_latents if scheme == "causal" else min(cfg.new_latents, a.latents - 1))
    # memory frames no further from the query than the generator will place them (memory_max_gap)
    mem_window = max(1, (cfg.memory_max_gap or 128) - query_from)
    # the schedule's length: --steps, or with fit_time where the measured speed reaches the time limit,
    # measured from the first log after the warm-up (compiling is over by then) and again at every log
    total, pace = a.steps, None
    while step < total and not stop:
        use_memory = a.kind == "world" and a.memory > 0 and mem_rng.random() < a.memory
        b = data.sample(a.batch, memory=cfg.memory_latents) if use_memory else data.sample(a.batch)
        for g in opt.param_groups:
            rewarm = min(1.0, (step - warm_from + 1) / a.warmup) if warm_from else 1.0
            g["lr"] = common.cosine_lr(step, a.lr, a.warmup, total) * rewarm
        with amp:
            if a.kind == "vae":
                loss, metrics = vae_loss(wrapped["vae"], b["frames"], device, adversary=adversary, step=step)
            else:
                mem = (data.memory(b["start"], cfg.memory_latents, query_from,
                                   view_frustum(cfg.kinematics, data.height, data.width), window=mem_window)
                       if use_memory else None)
                batch = WorldBatch(None, b["keys"], b["mouse"], b["pose"], [DEFAULT_PROMPT] * a.batch,
                                   latents=b["latents"], size=(data.height, data.width), memory=mem)
                n_self = (cfg.chunk_latents * self_rng.randint(1, self_chunks)
                          if a.self_context > 0 and self_rng.random() < a.self_context else 0)
                loss, metrics = world_loss(wrapped["dit"], vae, wrapped.get("text"), batch, cfg, scheme, device,
                                           errors=errors, self_context=n_self, seed=step * world + rank,
                                           foreign_sink=a.self_context_sink == "other")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        if not math.isfinite(float(gn)):
            opt.zero_grad(set_to_none=True)  # skip a step with overflowed gradients rather than poison the weights
        else:
            opt.step()
            if ema is not None:
                ema.update(step)
        step += 1
        last = metrics
        if step % a.log_every == 0:
            dt = time.time() - t_log
            t_log = time.time()
            metrics = {k: float(v) for k, v in metrics.items()}
            loss_avg = float(common.all_reduce_mean(torch.tensor(metrics["loss"], device=device)))
            if a.fit_time and pace is not None:
                plan = common.steps_for_time(step, (step - pace[0]) / (t_log - pace[1]), budget.left(), a.steps)
                # every rank ends the same schedule at the same step, or DDP hangs
                total = int(common.all_reduce_mean(torch.tensor(float(plan), device=device)))
            elif a.fit_time and step >= a.warmup:
                pace = (step, t_log)
            log.log(step, **{**metrics, "loss": loss_avg, "grad_norm": float(gn), "lr": opt.param_groups[0]["lr"],
                             "steps_per_s": a.log_every / dt, "clips_per_s": a.log_every * a.batch * world / dt,
                             **({"planned_steps": total} if a.fit_time else {}),
                             **({"peak_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30}
                                if device.type == "cuda" else {})})
        if progress and common.is_main() and step % a.log_every == 0:
            progress(step, total, {k: float(v) for k, v in last.items()})
        if step % a.val_every == 0:
            last_val = validate()
        if step % a.ckpt_every == 0:
            checkpoint()
        if world == 1 or step % a.log_every == 0:  # every rank must stop at the same step, or DDP hangs
            stop = common.agree(budget.done(), device)
    if a.kind == "vae":  # the DiT trains on unit-scale latents
        set_latent_stats(vae, data.fixed(16, seed=2)["frames"], device)
    # the last step may just have been validated (the VAE's latent statistics change after the loop)
    final = last_val if (a.kind == "world" and last_val and step % a.val_every == 0) else validate()
    checkpoint({**final, "elapsed_s": budget.elapsed()})
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return run

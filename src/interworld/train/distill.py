"""Distillation: the many-step teacher into a few-step student (DMD + self-rollout).

The student starts as a copy of the teacher (or as `student_init`, a smaller world model on the
teacher's VAE, with the fake score) and samples with the x0-renoise sampler in
`student_steps` steps, exactly as the streaming generator does (it *is* the generator:
`Generator.next_chunk_train`): chunk by chunk with the KV cache in the `causal` scheme, or
segment by segment with past and memory frames as context in the official `segment` scheme,
where the teacher and fake score then judge the rollout bidirectionally. Each iteration:

1. self-rollout: from a real start image the student generates `chunks` consecutive chunks
   on its own outputs through its cache (switch off: the cache holds the real latents
   instead, the classic teacher-forced student). Each chunk stops at a random sampler step,
   whose output keeps its graph (Self-Forcing's stochastic exit), so every step is trained;
2. Distribution Matching Distillation: the generated chunks are noised to a random t; the
   frozen teacher (the real score) and a fake-score network trained online on the
   student's samples each predict x0; the student moves along (x0_fake - x0_real),
   normalised by |x0 - x0_real| (DMD's weighting);
3. the fake score learns the student's current distribution by flow matching on the
   detached rollouts, `fake_steps` updates per student update (DMD2's two time-scales): the
   student's rollout serves one, a second rollout without gradients the others;
4. error buffer (switch): residuals of the student's finished first chunk against the real
   latents (its clean estimate minus the ground truth, as the SPEC's error buffer collects),
   every item's, go into a bounded buffer, and sampled residuals corrupt the context written into the
   cache, so the student learns to correct errors of the kind it makes. (Until run 14 the
   residuals were x0 - x0_real of the DMD loss: at high t the teacher's x0 is the blurred
   mean, so they held the sample's detail, not its error.)
5. regression (switch, `regress`): the first chunk, whose context is the real start latent, is
   also pulled by MSE toward the real latents that follow it, to keep the student on the
   engine's scene where DMD alone lets it paint textures of its own (runs 13 to 16; run 21).
   Without self-rollout every chunk's context is real, and every chunk is pulled. The pull is
   toward the mean of what may follow, so it also keeps the few-step blur that DMD would remove
   (run 22); `regress_pool` P applies it to P x P averages of the latents only: the layout and
   colours of the scene, leaving finer detail to DMD.

One rollout serves a batch of clips, each item under its own recorded actions (the
generator's per-item streams), so its real latents are its ground truth and, without
self-rollout, its context. (Until run 15 the batch ran under item 0's actions alone: only
item 0 fed the error buffer, and without self-rollout the batch was item 0's clip repeated.)
Several GPUs: torchrun; gradients are averaged by hand, since the rollout calls the networks
many times per backward.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from interworld.config import ModelConfig
from interworld.data.maps import TRAIN
from interworld.data.shards import ClipDataset
from interworld.diffusion.flow import add_noise, flow_matching_loss, x0_from_velocity
from interworld.engine.generator import Generator
from interworld.io.checkpoint import carried_meta, carried_parts, load_into, load_tensors, read_config, save_checkpoint
from interworld.models.dit import build_dit
from interworld.models.text import BuiltinTextEncoder
from interworld.models.vae import CausalVAE
from interworld.train import common
from interworld.train.error_buffer import ErrorBuffer
from interworld.train.latents import LatentClips
from interworld.train.world import DEFAULT_PROMPT, clip_conditions


@dataclass
class DistillArgs:
    data: str
    out: str
    teacher: str  # a world checkpoint folder (interworld train world)
    steps: int = 1000  # student updates
    batch: int = 4
    chunks: int = 3  # chunks per self-rollout
    student_steps: int = 3
    lr: float = 2e-5
    fake_lr: float = 2e-5
    fake_steps: int = 5  # fake-score updates per student update
    self_rollout: bool = True
    error_buffer: int = 0  # capacity in latent frames; 0: off
    t_min: float = 20.0
    t_max: float = 980.0
    time_limit: float | None = None
    log_every: int = 10
    ckpt_every: int = 500
    device: str | None = None
    seed: int = 0
    scheme: str = "causal"  # the student's: "causal" (KV cache) or "segment" (the official, bidirectional)
    compile: bool = False  # torch.compile the blocks of all three networks (engine/accel.py)
    regress: float = 0.0  # weight of the regression on the real latents where the context is real; 0: off
    regress_pool: int = 1  # the regression on P x P spatial averages of the latents (1: every latent)
    # a world checkpoint of another size on the teacher's VAE and layout: the student and the fake score
    # start from it (and use its text encoder), so a wider teacher can teach a DiT of the shipped size
    student_init: str | None = None
    # the camera poses of the student's rollouts: integrated from the actions by the fixed kinematics
    # (as runs 13-25 did), or "engine": the recorded ones, which the teacher was trained on
    camera: str = "actions"


def rollout_latents(cfg: ModelConfig, chunks: int) -> int:
    """Latent frames of a rollout of `chunks` chunks, the start latent included: chunks of
    chunk_latents in `causal`; in `segment` a first segment of first_latents, then new_latents each."""
    if cfg.scheme == "causal":
        return 1 + chunks * cfg.chunk_latents
    return cfg.first_latents + (chunks - 1) * cfg.new_latents


def first_chunk_latents(cfg: ModelConfig) -> int:
    """Latent frames the first chunk (segment) of a rollout generates after the start latent."""
    return cfg.chunk_latents if cfg.scheme == "causal" else cfg.first_latents - 1


def regression_loss(x0_gen: torch.Tensor, z_real: torch.Tensor, cfg: ModelConfig,
                    first_only: bool = True, pool: int = 1) -> torch.Tensor:
    """MSE of the rollout's chunks whose context is real against the real latents that follow
    under the same actions. With self-rollout only the first chunk's context is real: later
    chunks continue the student's own output, where a real target teaches hedging (self-context
    runs 19 and 20 turned less). Without it (first_only=False) every chunk's context is real.
    pool P > 1: the MSE of the latents' means over P x P blocks, blind to detail within a block."""
    n = first_chunk_latents(cfg) if first_only else x0_gen.shape[2]
    gen, real = x0_gen[:, :, :n].float(), z_real[:, :, 1:1 + n].float()
    if pool > 1:
        gen, real = F.avg_pool3d(gen, (1, pool, pool)), F.avg_pool3d(real, (1, pool, pool))
    return F.mse_loss(gen, real)


def rollout(student, cfg: ModelConfig, ctx, z_real: torch.Tensor, keys, mouse, *, chunks: int, seed: int,
            self_rollout: bool = True, errors: ErrorBuffer | None = None, grad: bool = True,
            exit_steps: list[int] | None = None, poses: torch.Tensor | None = None) -> tuple[torch.Tensor, Generator]:
    """The student's rollout of `chunks` chunks (segments in the segment scheme, cfg.scheme)
    from the start latents z_real[:, :, :1].

    z_real [B, C, F, h, w]: real latents; their later frames are the context without
    self-rollout, and the ground truth of the error buffer's residuals.
    keys/mouse [B, T, *]: each item's actions, the ones its real latents follow; poses [B, T, 5]
    their camera poses, which the rollout then follows (default: integrated from the actions). Returns
    (generated latents [B, C, rollout_latents - 1, h, w], with the graph of each chunk's exit
    step, and the generator).

    errors: the error buffer. Its residuals are the first chunk minus the real latents there,
    when the chunk ran every sampler step: the clean estimate against the ground truth (SPEC),
    from real context only, as the student's finished output is at inference."""
    if keys.dim() != 3 or keys.shape[0] != z_real.shape[0]:
        raise ValueError(f"keys {tuple(keys.shape)}: one action sequence per item, [B, T, K], for latents "
                         f"{tuple(z_real.shape)}")
    gen = Generator(student, cfg, ctx, scheme=cfg.scheme, sampler="x0", seed=seed, memory=cfg.memory_trained,
                    height=z_real.shape[3] * cfg.vae.spatial, width=z_real.shape[4] * cfg.vae.spatial)
    gen.start(z_real[:, :, :1], pose=None if poses is None else poses[:, 0], per_item=True)
    rng = random.Random(seed)
    n_steps = len(gen.ts)
    done = 0  # video frames of actions used so far, after the start frame
    out = []
    for c in range(chunks):
        first = gen.n_latents
        per = gen.frames_for_next()

        def cache_from(x0, first=first):
            ctx_lat = x0 if self_rollout else z_real[:, :, first:first + x0.shape[2]].to(x0)
            return errors.perturb(ctx_lat) if errors is not None else ctx_lat

        exit_step = exit_steps[c] if exit_steps is not None else rng.randrange(n_steps)
        k, m = keys[:, 1 + done: 1 + done + per], mouse[:, 1 + done: 1 + done + per]
        cam = None if poses is None else poses[:, 1 + done: 1 + done + per]
        done += per
        with torch.set_grad_enabled(grad):
            out.append(gen.next_chunk_train(k, m, exit_step, cache_from=cache_from, poses=cam))
        if errors is not None and c == 0 and exit_step == n_steps - 1:
            x = out[-1].detach().float()
            errors.add((x - z_real[:, :, first:first + x.shape[2]].to(x)).permute(0, 2, 1, 3, 4).flatten(0, 1))
    return torch.cat(out, 2), gen


def dmd_loss(x0_gen, z0, teacher, fake, ctx, step, pl, t_min: float, t_max: float, ctx_fake=None):
    """DMD's generator loss on generated latents x0_gen [B, C, F, h, w] after the clean start
    latent z0 [B, C, 1, h, w]; returns (loss, metrics). ctx_fake: the fake score's text states
    where its text encoder is not the teacher's (`student_init`); default ctx."""
    b, f = x0_gen.shape[0], x0_gen.shape[2] + 1
    t = torch.empty(b, device=x0_gen.device).uniform_(t_min, t_max)
    tt = torch.zeros(b, f, device=x0_gen.device)
    tt[:, 1:] = t[:, None]
    with torch.no_grad():
        noise = torch.randn_like(x0_gen)
        x_t = torch.cat([z0, add_noise(x0_gen.detach(), noise, t)], 2)
        x0_real = x0_from_velocity(x_t, teacher(x_t, tt, ctx, step, plucker=pl)[0], tt)[:, :, 1:]
        x0_fake = x0_from_velocity(x_t, fake(x_t, tt, ctx if ctx_fake is None else ctx_fake, step, plucker=pl)[0],
                                   tt)[:, :, 1:]
        weight = (x0_gen.detach().float() - x0_real).abs().mean(dim=(1, 2, 3, 4), keepdim=True).clamp(min=1e-6)
        g = (x0_fake - x0_real) / weight
        target = (x0_gen.detach().float() - g)
    loss = 0.5 * F.mse_loss(x0_gen.float(), target)
    return loss, {"dmd": loss.detach(), "dmd_grad": g.abs().mean()}


def fake_loss(fake, x0_gen, z0, ctx, step, pl):
    """Flow matching of the fake score on the student's (detached) samples."""
    b, f = x0_gen.shape[0], x0_gen.shape[2] + 1
    t = torch.rand(b, device=x0_gen.device) * 1000.0
    tt = torch.zeros(b, f, device=x0_gen.device)
    tt[:, 1:] = t[:, None]
    x0 = torch.cat([z0, x0_gen.detach()], 2)
    noise = torch.randn_like(x0)
    v, _ = fake(add_noise(x0, noise, tt), tt, ctx, step, plucker=pl)
    return flow_matching_loss(v, x0, noise, mask=tt > 0)


def _text_encoder(cfg: ModelConfig, tensors: dict, src: str, device) -> BuiltinTextEncoder:
    text = BuiltinTextEncoder(cfg.text_dim, cfg.text_len, cfg.builtin_text_layers).to(device)
    load_into(text, tensors, "text", src)
    return text.requires_grad_(False).eval()


SIZE_FIELDS = ("dim", "ffn_dim", "num_heads", "num_layers")  # what ModelConfig.with_dit sets
# besides the size, the preset's name may differ, and the sampling (the student's is set by the run)
FREE_FIELDS = SIZE_FIELDS + ("name", "scheme", "sampler", "steps")


def _student_init(path: str, cfg: ModelConfig, teacher_tensors: dict) -> tuple[ModelConfig, dict]:
    """The config and tensors of a world model that starts the student in place of the teacher's
    copy: it may differ from the teacher in the DiT's size only, and must decode with the same VAE
    (its latents are what the teacher scores)."""
    s_cfg, meta = read_config(path)
    if meta.get("kind") != "world":
        raise ValueError(f"--student-init {path} is a {meta.get('kind')} checkpoint: give a world model "
                         f"(interworld train world), whose DiT is a score model for the fake score too")
    same_size = dataclasses.replace(s_cfg, **{f: getattr(cfg, f) for f in FREE_FIELDS})
    differ = [f.name for f in dataclasses.fields(cfg) if getattr(same_size, f.name) != getattr(cfg, f.name)]
    if differ:
        raise ValueError(f"--student-init {path} differs from the teacher in {', '.join(differ)}: only the DiT's "
                         f"size ({', '.join(SIZE_FIELDS)}) may differ")
    theirs = load_tensors(path)
    vae = [k for k in teacher_tensors if k.startswith("vae.")]
    if any(k not in theirs or not torch.equal(theirs[k].half(), teacher_tensors[k].half()) for k in vae):
        raise ValueError(f"--student-init {path} has another VAE than the teacher: train it on the teacher's "
                         f"(train world --init TEACHER --dit-dim N)")
    return s_cfg, theirs


def _average_grads(params) -> None:
    if dist.is_initialized():
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= dist.get_world_size()


def distill(a: DistillArgs, progress=None) -> Path:
    if a.regress < 0:
        raise ValueError(f"--regress {a.regress}: a weight of 0 (off) or more")
    cfg, meta = read_config(a.teacher)
    if meta.get("kind") == "student":  # its 3-step sampler is no score model for DMD to match
        raise ValueError(f"--teacher {a.teacher} is a distilled student (teacher {meta.get('teacher')}): "
                         "distil from a world model (interworld train world)")
    if a.scheme not in ("causal", "segment"):
        raise ValueError(f"unknown scheme {a.scheme!r}: use 'causal' or 'segment'")
    if a.scheme == "causal" and cfg.chunk_latents < 1:
        raise ValueError("a causal student needs chunks of at least one latent frame")
    lat = cfg.latent_shape(1)[2:]
    if a.regress_pool < 1 or lat[0] % a.regress_pool or lat[1] % a.regress_pool:
        raise ValueError(f"--regress-pool {a.regress_pool}: 1 or a divisor of both sides of this model's "
                         f"{lat[0]}x{lat[1]} latents")
    budget = common.Budget(a.time_limit)
    device, rank, world = common.setup_distributed(a.device)
    torch.manual_seed(a.seed + rank)
    run = Path(a.out)
    run.mkdir(parents=True, exist_ok=True)
    resume = (run / "config.json").is_file() and (run / "fake.safetensors").is_file()
    tensors = load_tensors(a.teacher)
    carried = carried_parts(tensors)  # the teacher's motion model, into the student's checkpoints
    vae = CausalVAE(cfg.vae).to(device).requires_grad_(False).eval()
    load_into(vae, tensors, "vae", a.teacher)
    text = _text_encoder(cfg, tensors, a.teacher, device)
    teacher = build_dit(cfg).to(device)
    load_into(teacher, tensors, "dit", a.teacher)
    teacher.requires_grad_(False).eval()
    # the student's network and text encoder: copies of the teacher's, or those of a world model of
    # another size (student_init); a resumed run has its own
    init_from, s_cfg, s_tensors = a.student_init, cfg, None
    if resume:
        s_cfg, meta_run = read_config(run)
        init_from = init_from or meta_run.get("student_init")
        s_src, s_tensors = str(run), load_tensors(run)
    elif a.student_init:
        s_src = a.student_init
        s_cfg, s_tensors = _student_init(s_src, cfg, tensors)
    if s_tensors is None:
        s_text, student, fake = text, copy.deepcopy(teacher), copy.deepcopy(teacher)
    else:
        s_text = _text_encoder(s_cfg, s_tensors, s_src, device)
        student, fake = build_dit(s_cfg).to(device), build_dit(s_cfg).to(device)
        load_into(student, s_tensors, "dit", s_src)
        load_into(fake, load_file(str(run / "fake.safetensors"), device=str(device)) if resume else s_tensors,
                  "dit", s_src)
    student.requires_grad_(True)
    fake.requires_grad_(True)
    if a.compile:  # after the copies, in place: checkpoints keep their parameter names
        from interworld.engine.accel import compile_blocks
        for net in (teacher, student, fake):
            compile_blocks(net)
    scfg = dataclasses.replace(s_cfg, scheme=a.scheme, sampler="x0", steps=a.student_steps)
    step_n = json.loads((run / "state.json").read_text())["step"] if resume else 0
    student.train()
    fake.train()
    opt_s = torch.optim.AdamW(student.parameters(), lr=a.lr, betas=(0.0, 0.999), weight_decay=0.01)
    opt_f = torch.optim.AdamW(fake.parameters(), lr=a.fake_lr, betas=(0.0, 0.999), weight_decay=0.01)
    names_s = common.param_names({"student": student})
    names_f = common.param_names({"fake": fake})
    if resume and (run / "optimizer.safetensors").is_file():
        st = load_file(str(run / "optimizer.safetensors"))
        common.load_optimizer_tensors(opt_s, names_s, st)
        common.load_optimizer_tensors(opt_f, names_f, st)

    n_lat = rollout_latents(scfg, a.chunks)
    clips = ClipDataset(a.data, 1 + (n_lat - 1) * cfg.vae.temporal, maps=list(TRAIN), seed=a.seed + rank,
                        part=(rank, world))
    amp = common.autocast(device)
    data = LatentClips(clips, vae, n_lat, device, seed=a.seed * 1000 + rank + step_n,
                       amp=amp)
    errors = ErrorBuffer(a.error_buffer) if a.error_buffer > 0 else None
    buffer_file = run / f"error_buffer.{rank}.safetensors"  # each rank fills its own
    if errors is not None and resume:
        errors.load(buffer_file, device)
    log = common.Logger(run)
    if common.is_main() and not resume:
        log.log(step_n, train_frames=clips.frames, world_size=world, self_rollout=a.self_rollout,
                error_buffer=a.error_buffer, student_steps=a.student_steps, regress=a.regress,
                regress_pool=a.regress_pool, lr=a.lr)

    def checkpoint():
        if errors is not None:
            errors.save(buffer_file)
        if not common.is_main():
            return
        save_checkpoint(run, scfg, {"dit": student, "vae": vae, "text": s_text, **carried},
                        extra={"kind": "student", "teacher": str(a.teacher), "step": step_n,
                               **carried_meta(carried, meta),
                               **({"student_init": str(init_from)} if init_from else {}),
                               "self_rollout": a.self_rollout, "error_buffer": a.error_buffer,
                               "regress": a.regress, "regress_pool": a.regress_pool, "camera": a.camera})
        tmp = run / "fake.safetensors.tmp"
        save_file({f"dit.{k}": v.detach().cpu().contiguous() for k, v in fake.state_dict().items()}, str(tmp))
        os.replace(tmp, run / "fake.safetensors")
        tmp = run / "optimizer.safetensors.tmp"
        save_file({**common.optimizer_tensors(opt_s, names_s), **common.optimizer_tensors(opt_f, names_f)}, str(tmp))
        os.replace(tmp, run / "optimizer.safetensors")
        tmp = run / "state.json.tmp"
        tmp.write_text(json.dumps({"step": step_n}))
        os.replace(tmp, run / "state.json")

    def sample():
        b = data.sample(a.batch)
        return b["latents"], b["keys"].cpu(), b["mouse"].cpu(), b["pose"].cpu() if a.camera == "engine" else None

    def conditions(gen):  # the teacher and the fake score see the rollout's own actions and poses
        return clip_conditions(scfg, gen.keys, gen.mouse, gen.poses[:, :gen.n_latents],
                               (gen.height, gen.width), a.scheme, device, scfg.chunk_latents, 1, a.batch)

    def fake_update(x0, z0, step, pl):
        with amp:
            lf = fake_loss(fake, x0, z0, ctx_s, step, pl)
        opt_f.zero_grad(set_to_none=True)
        lf.backward()
        _average_grads(fake.parameters())
        torch.nn.utils.clip_grad_norm_(fake.parameters(), 1.0)
        opt_f.step()
        metrics["fake_loss"] = lf.detach()

    it, stop, metrics = 0, False, {}
    ctx = text([DEFAULT_PROMPT] * a.batch)  # the teacher's; the student and fake score see their own
    ctx_s = ctx if s_text is text else s_text([DEFAULT_PROMPT] * a.batch)
    while step_n < a.steps and not stop:
        seed = (a.seed * 100003 + rank * 7919 + it * 31 + step_n) % (2**31)
        # the fake score's own samples: one rollout without gradients serves its first
        # fake_steps - 1 updates (fresh noise levels each), not one rollout per update: at
        # this size a rollout is bound by kernel launches, and it was most of a step's time
        if a.fake_steps > 1:
            z, keys, mouse, poses = sample()
            with amp, torch.no_grad():
                x0_f, gen = rollout(student, scfg, ctx_s, z, keys, mouse, chunks=a.chunks, seed=seed + 1,
                                    self_rollout=a.self_rollout, errors=errors, grad=False, poses=poses)
            step, pl = conditions(gen)
            for _ in range(a.fake_steps - 1):
                fake_update(x0_f, z[:, :, :1], step, pl)
        z, keys, mouse, poses = sample()
        with amp:
            x0_gen, gen = rollout(student, scfg, ctx_s, z, keys, mouse, chunks=a.chunks, seed=seed,
                                  self_rollout=a.self_rollout, errors=errors, grad=True, poses=poses)
        step, pl = conditions(gen)
        z0 = z[:, :, :1]
        fake_update(x0_gen, z0, step, pl)
        with amp:
            ls, dm = dmd_loss(x0_gen, z0, teacher, fake, ctx, step, pl, a.t_min, a.t_max, ctx_fake=ctx_s)
        if a.regress > 0:
            reg = regression_loss(x0_gen, z, scfg, first_only=a.self_rollout, pool=a.regress_pool)
            ls = ls + a.regress * reg
            dm["regress"] = reg.detach()
        opt_s.zero_grad(set_to_none=True)
        ls.backward()
        _average_grads(student.parameters())
        gn = torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        if math.isfinite(float(gn)):
            opt_s.step()
        metrics.update(dm)
        step_n += 1
        if step_n % a.log_every == 0:
            log.log(step_n, **{k: float(v) for k, v in metrics.items()},
                    error_buffer_frames=len(errors) if errors is not None else 0)
            if progress and common.is_main():
                progress(step_n, a.steps, {k: float(v) for k, v in metrics.items()})
        if step_n % a.ckpt_every == 0:
            checkpoint()
        stop = common.agree(budget.done(), device)
        it += 1
    checkpoint()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return run

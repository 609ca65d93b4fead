"""Training the world model (the teacher) with per-frame noise levels: diffusion forcing.

Every latent frame of a clip gets its own timestep, so one network learns to denoise
whole clips (the bidirectional teacher) and to continue from clean context (causal
generation). A share of batches is laid out exactly as inference sees it: the image
latent, or a clean prefix of chunks, at timestep 0 and the rest noisy. The loss covers
the noisy frames only. In the `causal` scheme the block-causal mask of the generator is
used, so training and streaming compute the same function.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from dataclasses import dataclass

import torch

from interworld.config import ModelConfig
from interworld.diffusion.flow import add_noise, flow_matching_loss, sample_train_timesteps
from interworld.engine.generator import Generator, causal_frame_mask, chunk_action_mask, memory_frame_mask
from interworld.models.action import action_windows
from interworld.models.camera import latent_plucker, previous_refs
from interworld.models.dit import Step
from interworld.models.vae import decode_after, frames_after

DEFAULT_PROMPT = "a first-person walk through a freedoom level"


@dataclass
class WorldBatch:
    """A batch of clips. frames [B, T, H, W, 3] uint8; keys [B, T, K]; mouse [B, T, 2];
    pose [B, T, 5]; keys/mouse at frame j are the action that led to frame j (zero at j=0).
    Clips already encoded (train/latents.py) come as `latents` [B, C, F, h, w] with
    `frames` None and the video size in `size`."""

    frames: torch.Tensor | None
    keys: torch.Tensor
    mouse: torch.Tensor
    pose: torch.Tensor
    prompts: list[str]
    latents: torch.Tensor | None = None
    size: tuple[int, int] | None = None
    memory: dict | None = None  # memory frames for the clips' last chunk (LatentClips.memory)

    @property
    def hw(self) -> tuple[int, int]:
        return tuple(self.frames.shape[2:4]) if self.frames is not None else self.size


def to_video(frames: torch.Tensor) -> torch.Tensor:
    """[B, T, H, W, 3] uint8 -> [B, 3, T, H, W] in [-1, 1]."""
    return frames.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


def layout_timesteps(b: int, f: int, cfg: ModelConfig, scheme: str, device, p_image: float = 0.3,
                     p_prefix: float = 0.6, generator=None, start: int | None = None) -> torch.Tensor:
    """Per-frame timesteps: diffusion forcing, plus inference-like layouts.

    - p_image: frame 0 (the start image) clean, as every stream begins;
    - p_prefix: a clean prefix of whole chunks and one shared noise level after it,
      as in streaming (causal) or a segment with past context (segment). Most samples, since
      with per-frame noise alone the context is mostly noised and the model learns to lean on
      it little (docs/TRAINING.md, run 6).
    start: every clip gets the clean prefix of `start` frames (each its own level after it).
    """
    t = sample_train_timesteps(b, f, per_frame=True, shift=cfg.shift, generator=generator)  # laid out on the CPU
    for i in range(b):
        r = 0.0 if start is not None else random.random()
        if r < p_prefix and f > 1:
            if start is not None:
                s = start
            elif scheme == "causal":
                n_chunks = (f - 1) // cfg.chunk_latents
                s = 1 + random.randrange(n_chunks) * cfg.chunk_latents if n_chunks else 1
            else:
                s = random.randrange(1, f)
            shared = sample_train_timesteps(1, 1, per_frame=False, shift=cfg.shift, generator=generator)
            t[i, :s] = 0
            t[i, s:] = float(shared.flatten()[0])
        elif r < p_prefix + p_image:
            t[i, 0] = 0
    return t.to(device)


@functools.lru_cache(maxsize=16)
def _causal_masks(f, chunk, sink, window, first_chunk, tokens, device, n_mem=0, query_from=0):
    """Token mask and action mask of the causal scheme, built once per layout and device;
    with n_mem memory frames in front, seen by the frames from query_from on."""
    fm = causal_frame_mask(f, chunk, sink, window, first_chunk)
    if n_mem:
        fm = memory_frame_mask(fm, n_mem, query_from)
    tok = fm.repeat_interleave(tokens, 0).repeat_interleave(tokens, 1)
    return tok.to(device), chunk_action_mask(f, chunk, first_chunk).to(device)


def attach_memory(cfg: ModelConfig, scheme: str, memory: dict, x: torch.Tensor, t: torch.Tensor, step: Step,
                  plucker: torch.Tensor | None, pose: torch.Tensor, hw: tuple[int, int]):
    """Put memory frames in front of a clip as the generator does for its current chunk: clean
    (t = 0), at their own time positions, with rays relative to the camera of the first frame
    that sees them (`query_from`), without actions. In the causal scheme only the frames from
    query_from on see them; in the segment scheme every frame does, as in its bidirectional pass.

    x [B, C, F, h, w]; t [B, F]; pose [B, F, 5] per latent frame. Returns (x, t, step, plucker)
    over m + F frames."""
    m, q = memory["latents"].shape[2], memory["query_from"]
    b, f = t.shape
    dev = x.device
    x = torch.cat([memory["latents"].to(x.dtype), x], 2)
    t = torch.cat([t.new_zeros(b, m), t], 1)
    pos = torch.cat([memory["pos"].to(dev), step.frame_pos.to(dev).expand(b, -1)], 1)
    mask = step.mask
    if scheme == "causal":
        mask, _ = _causal_masks(f, cfg.chunk_latents, cfg.sink_latents, cfg.window_latents, 1,
                                cfg.tokens_per_frame(*hw), str(dev), m, q)
    mem_view = memory["poses"][..., 3:].to(dev)
    view = torch.cat([mem_view, pose[..., 3:].to(dev).expand(mem_view.shape[0], -1, -1)], 1)
    step = Step(frame_pos=pos, mask=mask, keyboard=step.keyboard, mouse=step.mouse, action_from=m, keep_kv=False,
                action_mask=step.action_mask, view=view)
    if plucker is not None:
        ref = pose[:, q:q + 1].to(dev).expand(-1, m, -1)
        mem_pl = latent_plucker(memory["poses"].to(dev), ref, *hw, cfg.vae.spatial, cfg.kinematics)
        plucker = torch.cat([mem_pl.to(plucker.dtype), plucker], 1)
    return x, t, step, plucker


def clip_conditions(cfg: ModelConfig, keys: torch.Tensor, mouse: torch.Tensor, lat_poses: torch.Tensor,
                    hw: tuple[int, int], scheme: str, device, chunk: int, first_chunk: int, batch: int):
    """Everything but the latents and the text that the DiT is conditioned on for a clip, laid out
    as the generator does: action windows, frame-to-frame Plucker rays, the scheme's masks.

    keys/mouse [B, T, *] per video frame; lat_poses [B, F, 5] per latent frame. B may be 1 for
    one action stream shared by a batch of `batch` clips (distillation). Returns (Step, plucker)."""
    f = lat_poses.shape[1]
    ids = torch.arange(f)
    kb = ms = None
    if cfg.action is not None:
        tr, w = cfg.vae.temporal, cfg.action.windows
        kb = action_windows(keys.float(), ids.to(keys.device), tr, w).to(device).expand(batch, -1, -1, -1)
        ms = action_windows(mouse.float(), ids.to(mouse.device), tr, w).to(device).expand(batch, -1, -1, -1)
    pl = None
    if cfg.camera:
        p = lat_poses.to(device)  # all clips at once: one batch of kernels
        pl = latent_plucker(p, previous_refs(p), *hw, cfg.vae.spatial, cfg.kinematics)
        pl = pl.expand(batch, *pl.shape[1:])
    mask = amask = None
    if scheme == "causal":
        s = cfg.tokens_per_frame(*hw)
        mask, amask = _causal_masks(f, chunk, cfg.sink_latents, cfg.window_latents, first_chunk, s, str(device))
    step = Step(frame_pos=ids.to(device), mask=mask, keyboard=kb, mouse=ms, action_mask=amask, keep_kv=False,
                view=lat_poses[..., 3:].to(device))
    return step, pl


def encode_and_condition(dit_cfg: ModelConfig, vae, text_encoder, batch: WorldBatch, scheme: str, device,
                         chunk: int, first_chunk: int):
    """Latents of a clip, its conditions (`clip_conditions`) and its text states.
    Returns (z [B, C, F, h, w], Step, plucker, text context)."""
    cfg = dit_cfg
    if batch.latents is not None:
        z = batch.latents.to(device)
    else:
        with torch.no_grad():
            z = vae.normalize(vae.encode(to_video(batch.frames.to(device)))).float()
    b, f = z.shape[0], z.shape[2]
    lat_poses = batch.pose[:, ::cfg.vae.temporal][:, :f]
    step, pl = clip_conditions(cfg, batch.keys, batch.mouse, lat_poses, batch.hw, scheme, device, chunk,
                               first_chunk, b)
    ctx = text_encoder(batch.prompts) if text_encoder is not None else torch.zeros(b, 1, cfg.text_dim, device=device)
    return z, step, pl, ctx


@torch.no_grad()
def self_rollout_context(dit, cfg: ModelConfig, ctx: torch.Tensor, z: torch.Tensor, keys: torch.Tensor,
                         mouse: torch.Tensor, n: int, seed: int, poses: torch.Tensor | None = None) -> torch.Tensor:
    """z [B, C, F, h, w] with latents 1..n replaced by the model's own rollout from z's first latent,
    each clip under its own actions (keys/mouse [B, T, *] per video frame): the causal generator
    as `generate` streams it (the config's sampler and steps), without memory. The rest stay real.
    poses [B, T, 5]: the clip's camera poses, which the rollout then follows, as the rest of the
    clip's conditioning does (default: integrated from the actions by the fixed kinematics)."""
    if n % cfg.chunk_latents or not 0 < n < z.shape[2]:
        raise ValueError(f"{n} self-generated latents: a whole number of chunks of {cfg.chunk_latents}, "
                         f"fewer than the clip's {z.shape[2]}")
    dit = getattr(dit, "module", dit)  # the network inside DDP: these passes need no gradient sync
    sp = cfg.vae.spatial
    gen = Generator(dit, cfg, ctx, scheme="causal", seed=seed, memory=False, height=z.shape[3] * sp,
                    width=z.shape[4] * sp)
    gen.start(z[:, :, :1], pose=None if poses is None else poses[:, 0], per_item=True)
    out, done = [z[:, :, :1]], 1  # done: video frames so far, whose actions are used
    for _ in range(n // cfg.chunk_latents):
        per = gen.frames_for_next()
        cam = None if poses is None else poses[:, done:done + per]
        out.append(gen.next_chunk(keys[:, done:done + per], mouse[:, done:done + per], cam).to(z))
        done += per
    return torch.cat(out + [z[:, :, n + 1:]], 2)


def with_sink_from(z: torch.Tensor, sink_from: torch.Tensor) -> torch.Tensor:
    """z [B, C, F, h, w] with clip i's first latent (the attention sink) taken from clip sink_from[i]."""
    return torch.cat([z[sink_from.to(z.device), :, :1], z[:, :, 1:]], 2)


def world_loss(dit, vae, text_encoder, batch: WorldBatch, cfg: ModelConfig, scheme: str, device,
               generator=None, errors=None, self_context: int = 0, seed: int = 0,
               foreign_sink: bool = False) -> tuple[torch.Tensor, dict]:
    """errors: an ErrorBuffer (train/error_buffer.py) whose residuals corrupt the clean
    context and which collects this batch's residuals; None trains on clean context.
    self_context n > 0 (causal): the context is the start latent and n latents the model generates
    from it (`self_rollout_context`, noise seed `seed`), the targets the real latents after them, so
    the model learns to continue, and correct, its own output as it must in a rollout.
    foreign_sink (with self_context): the DiT sees the next clip's start latent as the sink, while the
    rollout still starts from the clip's own, so that, as deep in a rollout, the sink is not the place
    the context continues from and copying it does not pay (docs/TRAINING.md, run 19)."""
    z, step, pl, ctx = encode_and_condition(cfg, vae, text_encoder, batch, scheme, device, cfg.chunk_latents, 1)
    b, f = z.shape[0], z.shape[2]
    t = layout_timesteps(b, f, cfg, scheme, device, generator=generator,
                         start=1 + self_context if self_context else None)
    noise = torch.randn(z.shape, generator=generator).to(device) if generator is not None else torch.randn_like(z)
    if self_context:
        if scheme != "causal":
            raise ValueError("self-generated context is made by the causal generator: train the causal scheme")
        # under the clip's own poses: the ones its real latents and the conditioning below follow
        z_in = self_rollout_context(dit, cfg, ctx.detach(), z, batch.keys, batch.mouse, self_context, seed,
                                    poses=batch.pose)
        if foreign_sink:
            if b < 2:
                raise ValueError("another clip's sink needs at least 2 clips in a batch")
            z_in = with_sink_from(z_in, torch.arange(b).roll(-1))  # clean (t = 0): not a target
    else:
        z_in = errors.corrupt_context(z, t) if errors is not None else z  # the target stays the clean z
    x_t = add_noise(z_in, noise, t)
    if batch.memory is not None:
        lat_poses = batch.pose[:, ::cfg.vae.temporal][:, :f]
        xm, tm, sm, plm = attach_memory(cfg, scheme, batch.memory, x_t, t, step, pl, lat_poses, batch.hw)
        v = dit(xm, tm, ctx, sm, plucker=plm)[0][:, :, -f:]
    else:
        v, _ = dit(x_t, t, ctx, step, plucker=pl)
    loss = flow_matching_loss(v, z, noise, mask=t > 0)
    if errors is not None:
        errors.collect(x_t, v, z, t)
    # metrics stay on the device: reading them is a sync, done only when logging
    return loss, {"loss": loss.detach(), "t_mean": t.mean()}


@torch.no_grad()
def stream_latents(vae, frames: torch.Tensor, lead: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip's latents as a long stream has them. frames [B, T, H, W, 3]: `lead` latents' worth of
    earlier frames (lead * temporal), then the clip. The clip's first frame is encoded alone (the
    start image); its later latents come from one causal encoding of all of `frames`, so the
    encoder is in the state of a long stream, as in training (train/latents.py) and generation:
    a clip encoded from its own start gives other latents for its first few (docs/TRAINING.md,
    run 7). Returns (clip latents [B, C, F, h, w], the latents of the lead and of the clip's first
    frame [B, C, lead + 1, h, w]: the decoder's history before the clip's second latent), normalised."""
    tr = vae.cfg.temporal
    seq = vae.normalize(vae.encode(to_video(frames))).float()
    img = vae.normalize(vae.encode(to_video(frames[:, lead * tr:lead * tr + 1]))).float()
    return torch.cat([img, seq[:, :, lead + 1:]], 2), seq[:, :, :lead + 1]


@torch.no_grad()  # a sampler: each step's graph would chain to the next (eval, validation)
def teacher_forced_prediction(dit, vae, text_encoder, batch: WorldBatch, cfg: ModelConfig, scheme: str, device,
                              context_latents: int, steps: int = 8, seed: int = 0,
                              lead: torch.Tensor | None = None,
                              sink_from: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-chunk prediction with real context: encode the clip, keep the first
    `context_latents` latent frames clean, sample the rest, and decode them after the real ones;
    returns (predicted video, real video) of the predicted frames, both [B, 3, T', H, W] in [-1, 1].
    lead [B, k * temporal, H, W, 3]: frames before the clip, so that its latents and their decoding
    are those of a long stream (`stream_latents`), not of a stream's first seconds.
    sink_from [B]: the DiT sees clip sink_from[i]'s first latent (the attention sink) in place of
    clip i's, as a long rollout sees a start frame far behind; the decoding is unchanged."""
    from interworld.diffusion.flow import timesteps
    from interworld.diffusion.samplers import sample

    tr = cfg.vae.temporal
    frames = batch.frames.to(device)
    n_lead = 0 if lead is None else lead.shape[1] // tr
    allf = frames if lead is None else torch.cat([lead.to(device), frames], 1)
    z, history = stream_latents(vae, allf, n_lead)
    batch = dataclasses.replace(batch, latents=z)
    f_all = z.shape[2]
    z, step, pl, ctx = encode_and_condition(cfg, vae, text_encoder, batch, scheme, device,
                                            f_all - context_latents, context_latents)
    b, _, f, h, w = z.shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, z.shape[1], f - context_latents, h, w, generator=g).to(device)
    c = context_latents
    seen = z if sink_from is None else with_sink_from(z, sink_from)

    def denoise(xn, tv):
        full = torch.cat([seen[:, :, :c], xn], 2)
        tt = torch.zeros(b, f, device=device)
        tt[:, c:] = float(tv)
        v, _ = dit(full, tt, ctx, step, plucker=pl)
        return v[:, :, c:]

    # the x0 sampler's re-noising draws from the seeded generator too: from the global one, an eval's
    # teacher forcing changed with whatever drew before it (a motion model's init, run 28)
    kw = {"generator": g} if cfg.sampler == "x0" else {}
    pred = sample(cfg.sampler, denoise, x, timesteps(steps, cfg.shift), **kw)
    # decoded as the stream goes: the real latents before the prediction, then the prediction
    stream = torch.cat([history, z[:, :, 1:c], pred], 2)
    out = decode_after(vae, vae.denormalize(stream), history.shape[2] + c - 1)
    return out, frames_after(to_video(frames), c, tr)

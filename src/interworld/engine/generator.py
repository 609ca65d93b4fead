"""Streaming generation in latent space: actions in, latent chunks out.

Two schemes over the same DiT weights:

* `segment` (Matrix-Game-3.0): each iteration denoises `new_latents` frames together
  with clean context (retrieved memory frames + the last `past_latents` frames) in one
  bidirectional pass, recomputed at every sampler step. The first segment is the image
  latent plus `first_latents - 1` new frames.
* `causal`: block-causal over chunks of `chunk_latents` frames with a KV cache holding
  `sink_latents` first frames and the last `window_latents` frames, so memory stays
  bounded and an action shows in the very next chunk. After a chunk is sampled it is
  run once more, clean (t = 0), to write its keys and values into the cache; this makes
  streaming exactly equal to the full-sequence block-causal forward (`causal_reference`).

Memory (camera-aware, both schemes): past latent frames wait in a bounded bank with their
poses; those whose views overlap the new frames' come back as clean context. In `segment`
they join the bidirectional pass; in `causal` their keys and values, from one clean pass per
chunk, join the chunk's denoising passes beside the cache (never the cache itself).

Context latents always enter at timestep 0 and are never re-encoded: the sampler only
ever updates the new frames, so the context stays exactly as given.

A batch of B streams runs under one action stream (play, generate: B = 1), or, started with
`per_item=True`, each item under its own actions, poses and memory bank (distillation's
rollouts, batched evaluation): the cache and the recent latents are shared, since every item
has the same latent indices.
"""

from __future__ import annotations

import itertools
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from interworld.config import ModelConfig
from interworld.diffusion.flow import timesteps as make_timesteps
from interworld.diffusion.samplers import sample as run_sampler
from interworld.engine.accel import KVParts
from interworld.engine.memory_bank import MemoryBank
from interworld.models.action import action_windows
from interworld.models.camera import integrate_poses, latent_plucker, previous_refs
from interworld.models.dit import Step, WanDiT
from interworld.models.memory import overlap_topk, retrieve, view_frustum


@dataclass
class KVCache:
    """Per-expert, per-block keys and values of the cached latent frames, bounded in size.

    `pieces`: each appended chunk stays a piece of its own and eviction slices views of them, so
    nothing is ever copied. For a cache in host memory (`BlockOffload`), where joining 12 GB per
    chunk on the host cost seconds; the offloader joins a block's pieces on the GPU."""

    sink: int
    window: int
    frames: list[int] = field(default_factory=list)  # absolute latent index of each cached frame
    kv: dict[str, list] = field(default_factory=dict)  # per block: (k, v), or KVParts of them with `pieces`
    tokens_per_frame: int = 0
    pieces: bool = False

    def prefix(self, expert: str):
        return self.kv.get(expert)

    def append(self, expert: str, kvs, frame_ids: list[int]) -> None:
        old = self.kv.get(expert)
        if self.pieces:
            self.kv[expert] = [KVParts([*(old[i] if old else []), kv]) for i, kv in enumerate(kvs)]
            return
        self.kv[expert] = kvs if old is None else [
            (torch.cat([a[0], b[0]], 1), torch.cat([a[1], b[1]], 1)) for a, b in zip(old, kvs)]

    def commit(self, frame_ids: list[int]) -> None:
        """Record the frames just appended, then evict all but the sinks and the window."""
        self.frames += frame_ids
        keep = [i for i, f in enumerate(self.frames) if f < self.sink or f >= self.frames[-1] + 1 - self.window]
        if len(keep) == len(self.frames):
            return
        s = self.tokens_per_frame
        if self.pieces:
            for name, blocks in self.kv.items():
                self.kv[name] = [_keep_pieces(parts, keep, s) for parts in blocks]
        else:
            idx = torch.tensor([i * s + j for i in keep for j in range(s)])
            for name, kvs in self.kv.items():
                self.kv[name] = [(k[:, idx.to(k.device)], v[:, idx.to(v.device)]) for k, v in kvs]
        self.frames = [self.frames[i] for i in keep]

    def nbytes(self) -> int:
        pairs = [kv for blocks in self.kv.values() for b in blocks for kv in (b if self.pieces else [b])]
        return sum(t.numel() * t.element_size() for kv in pairs for t in kv)


def _keep_pieces(parts: list, keep: list[int], s: int) -> "KVParts":
    """The frames `keep` (indices over all pieces, in order) as views: each run of kept frames
    within a piece becomes one slice of it."""
    out, start, keep = KVParts(), 0, set(keep)
    for k, v in parts:
        n = k.shape[1] // s
        for kept, run in itertools.groupby(range(n), key=lambda i: start + i in keep):
            if kept:
                run = list(run)
                out.append((k[:, run[0] * s:(run[-1] + 1) * s], v[:, run[0] * s:(run[-1] + 1) * s]))
        start += n
    return out


def causal_frame_mask(n_frames: int, chunk: int, sink: int, window: int, first_chunk: int | None = None) -> torch.Tensor:
    """Frame-level mask of the block-causal scheme: a frame sees its own chunk, the sink
    frames and the `window` frames before its chunk starts. `first_chunk` lets chunk 0
    (the image latent) be shorter than the rest."""
    first = chunk if first_chunk is None else first_chunk
    starts = torch.tensor([0 if i < first else first + (i - first) // chunk * chunk for i in range(n_frames)])
    ends = torch.tensor([first if i < first else min(first + ((i - first) // chunk + 1) * chunk, n_frames)
                         for i in range(n_frames)])
    q = torch.arange(n_frames)[:, None]
    k = torch.arange(n_frames)[None, :]
    same = (k >= starts[q]) & (k < ends[q])
    before = k < starts[q]
    return same | (before & ((k < sink) | (k >= starts[q] - window)))


def chunk_action_mask(n_frames: int, chunk: int, first_chunk: int) -> torch.Tensor:
    """Action temporal attention in the causal scheme stays inside each chunk (the action
    windows already carry 12 frames of history), so it needs no cache of its own."""
    ids = torch.tensor([0 if i < first_chunk else 1 + (i - first_chunk) // chunk for i in range(n_frames)])
    return ids[:, None] == ids[None, :]


class Generator:
    """Holds the state of a batch of streams: latents, poses, actions, KV cache, noise generator.
    Actions and poses are kept per action stream: [S, ...] with S = 1 (one stream for the
    batch) or B (`start(..., per_item=True)`)."""

    def __init__(self, dit, cfg: ModelConfig, context: torch.Tensor, *, scheme: str | None = None,
                 steps: int | None = None, sampler: str | None = None, timesteps: list[float] | None = None,
                 seed: int | list[int] = 0, height: int | None = None, width: int | None = None, memory: bool = True,
                 motion=None):
        self.dit, self.cfg = dit, cfg
        self.motion = motion  # a learned action-to-motion model (models/motion.py), else the fixed kinematics
        self.velocity = None  # its state: the last world displacement
        self.scheme = scheme or cfg.scheme
        if self.scheme not in ("segment", "causal"):
            raise ValueError(f"unknown scheme {self.scheme!r}: use 'segment' or 'causal'")
        self.ts = list(timesteps) if timesteps else make_timesteps(steps or cfg.steps, cfg.shift)
        self.sampler = sampler or cfg.sampler
        self.height, self.width = height or cfg.height, width or cfg.width
        self.memory = memory
        p = next(dit.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.context = context.to(self.device)
        # one seed: one draw for the whole batch; one seed per item: each item's noise its own, so an
        # item's stream is the same whichever batch it runs in (eval's cases, batched or not)
        seeds = [seed] if isinstance(seed, int) else list(seed)
        if len(seeds) not in (1, self.context.shape[0]):
            raise ValueError(f"{len(seeds)} seeds for a batch of {self.context.shape[0]}: give one, or one per item")
        self.gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.win = (cfg.action.windows * cfg.vae.temporal) if cfg.action is not None else 0
        # latent frames [B, C, 1, h, w]: the last few by index, older ones in the bounded memory bank
        self.recent: dict[int, torch.Tensor] = {}
        self.banks: list[MemoryBank] = []  # one per action stream; none with memory off
        self.last_memory: list[int] = []  # the memory frames the last chunk retrieved (stream 0's)
        self._count = 0
        self.poses = torch.zeros(1, 0, 5)  # [S, latent frames, 5]
        self.keys = torch.zeros(1, 0, len_keys(cfg))  # [S, video frames, K]
        self.mouse = torch.zeros(1, 0, 2)
        self.video_pose = torch.zeros(1, 5)
        self.cache = KVCache(cfg.sink_latents, cfg.window_latents)
        self.written = None  # the last latent frame written to the cache: the next frame's `Step.prev`
        self.profile = False  # when set, stages are timed (with a device sync) into stage_times
        self.stage_times: dict[str, list[float]] = {}

    @contextmanager
    def timed(self, stage: str):
        if not self.profile:
            yield
            return
        sync = device_sync(self.device)
        sync()
        t0 = time.perf_counter()
        yield
        sync()
        self.stage_times.setdefault(stage, []).append(time.perf_counter() - t0)

    # ---------------------------------------------------------------- helpers
    @property
    def n_latents(self) -> int:
        return self._count

    @property
    def streams(self) -> int:
        return self.poses.shape[0]

    @property
    def bank(self) -> MemoryBank | None:
        """The memory bank of a batch under one action stream."""
        return self.banks[0] if len(self.banks) == 1 else None

    def latent(self, i: int) -> torch.Tensor:
        """Latent frame i [B, C, 1, h, w], if the stream still holds it (recent frames, or the memory banks)."""
        if i in self.recent:
            return self.recent[i]
        if self.banks and all(i in b for b in self.banks):
            return torch.cat([b.get(i) for b in self.banks])
        raise KeyError(f"latent frame {i} is no longer held (only recent frames and the memory bank are kept)")

    def _append(self, x0: torch.Tensor) -> None:
        for z in x0.detach().float().split(1, dim=2):
            i = self._count
            self.recent[i] = z
            items = z.split(1) if len(self.banks) > 1 else [z]
            for bank, zi, pose in zip(self.banks, items, self.poses[:, i]):
                bank.add(i, zi, pose)
            self._count += 1
        keep = max(self.cfg.past_latents, 1)
        for i in [j for j in self.recent if j < self._count - keep]:
            del self.recent[i]

    def frames_for_next(self) -> int:
        """Video frames the next call of `next_chunk` produces."""
        return self.new_count() * self.cfg.vae.temporal

    def new_count(self) -> int:
        if self.scheme == "causal":
            return self.cfg.chunk_latents
        return self.cfg.first_latents - 1 if self.n_latents == 1 else self.cfg.new_latents

    def _experts(self):
        return self.dit.experts() if hasattr(self.dit, "experts") else [("main", self.dit)]

    def _expert_for(self, t: float):
        return self.dit.expert(torch.tensor(t)) if hasattr(self.dit, "expert") else self.dit

    def _windows(self, latent_ids: torch.Tensor):
        if self.win == 0:
            return None, None
        kb = action_windows(self.keys, latent_ids, self.cfg.vae.temporal, self.cfg.action.windows)
        ms = action_windows(self.mouse, latent_ids, self.cfg.vae.temporal, self.cfg.action.windows)
        b = self.context.shape[0]
        return kb.expand(b, -1, -1, -1).to(self.device), ms.expand(b, -1, -1, -1).to(self.device)

    def _plucker(self, poses: torch.Tensor, refs: torch.Tensor) -> torch.Tensor | None:
        """poses, refs [S, F, 5] -> rays [B, F, ...]."""
        if not self.cfg.camera:
            return None
        pl = latent_plucker(poses.to(self.device), refs.to(self.device), self.height, self.width,
                            self.cfg.vae.spatial, self.cfg.kinematics)
        return pl.expand(self.context.shape[0], -1, -1, -1, -1).to(self.device, self.dtype)

    def _randn(self, shape) -> torch.Tensor:
        if len(self.gens) == 1:
            return torch.randn(shape, generator=self.gens[0])
        return torch.cat([torch.randn((1, *shape[1:]), generator=g) for g in self.gens])

    def _noise(self, n: int) -> torch.Tensor:
        c, _, h, w = self.cfg.latent_shape(1, self.height, self.width)
        return self._randn((self.context.shape[0], c, n, h, w)).to(self.device)

    # ---------------------------------------------------------------- the stream
    def start(self, z0: torch.Tensor, pose: torch.Tensor | None = None, per_item: bool = False) -> None:
        """Begin a stream from the clean latent of the first image, z0 [B, C, 1, h, w]; pose [5]
        (or [B, 5] per item). per_item: each batch item follows its own actions (`next_chunk`
        then takes keys [B, n, K] and mouse [B, n, 2]) and has its own memory bank."""
        s = z0.shape[0] if per_item else 1
        # poses live on the CPU (a training batch's may come from the GPU)
        self.video_pose = torch.zeros(s, 5) if pose is None else pose.float().cpu().reshape(-1, 5).expand(s, 5).clone()
        self.poses = self.video_pose[:, None].clone()
        self.velocity = [None] * s  # a stream starts at rest
        self.recent, self._count = {}, 0
        use_bank = self.memory and self.cfg.memory_latents > 0
        self.banks = [MemoryBank(max(self.cfg.memory_bank, 3), radius=4 * self.cfg.kinematics.move_step,
                                 fov=self.cfg.kinematics.fov) for _ in range(s)] if use_bank else []
        self._append(z0.to(self.device))
        self.keys = torch.zeros(s, 1, len_keys(self.cfg))
        self.mouse = torch.zeros(s, 1, 2)
        self.cache = KVCache(self.cfg.sink_latents, self.cfg.window_latents)
        self.written = None
        if self.scheme == "causal":
            self._write_cache([0], self.latent(0))

    def _record_actions(self, keys: torch.Tensor, mouse: torch.Tensor, poses: torch.Tensor | None = None) -> None:
        """Append one chunk's actions, keys [n, K] / mouse [n, 2] for every stream, or [S, n, *] one per
        stream, and the poses they lead to; or `poses` [n, 5] / [S, n, 5], the camera's own (the
        engine's, where one runs beside), in place of the ones integrated from the actions."""
        n, s = self.frames_for_next(), self.streams
        keys, mouse = keys.float().cpu(), mouse.float().cpu()
        if keys.dim() == 2:
            keys, mouse = keys[None].expand(s, -1, -1), mouse[None].expand(s, -1, -1)
        if keys.shape[:2] != (s, n) or mouse.shape[:2] != (s, n):
            raise ValueError(f"this chunk needs actions for {n} video frames of {s} action stream(s), got keys "
                             f"{tuple(keys.shape)} and mouse {tuple(mouse.shape)}")
        if poses is not None:
            poses = torch.as_tensor(poses, dtype=torch.float32).cpu()
            poses = poses[None].expand(s, -1, -1) if poses.dim() == 2 else poses
            if poses.shape != (s, n, 5):
                raise ValueError(f"this chunk needs camera poses [{s}, {n}, 5] (x, y, z, yaw, pitch per video "
                                 f"frame), got {tuple(poses.shape)}")
            # a learned motion model picks up from the camera's last displacement
            path = torch.cat([self.video_pose[:, None], poses], 1)
            self.velocity = list(path[:, -1, :2] - path[:, -2, :2])
            vp = poses
        else:
            vps = []
            for i in range(s):
                if self.motion is not None:
                    vp, self.velocity[i] = self.motion.integrate(self.video_pose[i], keys[i], mouse[i],
                                                                 self.cfg.kinematics, self.velocity[i])
                else:
                    vp = integrate_poses(self.video_pose[i], keys[i], mouse[i], self.cfg.kinematics)
                vps.append(vp)
            vp = torch.stack(vps)
        self.video_pose = vp[:, -1]
        self.keys = torch.cat([self.keys, keys], 1)
        self.mouse = torch.cat([self.mouse, mouse], 1)
        self.poses = torch.cat([self.poses, vp[:, self.cfg.vae.temporal - 1 :: self.cfg.vae.temporal]], 1)

    @torch.no_grad()
    def next_chunk(self, keys: torch.Tensor, mouse: torch.Tensor, poses: torch.Tensor | None = None) -> torch.Tensor:
        """keys [n, K], mouse [n, 2] for the n = frames_for_next() video frames to make (or
        [B, n, *], one per item, for a stream started with per_item); poses [n, 5] or [B, n, 5]:
        the camera's poses for those frames, where they are known (default: from the actions).

        Returns the new clean latents [B, C, n/temporal, h, w].
        """
        if not self._count:
            raise RuntimeError("call start() with the first image latent before next_chunk()")
        n_new = self.new_count()
        first_new = self.n_latents
        self._record_actions(keys, mouse, poses)
        new_ids = torch.arange(first_new, first_new + n_new)
        if self.scheme == "causal":
            x0 = self._causal_chunk(new_ids)
        else:
            x0 = self._segment_chunk(new_ids)
        self._append(x0)
        return x0

    def next_chunk_train(self, keys: torch.Tensor, mouse: torch.Tensor, exit_step: int,
                         cache_from=None, poses: torch.Tensor | None = None) -> torch.Tensor:
        """The student's self-rollout step in distillation: as `next_chunk`, but the few-step
        sampler stops at `exit_step` and that step's x0 keeps its graph. What later chunks see
        as context (the KV cache in `causal`, the past frames and memory in `segment`) is made
        from `cache_from(x0)` (detached; default x0 itself), which lets training substitute real
        latents (no self-rollout) or corrupted ones (error buffer). poses: as in `next_chunk`."""
        if self.sampler != "x0":
            raise ValueError("self-rollout training needs the x0 sampler")
        first_new = self.n_latents
        n_new = self.new_count()
        self._record_actions(keys, mouse, poses)
        new_ids = torch.arange(first_new, first_new + n_new)
        if self.scheme == "causal":
            x0 = self._causal_chunk(new_ids, exit_step=exit_step, cache_from=cache_from)
            self._append(x0)
        else:
            x0 = self._segment_chunk(new_ids, exit_step=exit_step)
            self._append(x0 if cache_from is None else cache_from(x0))
        return x0

    def _sample(self, denoise, n_new: int, exit_step: int | None = None) -> torch.Tensor:
        calls = [0]

        def timed_denoise(x, t):
            calls[0] += 1
            with self.timed(f"denoise step {calls[0]}"):
                return denoise(x, t)

        kw = {"noise_fn": self._randn} if self.sampler == "x0" else {}
        if exit_step is not None:
            kw["exit_step"] = exit_step
        return run_sampler(self.sampler, timed_denoise, self._noise(n_new), self.ts, **kw)

    # ---------------------------------------------------------------- causal
    def _write_cache(self, ids: list[int], z: torch.Tensor) -> None:
        frame_ids = torch.tensor(ids)
        kb, ms = self._windows(frame_ids)
        poses = self.poses[:, frame_ids]
        refs = previous_refs(poses, self.poses[:, ids[0] - 1] if ids[0] > 0 else None)
        pl = self._plucker(poses, refs)
        t = torch.zeros(z.shape[0], len(ids), device=self.device)
        for name, expert in self._experts():
            step = Step(frame_pos=frame_ids, keyboard=kb, mouse=ms, prev=self.written, view=poses[..., 3:])
            _, kvs = expert(z.to(self.device), t, self.context, step, plucker=pl, kv_prefix=self.cache.prefix(name))
            if not self.cache.frames and kvs[0][0].device != self.device:  # offloaded to the host: no host copies
                self.cache.pieces = True
            self.cache.append(name, kvs, ids)
        self.cache.tokens_per_frame = kvs[0][0].shape[1] // len(ids)
        self.cache.commit(ids)
        self.written = z[:, :, -1:].to(self.device)

    def _memory(self, mems: list[list[int]], q: int):
        """The retrieved frames of each action stream (as many for each): latents [B, C, n, h, w],
        poses [S, n, 5] and RoPE time positions ([n], or [B, n] when the streams' differ)."""
        z = torch.cat([torch.cat([bank.get(i) for i in m], dim=2) for bank, m in zip(self.banks, mems)])
        poses = torch.stack([self.poses[k, m] for k, m in enumerate(mems)])
        pos = torch.stack([self.memory_positions(m, q) for m in mems])
        return z, poses, pos[0] if len(mems) == 1 else pos

    def _memory_kv(self, mems: list[list[int]], q: int) -> dict[str, list]:
        """Keys and values of the retrieved memory frames for the chunk starting at latent q, per
        expert: one clean pass (t = 0) in which they see only each other, with rays relative to
        camera q. They join the prefix of this chunk's denoising passes only, never the cache, so
        the cache holds what it would without memory (`causal_reference` with `memory`)."""
        z, poses, pos = self._memory(mems, q)
        z = z.to(self.device, self.dtype)
        pl = self._plucker(poses, self.poses[:, q, None].expand_as(poses))
        t = torch.zeros(z.shape[0], z.shape[2], device=self.device)
        step = Step(frame_pos=pos, view=poses[..., 3:])
        return {name: expert(z, t, self.context, step, plucker=pl)[1] for name, expert in self._experts()}

    def _prefix(self, name: str, mem_kv: dict | None):
        cache = self.cache.prefix(name)
        if not mem_kv:
            return cache
        if cache is None:
            return mem_kv[name]
        if self.cache.pieces:  # in host memory: joined on the device, block by block (BlockOffload)
            return [KVParts([m, *c]) for m, c in zip(mem_kv[name], cache)]
        return [(torch.cat([m[0], c[0]], 1), torch.cat([m[1], c[1]], 1)) for m, c in zip(mem_kv[name], cache)]

    def _causal_chunk(self, new_ids: torch.Tensor, exit_step: int | None = None, cache_from=None) -> torch.Tensor:
        mem_kv, self.last_memory = None, []
        if self.banks:
            with self.timed("memory retrieval"):
                mems = self.memory_ids(new_ids, exclude=set(self.cache.frames), sink=None)
                self.last_memory = mems[0]
            if mems[0]:
                with self.timed("memory keys/values"):
                    mem_kv = self._memory_kv(mems, int(new_ids[0]))
        with self.timed("conditions (actions, rays)"):
            kb, ms = self._windows(new_ids)
            poses = self.poses[:, new_ids]
            pl = self._plucker(poses, previous_refs(poses, self.poses[:, int(new_ids[0]) - 1]))

        def denoise(x, t):
            tt = torch.full((x.shape[0], x.shape[2]), float(t), device=self.device)
            expert = self._expert_for(float(t))
            name = next(n for n, e in self._experts() if e is expert)
            step = Step(frame_pos=new_ids, keyboard=kb, mouse=ms, keep_kv=False, prev=self.written,
                        view=poses[..., 3:])
            v, _ = expert(x, tt, self.context, step, plucker=pl, kv_prefix=self._prefix(name, mem_kv))
            return v

        x0 = self._sample(denoise, len(new_ids), exit_step)
        with self.timed("kv-cache update"), torch.no_grad():
            self._write_cache(new_ids.tolist(), (x0 if cache_from is None else cache_from(x0)).detach())
        return x0

    # ---------------------------------------------------------------- segment
    def memory_positions(self, mem: list[int], query_pos: int) -> torch.Tensor:
        """RoPE time positions of memory frames: their own latent index, but no further back from
        the query than cfg.memory_max_gap (the longest gap the weights were trained on)."""
        gap = self.cfg.memory_max_gap
        return torch.tensor([i if gap is None else max(i, query_pos - gap) for i in mem], dtype=torch.long)

    def memory_ids(self, new_ids: torch.Tensor, exclude, sink: int | None = 1) -> list[list[int]]:
        """Per action stream, up to memory_latents bank frames (not in `exclude`) whose views overlap
        the new frames'; as many for every stream (the fewest any has), so the batch stays one tensor."""
        if not self.banks:  # memory off, or a model without memory frames
            return [[] for _ in range(self.streams)]
        frustum = view_frustum(self.cfg.kinematics, self.height, self.width)
        q = self.poses[:, new_ids]
        query = q[:, torch.linspace(0, q.shape[1] - 1, min(5, q.shape[1])).round().long()]
        if self.streams == 1:
            candidates = [i for i in self.banks[0].ids() if i not in exclude]
            return [retrieve(self.poses[0, : self.n_latents], candidates, query[0], self.cfg.memory_latents,
                             sink=sink, **frustum)]
        # every stream at once (`retrieve`'s rule, batched: one call instead of one per stream)
        cand = sorted(set().union(*(b.ids() for b in self.banks)) - set(exclude))
        if self.cfg.memory_latents <= 0 or not cand:
            return [[] for _ in range(self.streams)]
        pinned = [sink] if sink in cand and all(sink in b for b in self.banks) else []
        rest = [i for i in cand if i not in pinned]
        valid = torch.tensor([[i in b for i in rest] for b in self.banks], dtype=torch.bool).reshape(self.streams, -1)
        k = min(self.cfg.memory_latents - len(pinned), int(valid.sum(1).min()))
        if k <= 0:
            return [list(pinned) for _ in range(self.streams)]
        top = overlap_topk(query, self.poses[:, rest], valid, k, **frustum)
        return [sorted(pinned + [rest[j] for j in row]) for row in top.tolist()]

    def _segment_chunk(self, new_ids: torch.Tensor, exit_step: int | None = None) -> torch.Tensor:
        n_new, q = len(new_ids), int(new_ids[0])
        mems = [[] for _ in range(self.streams)]
        if self.n_latents == 1:
            past = [0]
        else:
            past = list(range(max(0, self.n_latents - self.cfg.past_latents), self.n_latents))
            with self.timed("memory retrieval"):
                mems = self.memory_ids(new_ids, past, sink=1 if self.n_latents > 1 else 0)
        self.last_memory = mems[0]
        n_mem = len(mems[0])
        ids = torch.tensor(past + new_ids.tolist())  # the past and new frames, after the memory frames
        past_z = [self.latent(i) for i in past]
        with self.timed("conditions (actions, rays)"):
            kb, ms = self._windows(ids)
            seq_poses = self.poses[:, ids]
            refs = previous_refs(seq_poses, self.poses[:, max(past[0] - 1, 0)])
            pos = ids
            if n_mem:
                mem_z, mem_poses, mem_pos = self._memory(mems, q)
                past_z = [mem_z, *past_z]
                refs = torch.cat([self.poses[:, q, None].expand_as(mem_poses), refs], 1)
                seq_poses = torch.cat([mem_poses, seq_poses], 1)
                pos = torch.cat([mem_pos, ids.expand(*mem_pos.shape[:-1], -1)], -1)
            pl = self._plucker(seq_poses, refs)
        context = torch.cat(past_z, dim=2).to(self.device)
        n_ctx = context.shape[2]

        def denoise(x, t):
            full = torch.cat([context, x.to(context.dtype)], dim=2)
            tt = torch.zeros(x.shape[0], full.shape[2], device=self.device)
            tt[:, n_ctx:] = float(t)
            step = Step(frame_pos=pos, keyboard=kb, mouse=ms, action_from=n_mem, keep_kv=False,
                        view=seq_poses[..., 3:])
            v, _ = self.dit(full, tt, self.context, step, plucker=pl)
            return v[:, :, n_ctx:]

        return self._sample(denoise, n_new, exit_step)


def device_sync(device: torch.device):
    """A function that waits for the work queued on `device`'s current stream. Not the whole device:
    with decode on another GPU, a send of latents may wait on an NCCL stream for the decoder, and
    that wait belongs to no stage of this one (collectives the stage needs are on its stream)."""
    if device.type != "cuda":
        return lambda: None
    return torch.cuda.current_stream(device).synchronize


def len_keys(cfg: ModelConfig) -> int:
    return cfg.action.keyboard_dim if cfg.action is not None else 6


def memory_frame_mask(frame_mask: torch.Tensor, n_mem: int, query_from: int) -> torch.Tensor:
    """A causal frame mask [F, F] with n_mem memory frames put in front: they see each other,
    and the frames from `query_from` on (the chunk being generated) see them too."""
    f = frame_mask.shape[0]
    out = torch.zeros(n_mem + f, n_mem + f, dtype=torch.bool)
    out[:n_mem, :n_mem] = True
    out[n_mem:, n_mem:] = frame_mask
    out[n_mem + query_from:, :n_mem] = True
    return out


@torch.no_grad()
def causal_reference(dit: WanDiT, cfg: ModelConfig, latents: torch.Tensor, t: torch.Tensor, context: torch.Tensor,
                     keys: torch.Tensor, mouse: torch.Tensor, poses: torch.Tensor, height: int, width: int,
                     first_chunk: int = 1, memory: dict | None = None) -> torch.Tensor:
    """The full-sequence block-causal forward that streaming with the KV cache must equal.

    latents [B, C, F, h, w] (frame 0 is the image latent, then chunks of chunk_latents);
    t [B, F]; keys/mouse [T, *] per video frame; poses [F, 5] per latent frame.
    memory: {"latents" [B, C, m, h, w], "pos" [m], "poses" [m, 5], "query_from": frame index}:
    memory frames that the frames from query_from on see, with rays relative to that frame's
    camera (the streaming generator's memory for one chunk). Returns v of the F frames.
    """
    f = latents.shape[2]
    ids = torch.arange(f)
    mask = causal_frame_mask(f, cfg.chunk_latents, cfg.sink_latents, cfg.window_latents, first_chunk)
    amask = chunk_action_mask(f, cfg.chunk_latents, first_chunk)
    s = cfg.tokens_per_frame(height, width)
    kb = ms = None
    if cfg.action is not None:
        kb = action_windows(keys[None].float(), ids, cfg.vae.temporal, cfg.action.windows)
        ms = action_windows(mouse[None].float(), ids, cfg.vae.temporal, cfg.action.windows)
        kb, ms = kb.expand(latents.shape[0], -1, -1, -1), ms.expand(latents.shape[0], -1, -1, -1)
    pl = None
    if cfg.camera:
        pl = latent_plucker(poses, previous_refs(poses), height, width, cfg.vae.spatial, cfg.kinematics)
    m, views = 0, poses
    if memory is not None:
        m, q = memory["latents"].shape[2], memory["query_from"]
        views = torch.cat([memory["poses"], poses])
        latents = torch.cat([memory["latents"], latents], 2)
        t = torch.cat([t.new_zeros(t.shape[0], m), t], 1)
        ids = torch.cat([memory["pos"], ids])
        mask = memory_frame_mask(mask, m, q)
        if cfg.camera:
            mem_pl = latent_plucker(memory["poses"], poses[q][None].expand(m, -1), height, width, cfg.vae.spatial,
                                    cfg.kinematics)
            pl = torch.cat([mem_pl, pl])
    if pl is not None:
        pl = pl[None].expand(latents.shape[0], -1, -1, -1, -1)
    step = Step(frame_pos=ids, mask=mask.repeat_interleave(s, 0).repeat_interleave(s, 1), keyboard=kb, mouse=ms,
                action_from=m, action_mask=amask, keep_kv=False, view=views[..., 3:])
    v, _ = dit(latents, t, context, step, plucker=pl)
    return v[:, :, m:]

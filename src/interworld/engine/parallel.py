"""Several GPUs for one stream: sequence-parallel DiT attention, and VAE decode on a GPU of its own.

Sequence parallel (DeepSpeed-Ulysses). Every rank holds the whole DiT and 1/N of each latent
frame's tokens. All of a block except self-attention works token by token (adaLN, camera,
cross-attention, FFN) or per spatial position across frames (the action module), so it runs on
the shard as it is. Around self-attention one all-to-all swaps the token shard for a head shard
(every token, heads/N) and a second swaps back before the output projection. The shard is taken
inside each frame, not along the flattened sequence, because the per-frame modulation and the
action module index tokens by frame; a frame whose token count N does not divide is padded, and
the padding is dropped before attention, so it is never a key (and never needs a mask). Heads
that N does not divide are padded with zero heads, whose outputs are dropped: simpler than ring
attention, at the cost of the padded share (no preset needs it on 2, 4 or 8 DiT GPUs; on 3 or 7 some do).

`parallelize_sequence(model, group)` applies this to an unchanged WanDiT / MoEDiT with hooks
(torchtitan's way): the patch embeddings shard, the head gathers, and each self-attention's
q/k/v and output projection get the two all-to-alls.

KV cache (the `causal` scheme): each rank keeps its heads of every cached token, exactly the
(k, v) its attention produced after the all-to-all. That is what the next chunk's attention on
this rank needs, so the cache is never communicated, and it takes 1/N of the memory.

Decode on its own GPU: with a separate decode rank, the DiT ranks' leader sends each chunk's
latents (`LatentSender`) and goes on with the next chunk while the last rank decodes
(`DecodeServer`). The decode rank always has the next receive posted, so a send completes as
soon as the data moves; the leader waits only when it is two chunks ahead of the decoder, which
tells it through the process group's store when each chunk is decoded (NCCL alone would buffer
the sends and let the queue, and the latency, grow).
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.nn as nn

from interworld.engine.generator import device_sync


# ------------------------------------------------------------------------- sequence parallel
def _pad_to(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Zero-pad dimension `dim` of x up to `size`."""
    extra = size - x.shape[dim]
    if extra == 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_zeros(shape)], dim)


class SequenceParallel:
    """The state the hooks of one parallelized DiT share: the group, and the token layout of
    the forward in progress (set when its patch embedding runs)."""

    def __init__(self, group, heads: int, head_dim: int):
        self.group = group
        self.world, self.rank = dist.get_world_size(group), dist.get_rank(group)
        self.heads, self.head_dim = heads, head_dim
        self.local_heads = -(-heads // self.world)
        self.frames = self.per_frame = 0
        self._rope_in = self._rope_out = None

    @property
    def local(self) -> int:
        """Tokens of each frame on each rank (the last rank's may include padding)."""
        return -(-self.per_frame // self.world)

    def shard(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """[..., F*S, ...] (tokens at `dim`, frame-major) -> this rank's [..., F*local, ...]."""
        x = _pad_to(x.unflatten(dim, (self.frames, self.per_frame)), dim + 1, self.local * self.world)
        return x.narrow(dim + 1, self.rank * self.local, self.local).flatten(dim, dim + 1)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """[B, F*local, ...] on each rank -> [B, F*S, ...], the same on every rank."""
        parts = [torch.empty_like(x) for _ in range(self.world)]
        dist.all_gather(parts, x.contiguous(), group=self.group)
        full = torch.cat([p.unflatten(1, (self.frames, self.local)) for p in parts], 2)
        return full[:, :, : self.per_frame].flatten(1, 2)

    def end(self, out: torch.Tensor) -> torch.Tensor:
        """The head's output gathered; the forward's RoPE tables let go (at full size they are
        hundreds of MB that the next forward recomputes anyway)."""
        self._rope_in = self._rope_out = None
        return self.gather(out)

    def to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, F*local, heads*hd] -> [B, F*S, local_heads*hd]: every token, this rank's heads."""
        c = self.local_heads * self.head_dim
        send = _pad_to(x, 2, c * self.world).unflatten(2, (self.world, c)).permute(2, 0, 1, 3).contiguous()
        recv = torch.empty_like(send)
        dist.all_to_all_single(recv, send, group=self.group)  # recv[i]: rank i's tokens, my heads
        full = recv.unflatten(2, (self.frames, self.local)).permute(1, 2, 0, 3, 4).flatten(2, 3)
        return full[:, :, : self.per_frame].flatten(1, 2)

    def to_tokens(self, y: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_heads`: [B, F*S, local_heads*hd] -> [B, F*local, heads*hd]."""
        y = _pad_to(y.unflatten(1, (self.frames, self.per_frame)), 2, self.local * self.world)
        send = y.unflatten(2, (self.world, self.local)).permute(2, 0, 1, 3, 4).contiguous()
        recv = torch.empty_like(send)
        dist.all_to_all_single(recv, send, group=self.group)  # recv[j]: head group j of my tokens
        out = recv.permute(1, 2, 3, 0, 4).flatten(3)[..., : self.heads * self.head_dim]
        return out.flatten(1, 2)

    def local_rope(self, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's heads of the RoPE tables [F*S, heads, hd/2] (head-perturbed thetas differ
        per head). Every block gets the same tables, so the slice is kept for the whole forward."""
        if self._rope_in is None or self._rope_in[0] is not cos or self._rope_in[1] is not sin:
            n = self.local_heads
            self._rope_in = (cos, sin)
            self._rope_out = tuple(_pad_to(t, 1, n * self.world).narrow(1, self.rank * n, n) for t in (cos, sin))
        return self._rope_out


def parallelize_sequence(model: nn.Module, group=None) -> nn.Module:
    """Make a WanDiT (or each expert of a MoEDiT) sequence-parallel over `group`, in place.

    Every rank of the group must call the model together with the same inputs; each gets the
    full output. The (k, v) a forward returns hold this rank's heads (the KV cache, see above).
    """
    group = group or dist.group.WORLD
    if dist.get_world_size(group) == 1:
        return model
    experts = [m for _, m in model.experts()] if hasattr(model, "experts") else [model]
    for dit in experts:
        if getattr(dit, "sequence_parallel", None) is not None:
            raise ValueError("this model is already sequence-parallel")
        dit.sequence_parallel = sp = SequenceParallel(group, dit.cfg.num_heads, dit.cfg.head_dim)
        _install_hooks(dit, sp)
    return model


def _install_hooks(dit: nn.Module, sp: SequenceParallel) -> None:
    def patches(_, args, out):  # [B, dim, F, gh, gw]: learn the layout, keep this rank's tokens
        sp.frames, sp.per_frame = out.shape[2], out.shape[3] * out.shape[4]
        return sp.shard(out.flatten(2), dim=2)  # the forward's flatten(2).transpose(1, 2) follows

    dit.patch_embedding.register_forward_hook(patches)
    if getattr(dit, "patch_embedding_wancamctrl", None) is not None:  # camera rays, tokens frame-major
        dit.patch_embedding_wancamctrl.register_forward_pre_hook(lambda _, args: (sp.shard(args[0]),))
    dit.head.register_forward_hook(lambda _, args, out: sp.end(out))
    for block in dit.blocks:
        attn = block.self_attn
        attn.heads = sp.local_heads  # q, k, v arrive head-sharded and unflatten into local heads
        attn.register_forward_pre_hook(lambda _, args: (args[0], *sp.local_rope(args[1], args[2]), *args[3:]))
        # q and k after their norms (RMSNorm spans all heads). The (k, v) the attention returns for
        # the cache are then this rank's heads: see "KV cache" above
        for proj in (attn.norm_q, attn.norm_k, attn.v):
            proj.register_forward_hook(lambda _, args, out: sp.to_heads(out))
        attn.o.register_forward_pre_hook(lambda _, args: (sp.to_tokens(args[0]),))


# ------------------------------------------------------------------------- ranks
@dataclass
class Ranks:
    """Who does what: ranks 0..N-2 run the DiT (sequence-parallel among themselves) and rank
    N-1 decodes, or, without a decode rank, all run the DiT and rank 0 decodes in line."""

    rank: int
    size: int
    device: torch.device
    decode_rank: int | None
    dit_group: object  # a ProcessGroup (no member object on the decode rank)

    @property
    def is_decoder(self) -> bool:
        return self.rank == self.decode_rank

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @property
    def dit_size(self) -> int:
        return self.size - (self.decode_rank is not None)


def init_ranks(device: str = "cuda", separate_decode: bool = True, timeout_s: float = 900) -> Ranks:
    """Join the torchrun job (NCCL on GPUs, gloo on CPUs), or use the process group already set up."""
    if not dist.is_initialized():
        if "RANK" not in os.environ:
            raise RuntimeError("no process group: run under torchrun --nproc-per-node N")
        if int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])) != int(os.environ["WORLD_SIZE"]):
            # latency compares perf_counter readings of two processes: one host, one clock
            raise RuntimeError("multi-GPU inference runs on one host (torchrun --nnodes 1)")
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", timeout=timedelta(seconds=timeout_s))
    rank, size = dist.get_rank(), dist.get_world_size()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank))) if device.startswith("cuda") else torch.device("cpu")
    decode = size - 1 if (separate_decode and size > 1) else None
    group = dist.group.WORLD if decode is None else dist.new_group([r for r in range(size) if r != decode])
    return Ranks(rank, size, dev, decode, group)


def broadcast_module(module: nn.Module, src: int = 0, group=None) -> None:
    """Copy `module`'s parameters and buffers from rank `src` to every rank of `group`, so that
    replicas are identical however each rank built its copy."""
    if dist.get_world_size(group) == 1:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=src, group=group)


def broadcast_tensor(t: torch.Tensor | None, src: int, group, device: torch.device) -> torch.Tensor:
    """`t` (float32 on arrival) from rank `src` to every rank of `group`, whatever its shape."""
    if dist.get_world_size(group) == 1:
        return t.float()
    meta = torch.full((9,), -1, dtype=torch.int64, device=device)
    if dist.get_rank() == src:
        meta[: t.dim() + 1] = torch.tensor([t.dim(), *t.shape])
    dist.broadcast(meta, src=src, group=group)
    shape = meta[1: int(meta[0]) + 1].tolist()
    out = t.float().contiguous() if dist.get_rank() == src else torch.empty(shape, device=device)
    dist.broadcast(out, src=src, group=group)
    return out


# ------------------------------------------------------------------------- decode pipeline
def max_chunk_latents(cfg, scheme: str) -> int:
    """The most latent frames one message carries (the first segment is the longest)."""
    return cfg.chunk_latents if scheme == "causal" else max(cfg.first_latents - 1, cfg.new_latents, 1)


_pipelines = itertools.count()  # leader and decoder each make one end per pipeline, in the same order


def _decoded_key(pipeline: int, message: int) -> str:
    return f"interworld/pipeline{pipeline}/decoded/{message}"


class LatentSender:
    """The DiT leader's end of the decode pipeline. Messages have a fixed size (NCCL matches
    sends to receives by size): a header [latent frames, start time, stop] and a latent buffer
    of `shape` = [B, C, max frames, h, w], float32.

    Flow control: message k goes out only once the decoder has finished message k - depth
    (it says so through the process group's store). NCCL buffers sends that no receive has met
    yet, so without this a decoder slower than the DiT falls further behind with every chunk
    and the latency grows without bound (ti2v-5b on 4 GPUs: 5.4 s to 9.0 s in 5 chunks)."""

    def __init__(self, dst: int, shape: tuple[int, ...], device: torch.device, depth: int = 2):
        self.dst, self.shape, self.device, self.depth = dst, tuple(shape), device, depth
        self.inflight: list = []
        self.sync = device_sync(device)
        self.pipeline, self.sent = next(_pipelines), 0
        self.store = dist.distributed_c10d._get_default_store()

    def _drain(self) -> None:
        """Wait for the sends in flight."""
        for w in self.inflight:
            w.wait()
        self.sync()  # NCCL's wait orders the stream; this makes it a wait of the host
        self.inflight = []

    def _wait(self) -> float:
        t0 = time.perf_counter()
        self._drain()
        if self.sent >= self.depth:
            self.store.wait([_decoded_key(self.pipeline, self.sent - self.depth)])
        return time.perf_counter() - t0

    def send(self, z: torch.Tensor, t_start: float, stop: bool = False) -> float:
        """Send one chunk's clean latents [B, C, n, h, w] with the time its actions were known;
        returns the seconds spent waiting for the decoder (the previous send, and the chunk
        `depth` back being decoded)."""
        if z.shape[2] > self.shape[2]:
            raise ValueError(f"a chunk of {z.shape[2]} latent frames; messages hold at most {self.shape[2]}")
        waited = self._wait()
        header = torch.tensor([z.shape[2], t_start, float(stop)], dtype=torch.float64, device=self.device)
        buf = _pad_to(z.detach().float().to(self.device), 2, self.shape[2]).contiguous()
        self.inflight = [dist.isend(header, self.dst), dist.isend(buf, self.dst)]
        self.sent += 1
        return waited

    def close(self) -> None:
        """Tell the decoder to stop (its posted receives are matched), and wait for the sends."""
        self.send(torch.zeros(self.shape[:2] + (0,) + self.shape[3:], device=self.device), time.perf_counter(), True)
        self._drain()


class DecodeServer:
    """The decode rank: receives latents from `src` and decodes them with a streaming decoder,
    each chunk's first latent frame apart so the time to its first video frame is known."""

    def __init__(self, vae: nn.Module, src: int, shape: tuple[int, ...], device: torch.device):
        self.vae, self.src, self.shape, self.device = vae, src, tuple(shape), device
        self.sync = device_sync(device)
        self.pipeline = next(_pipelines)
        self.store = dist.distributed_c10d._get_default_store()

    def _post(self):
        header = torch.empty(3, dtype=torch.float64, device=self.device)
        buf = torch.empty(self.shape, dtype=torch.float32, device=self.device)
        return header, buf, [dist.irecv(header, self.src), dist.irecv(buf, self.src)]

    @torch.no_grad()
    def run(self, on_frames=None) -> list[dict]:
        """Decode until told to stop. `on_frames(video)` gets each chunk's frames [1, 3, T, H, W]
        in [-1, 1] (the first message, the start latent, gives one frame). Returns one record per
        message: t_start (the leader's), t_first (first frame decoded), t_done, decode_s."""
        decoder, records = self.vae.stream_decoder(), []
        pending = self._post()
        while True:
            header, buf, works = pending
            for w in works:
                w.wait()
            n, t_start, stop = header.tolist()
            if stop:
                return records
            pending = self._post()  # the next chunk lands while this one decodes
            t0 = time.perf_counter()
            z = self.vae.denormalize(buf[:, :, : int(n)])
            first = decoder.decode(z[:, :, :1])
            self.sync()
            t_first = time.perf_counter()
            rest = decoder.decode(z[:, :, 1:]) if n > 1 else first[:, :, :0]
            self.sync()
            t_done = time.perf_counter()
            self.store.set(_decoded_key(self.pipeline, len(records)), "1")  # the leader may send on
            if on_frames is not None:
                on_frames(torch.cat([first, rest], 2))
            records.append({"t_start": t_start, "t_first": t_first, "t_done": t_done, "decode_s": t_done - t0})

"""Speed-ups applied as wrappers around an unchanged model (torchtitan style).

Each one leaves the DiT's code and parameter names as they are, so checkpoints, tests and
the reference paths stay the same, and each can be switched on alone to measure it:

* `compile_blocks`: torch.compile of every transformer block (all blocks share one
  compiled graph: they have the same code), in the eager model's place. `reduce-overhead`
  adds CUDA graphs; `max-autotune-no-cudagraphs` tunes kernels without them.
* `attention_backend`: puts one backend of scaled_dot_product_attention (cuDNN, flash,
  efficient or math) first, instead of PyTorch's own order.
* `BlockOffload`: keeps the blocks' weights, and the keys and values they attend to, in host
  memory and copies each block to the GPU just before it runs, the next one on a side stream
  while this one computes, for cards too small for the whole model.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from interworld.config import ATTENTION_BACKENDS, COMPILE_MODES


def dit_blocks(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a WanDiT, or of both experts of a MoEDiT."""
    experts = [e for _, e in model.experts()] if hasattr(model, "experts") else [model]
    return [b for e in experts for b in e.blocks]


def compile_blocks(model: nn.Module, mode: str = "default", fallback: bool = True) -> nn.Module:
    """Compile each block in place (no `_orig_mod.` in parameter names: checkpoints load as before).

    fallback: where dynamo cannot compile something, run it eagerly with a warning instead of
    failing, so a long training run never dies on a compiler error."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode {mode!r}; choose one of {', '.join(COMPILE_MODES)}")
    import torch._dynamo as dynamo

    blocks = dit_blocks(model)
    # One code object serves every block, so each variant is one more cache entry: blocks with
    # and without the action module, with and without a KV-cache prefix, each cache length while
    # the window fills, training and inference. Past the default limit (8) dynamo silently runs
    # the rest eagerly. Shapes stay static (dynamic=False): symbolic token counts broke inductor
    # in training (torch 2.11, an unresolved size symbol) and there are few distinct lengths.
    dynamo.config.recompile_limit = max(dynamo.config.recompile_limit, 64)
    dynamo.config.accumulated_recompile_limit = max(dynamo.config.accumulated_recompile_limit, 64 * len(blocks))
    # tests (fallback=False): hitting the limit, eager after all, is an error too. Set both ways:
    # the cache and this flag outlive the call, and a later fallback call must not inherit it.
    dynamo.config.suppress_errors = fallback
    dynamo.config.fail_on_recompile_limit_hit = not fallback
    for block in blocks:
        if mode == "reduce-overhead":
            block.forward = _graphed(torch.compile(block.forward, mode=mode, dynamic=False))
        else:
            block.compile(mode=mode, dynamic=False)
    return model


def _graphed(compiled):
    """A CUDA-graphed block's outputs live in the graph's memory and are overwritten by its next
    replay; the generator keeps some of them (cache keys and values, the sampler's earlier
    velocities), so each call starts a new graph step and hands back copies (cheap next to the
    block's compute)."""
    def run(*args, **kwargs):
        torch.compiler.cudagraph_mark_step_begin()
        out = compiled(*args, **kwargs)
        return torch.utils._pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, out)
    return run


_BACKENDS = {
    "cudnn": "CUDNN_ATTENTION",
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "math": "MATH",
}


def attention_backend(name: str = "auto"):
    """A context manager under which every SDPA call uses the backend `name` ('auto': PyTorch's choice)."""
    if name not in ATTENTION_BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {', '.join(ATTENTION_BACKENDS)}")
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    # The named backend first, then the others: a backend that has no kernel for some call
    # (cuDNN refused the mg3-5b causal bench's masked attention on an H200, torch 2.11) hands
    # that call on instead of failing the whole run.
    order = [name] + [n for n in _BACKENDS if n != name]
    return sdpa_kernel([getattr(SDPBackend, _BACKENDS[n]) for n in order], set_priority=True)


class KVParts(list):
    """A block's attention prefix (memory frames, then the cache) as (k, v) pieces in host memory.
    The offloader's pre-hook copies them to the device and joins them there, so host memory is
    never spent on a joined copy and only the running block's keys and values are on the GPU."""


def _leaves(t: torch.Tensor) -> list[torch.Tensor]:
    """The plain tensors holding `t`'s data: `t` itself, or a tensor subclass's inner tensors
    (torchao's 8-bit weights keep their values and scales in two)."""
    if hasattr(t, "__tensor_flatten__"):
        names, _ = t.__tensor_flatten__()
        return [leaf for n in names for leaf in _leaves(getattr(t, n))]
    return [t]


def _to_device(kv, device: torch.device):
    if kv is None:
        return None
    parts = kv if isinstance(kv, KVParts) else [kv]
    k = [p[0].to(device, non_blocking=True) for p in parts]
    v = [p[1].to(device, non_blocking=True) for p in parts]
    return (k[0], v[0]) if len(parts) == 1 else (torch.cat(k, 1), torch.cat(v, 1))


class BlockOffload:
    """Run `model` on `device` with its blocks' weights, and the keys and values its blocks
    attend to, kept in host memory.

    Everything but the blocks (embeddings, head: a few percent of the weights) moves to the
    device for good. Each block is copied in just before it runs and released after it, and
    while block i runs, block i+1 is copied on a side stream, so the copies hide behind the
    compute when a block's compute takes longer than its transfer. At most two blocks are on
    the device at any time (`max_resident` records it). Weights are swapped as whole
    parameters, so 8-bit weights (tensor subclasses) move with their scales.

    With `kv` the keys and values a block returns for the KV cache and memory frames go to host
    memory, and the prefix a block attends to comes in with it: at 704x1280 the causal cache of
    9 latent frames is 12 GB, which kept mg3-5b at 23.4 GiB with the weights alone offloaded
    (16.7 GiB with both, benchmarks/RESULTS.md). Inference only.
    """

    def __init__(self, model: nn.Module, device: str | torch.device, kv: bool = True):
        self.model, self.device, self.kv = model, torch.device(device), kv
        self.blocks = dit_blocks(model)
        pin = self.device.type == "cuda" and torch.cuda.is_available()
        in_blocks = {id(m) for b in self.blocks for m in b.modules()}
        for m in model.modules():  # the rest lives on the device (whole parameters: see _set)
            if id(m) not in in_blocks:
                for n, p in m.named_parameters(recurse=False):
                    m._parameters[n] = nn.Parameter(p.detach().to(self.device), requires_grad=p.requires_grad)
        for buf in model.buffers():
            buf.data = buf.data.to(self.device)
        # each block's parameter slots with a host copy, pinned where possible (async copies)
        self.host = [[(m, n, self._host_copy(p, pin)) for m in b.modules() for n, p in m.named_parameters(recurse=False)]
                     for b in self.blocks]
        for i in range(len(self.blocks)):
            self._release(i)  # nothing held until the block is loaded
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self.ready: dict[int, object] = {}  # block index -> event (or True) once its copy is issued
        self.resident: set[int] = set()
        self.max_resident = 0
        self.order = {id(b): i for i, b in enumerate(self.blocks)}
        self.handles = [h for b in self.blocks for h in (b.register_forward_pre_hook(self._before),
                                                         b.register_forward_hook(self._after))]

    @staticmethod
    def _host_copy(p: torch.Tensor, pin: bool) -> torch.Tensor:
        h = p.detach().to("cpu")
        if pin:
            try:
                h = h.pin_memory()
            except (RuntimeError, NotImplementedError):  # a subclass without pinning: plain copies
                pass
        return h

    def _set(self, i: int, make) -> None:
        for m, n, h in self.host[i]:
            m._parameters[n] = nn.Parameter(make(h), requires_grad=False)

    def _release(self, i: int) -> None:
        self._set(i, lambda h: torch.empty(0, dtype=h.dtype))

    def _load(self, i: int) -> None:
        if i in self.ready or i >= len(self.blocks):
            return
        ctx = torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()
        with ctx:
            self._set(i, lambda h: h.to(self.device, non_blocking=True))
        if self.stream is not None:
            ev = torch.cuda.Event()
            ev.record(self.stream)
            self.ready[i] = ev
        else:
            self.ready[i] = True
        self.resident.add(i)
        self.max_resident = max(self.max_resident, len(self.resident))

    def _before(self, block, args):
        i = self.order[id(block)]
        self._load(i)
        if self.stream is not None:
            main = torch.cuda.current_stream(self.device)
            main.wait_event(self.ready[i])
            for m, n, _ in self.host[i]:  # memory made on the side stream is used on this one
                for leaf in _leaves(m._parameters[n]):
                    leaf.record_stream(main)
        self._load(i + 1)  # prefetch the next block while this one computes
        if self.kv:
            step = args[-1]
            step.kv_prefix = _to_device(step.kv_prefix, self.device)

    def _after(self, block, args, out):
        i = self.order[id(block)]
        self._release(i)
        self.ready.pop(i, None)
        self.resident.discard(i)
        if self.kv and args[-1].keep_kv and out[1] is not None:  # cache or memory keys/values: to the host
            out = (out[0], (out[1][0].cpu(), out[1][1].cpu()))
        return out

    def remove(self) -> nn.Module:
        """Undo: hooks off, every block back in place on the device."""
        for h in self.handles:
            h.remove()
        for i in range(len(self.blocks)):
            self._set(i, lambda h: h.to(self.device))
        return self.model


def accelerate(model: nn.Module, *, compile: str | None = None, quantize: str | None = None,
               offload: str | torch.device | None = None) -> BlockOffload | None:
    """Apply the chosen speed-ups in the one order that works: quantize, then offload or compile.
    Returns the offloader when one is used (keep it: its hooks do the copies)."""
    if compile and offload:
        raise ValueError("compile and offload do not go together: offloading swaps weights under the compiled graph")
    if quantize:
        from interworld.engine.quantize import quantize as apply_quantization

        apply_quantization(model, quantize)
    if compile:
        compile_blocks(model, compile)
    return BlockOffload(model, offload) if offload else None

"""Speed measurement of the streaming generator, stage by stage.

Speed does not depend on the weights' values, so presets run with random weights.
Each stage is timed with a device sync around it; the table gives medians over the
measured iterations after a warm-up, beside the floor that the FLOP count and the
measured ceilings (a large bf16 GEMM, SDPA at the run's shapes) allow.
"""

from __future__ import annotations

import math
import platform
import resource
import statistics
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from interworld.config import ModelConfig


def dit_flops(cfg: ModelConfig, q_tokens: int, k_tokens: int, with_action: bool = True) -> tuple[float, float]:
    """(linear FLOPs, attention FLOPs) of one DiT forward over q_tokens queries attending to
    k_tokens keys (q_tokens of them its own). Text keys/values are counted per call."""
    d, L = cfg.dim, cfg.text_len
    per_tok = 4 * d * d + 2 * d * d + 2 * d * cfg.ffn_dim  # self qkvo, cross q o, ffn
    if cfg.camera:
        per_tok += 4 * d * d
    lin = 2 * per_tok * q_tokens * cfg.num_layers + 2 * 2 * d * d * L * cfg.num_layers  # + cross k, v
    if with_action and cfg.action is not None:
        a = cfg.action
        win = a.windows * cfg.vae.temporal
        act_tok = ((a.mouse_dim * win + d) * a.mouse_hidden + a.mouse_hidden ** 2 + 3 * a.mouse_hidden ** 2
                   + a.mouse_hidden * d + d * a.keyboard_hidden + a.keyboard_hidden * d)
        lin += 2 * act_tok * q_tokens * a.num_blocks
    pt = math.prod(cfg.patch)
    lin += 2 * q_tokens * (cfg.in_dim * pt * d * 2 + (cfg.camera_in * pt * d + 2 * d * d if cfg.camera else 0))
    attn = 4 * q_tokens * (k_tokens + L) * d * cfg.num_layers
    return float(lin), float(attn)


def measure_ceilings(device: torch.device, dtype: torch.dtype, heads: int, head_dim: int, q: int, k: int) -> dict:
    """Achieved TFLOP/s of a large GEMM and of SDPA at this run's attention shape."""
    if device.type != "cuda":
        n = 1024
        a = torch.randn(n, n, dtype=torch.float32)
        t = _median_time(lambda: a @ a, device, 5)
        return {"gemm_tflops": 2 * n ** 3 / t / 1e12, "sdpa_tflops": float("nan")}
    n = 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    gemm = 2 * n ** 3 / _median_time(lambda: a @ a, device, 10) / 1e12
    qq = torch.randn(1, heads, q, head_dim, device=device, dtype=dtype)
    kk = torch.randn(1, heads, k, head_dim, device=device, dtype=dtype)
    sdpa = 4 * q * k * heads * head_dim / _median_time(lambda: F.scaled_dot_product_attention(qq, kk, kk), device, 10) / 1e12
    return {"gemm_tflops": gemm, "sdpa_tflops": sdpa}


def _median_time(fn, device, n: int) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fn()
    sync()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


@dataclass
class BenchResult:
    preset: str
    scheme: str
    device: str
    dtype: str
    height: int
    width: int
    steps: int
    new_latents: int
    frames_per_iter: int
    context_latents: int
    stages: dict[str, float] = field(default_factory=dict)  # median seconds per iteration
    iter_s: float = 0.0
    iter_no_decode_s: float = 0.0
    latency_s: list[float] = field(default_factory=list)
    peak_mem_gb: float = 0.0
    flops: dict[str, float] = field(default_factory=dict)
    ceilings: dict[str, float] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames_per_iter / self.iter_s

    @property
    def fps_no_decode(self) -> float:
        return self.frames_per_iter / self.iter_no_decode_s

    def floor_s(self) -> float:
        """Seconds per denoising step if linears ran at the GEMM ceiling and attention at SDPA's."""
        f, c = self.flops, self.ceilings
        att = c.get("sdpa_tflops", float("nan"))
        att = att if att == att else c["gemm_tflops"]
        return f["linear_per_step"] / (c["gemm_tflops"] * 1e12) + f["attn_per_step"] / (att * 1e12)


@torch.no_grad()
def run_bench(preset: str = "tiny", *, device: str = "cpu", dtype: torch.dtype | None = None, height: int | None = None,
              width: int | None = None, steps: int = 3, scheme: str | None = None, new_latents: int | None = None,
              warmup: int = 2, iters: int = 5, memory: bool = True, quantize: str | None = None,
              progress=None) -> BenchResult:
    from interworld.engine.world import World

    dev = torch.device(device)
    dtype = dtype or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    from interworld.config import get_preset
    cfg = get_preset(preset)
    scheme = scheme or cfg.scheme
    over = {}
    if new_latents:
        over = {"chunk_latents": new_latents} if scheme == "causal" else {"new_latents": new_latents}
    if height:
        over["height"] = height
    if width:
        over["width"] = width
    cfg = cfg.replace(**over)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    world = World.from_config(cfg, device=device, dtype=dtype, scheme=scheme, steps=steps, memory=memory)
    if quantize:
        from interworld.engine.quantize import quantize as apply_quantization

        apply_quantization(world.dit, quantize)
    g = torch.Generator().manual_seed(0)
    img = (torch.rand(cfg.height, cfg.width, 3, generator=g) * 255).to(torch.uint8).numpy()
    world.reset(img, "a corridor in a castle")
    # None: a full preset without a umT5 folder runs on zero text states (nothing to time)
    text_s = world.last_timings.get("text_s") if world.text_encoder is not None else None
    gen = world.gen
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    # causal: fill the cache to its steady size before measuring
    n_warm = warmup + (math.ceil(cfg.window_latents / cfg.chunk_latents) if scheme == "causal" else 1)
    iter_times, nodec_times, latencies, per_iter_stages = [], [], [], []
    for it in range(n_warm + iters):
        measuring = it >= n_warm
        gen.profile, gen.stage_times = measuring, {}
        n = gen.frames_for_next()
        keys = torch.zeros(n, 6)
        keys[:, 0] = 1
        mouse = torch.zeros(n, 2)
        mouse[:, 0] = 0.5
        sync()
        a = time.perf_counter()
        z = gen.next_chunk(keys, mouse)
        sync()
        b = time.perf_counter()
        zz = world.vae.denormalize(z.float())
        world.decoder.decode(zz[:, :, :1])  # the first latent frame alone: when the first new frame shows
        sync()
        c = time.perf_counter()
        if zz.shape[2] > 1:
            world.decoder.decode(zz[:, :, 1:])
        sync()
        d = time.perf_counter()
        if progress:
            progress(it + 1, n_warm + iters)
        if measuring:
            st = {k: sum(v) for k, v in gen.stage_times.items()}
            st["VAE decode"] = d - b
            per_iter_stages.append(st)
            iter_times.append(d - a)
            nodec_times.append(b - a)
            latencies.append(c - a)
    stages = {k: statistics.median(s[k] for s in per_iter_stages) for k in per_iter_stages[0]}
    stages = {"text encoding (once)": text_s, **stages}
    tpf = cfg.tokens_per_frame()
    new = gen.new_count()
    ctx = (cfg.memory_latents + cfg.past_latents) if scheme == "segment" else len(gen.cache.frames)
    q_tok = (new + (ctx if scheme == "segment" else 0)) * tpf
    k_tok = q_tok if scheme == "segment" else (new + ctx) * tpf
    lin, att = dit_flops(cfg, q_tok, k_tok)
    peak = (torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    ceilings = measure_ceilings(dev, dtype, cfg.num_heads, cfg.head_dim, q_tok, k_tok)
    env = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none",
           "cpu": platform.processor() or platform.machine(), "threads": str(torch.get_num_threads())}
    return BenchResult(preset, scheme, str(dev), str(dtype).replace("torch.", ""), cfg.height, cfg.width, len(gen.ts),
                       new, new * cfg.vae.temporal, ctx, stages, statistics.median(iter_times),
                       statistics.median(nodec_times), latencies, peak,
                       {"linear_per_step": lin, "attn_per_step": att}, ceilings, env)


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]


def render(r: BenchResult):
    """A rich Table of the result."""
    from rich.table import Table

    t = Table(title=f"interworld bench: {r.preset}, {r.scheme}, {r.height}x{r.width}, {r.steps} steps, {r.dtype}, "
                    f"{r.env['gpu'] if r.device.startswith('cuda') else 'CPU x' + r.env['threads']}")
    t.add_column("stage")
    t.add_column("median s / iteration", justify="right")
    for k, v in r.stages.items():
        t.add_row(k, "n/a (no text encoder weights)" if v is None else f"{v:.4f}")
    t.add_section()
    t.add_row("iteration (decode included)", f"{r.iter_s:.4f}")
    t.add_row(f"frames per iteration ({r.new_latents} latents, context {r.context_latents})", str(r.frames_per_iter))
    t.add_row("frames/s, decode included", f"{r.fps:.2f}")
    t.add_row("frames/s, decode excluded", f"{r.fps_no_decode:.2f}")
    t.add_row("latency action -> first frame p50 / p99 (s)",
              f"{percentile(r.latency_s, 50):.4f} / {percentile(r.latency_s, 99):.4f}")
    t.add_row("peak memory (GiB, " + ("GPU allocated" if r.device.startswith("cuda") else "process RSS") + ")",
              f"{r.peak_mem_gb:.2f}")
    t.add_section()
    lin, att = r.flops["linear_per_step"], r.flops["attn_per_step"]
    t.add_row("FLOP per denoising step: linear / attention (TFLOP)", f"{lin / 1e12:.2f} / {att / 1e12:.2f}")
    t.add_row("measured ceilings: GEMM / SDPA (TFLOP/s)",
              f"{r.ceilings['gemm_tflops']:.1f} / {r.ceilings['sdpa_tflops']:.1f}")
    t.add_row("floor per denoising step at those ceilings (s)", f"{r.floor_s():.4f}")
    return t

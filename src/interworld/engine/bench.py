"""Speed measurement of the streaming generator, stage by stage.

Speed does not depend on the weights' values, so presets run with random weights.
Each stage is timed with a device sync around it; the table gives medians over the
measured iterations after a warm-up, beside the floor that the FLOP count and the
measured ceilings (a large bf16 GEMM, SDPA at the run's shapes) allow.

`run_bench_parallel` is the same measurement over the GPUs of a torchrun job: the DiT
sequence-parallel, the VAE decode on the last GPU overlapping the next chunk (or in line).
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
from interworld.engine.generator import device_sync


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
    gpus: int = 1  # processes of a torchrun job, one GPU each (run_bench_parallel)
    dit_gpus: int = 1  # of them, those running the DiT (sequence-parallel when more than one)
    # "inline": after each chunk, where the DiT runs; "overlap": a thread on the same device, overlapped
    # with the next chunk (engine/decode.py); "separate": on the last GPU, overlapped
    decode: str = "inline"
    rank_peak_mem_gb: list[float] = field(default_factory=list)
    speed: str = "eager"  # the speed-ups of the run (speed_label)
    dit: str = ""  # "WIDTHxLAYERS" where the DiT is not the preset's (--dit-dim / --dit-layers)

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


PROMPT = "a corridor in a castle"


def bench_config(preset: str, *, height: int | None = None, width: int | None = None, scheme: str | None = None,
                 new_latents: int | None = None, light_decoder: float | None = None, dit_dim: int | None = None,
                 dit_layers: int | None = None, dit_patch: int | None = None) -> tuple[ModelConfig, str]:
    """The preset with the run's frame size and chunk size, and the scheme. light_decoder: the
    decoder's widths scaled by this (a pruned decoder, as `train decoder` makes; MG-LightVAE).
    dit_dim / dit_layers / dit_patch: a DiT of another width, depth or patch (ModelConfig.with_dit), to price it."""
    import dataclasses

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
    if light_decoder:
        over["vae"] = dataclasses.replace(cfg.vae, dec_width_scale=light_decoder)
    cfg = cfg.with_dit(dit_dim, dit_layers, dit_patch)  # None keeps the preset's; 0 is refused
    return cfg.replace(**over), scheme


def dit_label(preset: str, cfg: ModelConfig) -> str:
    """"WIDTHxLAYERS" (and "/pP" for another patch) where cfg's DiT is not the preset's, else ""."""
    from interworld.config import get_preset

    p = get_preset(preset)
    if (cfg.dim, cfg.num_layers, cfg.patch) == (p.dim, p.num_layers, p.patch):
        return ""
    return f"{cfg.dim}x{cfg.num_layers}" + ("" if cfg.patch == p.patch else f"/p{cfg.patch[1]}")


def bench_image(cfg: ModelConfig):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(cfg.height, cfg.width, 3, generator=g) * 255).to(torch.uint8).numpy()


def _build_world(cfg: ModelConfig, scheme: str, dev: torch.device, dtype, steps: int, memory: bool):
    from interworld.engine.world import World

    return World.from_config(cfg, device=str(dev), dtype=dtype, scheme=scheme, steps=steps, memory=memory)


def speed_label(compile: str | None = None, quantize: str | None = None, attention: str = "auto",
                offload: bool = False, light_decoder: float | None = None) -> str:
    """What the run changed from the eager baseline, for the table's title."""
    parts = [f"compile {compile}" if compile else "", quantize or "", f"{attention} attention" if attention != "auto"
             else "", "offload" if offload else "", f"decoder widths x{light_decoder:g}" if light_decoder else ""]
    return ", ".join(p for p in parts if p) or "eager"


def _peak_gb(dev: torch.device) -> float:
    return (torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def _measure(gen, n_warm: int, iters: int, sync, emit, progress=None) -> dict[str, list]:
    """Run n_warm + iters chunks; time the measured ones. `emit(z, t_start)` hands each chunk's
    latents on (decode here, or send to the decode rank) and returns (t_first_frame | None,
    t_done | None, extra stage seconds)."""
    out = {"iter": [], "no_decode": [], "latency": [], "stages": [], "t_start": []}
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
        c, d, extra = emit(z, a)
        if progress:
            progress(it + 1, n_warm + iters)
        if measuring:
            out["stages"].append({**{k: sum(v) for k, v in gen.stage_times.items()}, **extra})
            out["no_decode"].append(b - a)
            out["t_start"].append(a)
            if d is not None:
                out["iter"].append(d - a)
                out["latency"].append(c - a)
    return out


def _decode_here(world, sync):
    """An `emit` for `_measure` that decodes in this process, the first frame apart."""
    def emit(z, a):
        b = time.perf_counter()
        zz = world.vae.denormalize(z.float())
        world.decoder.decode(zz[:, :, :1])  # the first latent frame alone: when the first new frame shows
        sync()
        c = time.perf_counter()
        if zz.shape[2] > 1:
            world.decoder.decode(zz[:, :, 1:])
        sync()
        d = time.perf_counter()
        return c, d, {"VAE decode": d - b}
    return emit


def _result(preset: str, cfg: ModelConfig, scheme: str, gen, dev: torch.device, dtype, text_s, stages: list[dict],
            iter_s: float, no_decode: list[float], latencies: list[float], peak: float, **extra) -> BenchResult:
    """Medians, the FLOP count of this run's shapes, the ceilings and the environment."""
    med = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
    tpf = cfg.tokens_per_frame()
    new = gen.new_count()
    # causal: the cache, and the memory frames that join its keys for the chunk's denoising passes
    ctx = (cfg.memory_latents + cfg.past_latents) if scheme == "segment" else len(gen.cache.frames) + len(gen.last_memory)
    q_tok = (new + (ctx if scheme == "segment" else 0)) * tpf
    k_tok = q_tok if scheme == "segment" else (new + ctx) * tpf
    lin, att = dit_flops(cfg, q_tok, k_tok)
    ceilings = measure_ceilings(dev, dtype, cfg.num_heads, cfg.head_dim, q_tok, k_tok)
    env = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "none",
           "cpu": platform.processor() or platform.machine(), "threads": str(torch.get_num_threads())}
    return BenchResult(preset, scheme, str(dev), str(dtype).replace("torch.", ""), cfg.height, cfg.width, len(gen.ts),
                       new, new * cfg.vae.temporal, ctx, {"text encoding (once)": text_s, **med}, iter_s,
                       statistics.median(no_decode), latencies, peak,
                       {"linear_per_step": lin, "attn_per_step": att}, ceilings, env, dit=dit_label(preset, cfg),
                       **extra)


def _warm_iters(cfg: ModelConfig, scheme: str, warmup: int) -> int:
    # causal: fill the cache to its steady size before measuring
    return warmup + (math.ceil(cfg.window_latents / cfg.chunk_latents) if scheme == "causal" else 1)


@torch.no_grad()
def run_bench(preset: str = "tiny", *, device: str = "cpu", dtype: torch.dtype | None = None, height: int | None = None,
              width: int | None = None, steps: int = 3, scheme: str | None = None, new_latents: int | None = None,
              light_decoder: float | None = None, warmup: int = 2, iters: int = 5, memory: bool = True,
              quantize: str | None = None, compile: str | None = None, attention: str = "auto", offload: bool = False,
              decode: str = "inline", dit_dim: int | None = None, dit_layers: int | None = None,
              dit_patch: int | None = None, progress=None) -> BenchResult:
    """One device. compile / quantize / attention / offload: the speed-ups of engine/accel.py,
    each measurable against the eager baseline (offload builds on the CPU and streams blocks).
    decode "overlap": a thread decodes chunk n on its own stream while chunk n+1 is generated
    (engine/decode.py); the iteration is then the gap between two chunks' decodes finishing."""
    if decode not in ("inline", "overlap"):
        raise ValueError(f"one device decodes 'inline' or 'overlap', not {decode!r}")
    from interworld.engine.accel import attention_backend

    dev = torch.device(device)
    dtype = dtype or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    cfg, scheme = bench_config(preset, height=height, width=width, scheme=scheme, new_latents=new_latents,
                               light_decoder=light_decoder, dit_dim=dit_dim, dit_layers=dit_layers,
                               dit_patch=dit_patch)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    world = _build_world(cfg, scheme, torch.device("cpu") if offload else dev, dtype, steps, memory)
    world.accelerate(compile=compile, quantize=quantize, attention=attention, offload=str(dev) if offload else None)
    world.reset(bench_image(cfg), PROMPT)
    # None: a full preset without a umT5 folder runs on zero text states (nothing to time)
    text_s = world.last_timings.get("text_s") if world.text_encoder is not None else None
    sync = device_sync(dev)
    n_warm = _warm_iters(cfg, scheme, warmup)
    with attention_backend(attention):
        if decode == "inline":
            m = _measure(world.gen, n_warm, iters, sync, _decode_here(world, sync), progress)
            iter_s, latencies = statistics.median(m["iter"]), m["latency"]
        else:
            from interworld.engine.decode import DecodeWorker

            worker = DecodeWorker(world.vae, dev)
            m = _measure(world.gen, n_warm, iters, sync, lambda z, a: (None, None, worker.submit(z, a) or {}), progress)
            rec = worker.close()[n_warm:]
            iter_s = pipelined_iteration([r["t_done"] for r in rec], m["t_start"])
            latencies = [r["t_first"] - r["t_start"] for r in rec]
            for st, r in zip(m["stages"], rec):
                st["VAE decode (overlapped)"] = r["decode_s"]
    return _result(preset, cfg, scheme, world.gen, dev, dtype, text_s, m["stages"], iter_s,
                   m["no_decode"], latencies, _peak_gb(dev), decode=decode,
                   speed=speed_label(compile, quantize, attention, offload, light_decoder))


@torch.no_grad()
def run_bench_parallel(preset: str = "tiny", *, device: str = "cuda", dtype: torch.dtype | None = None,
                       height: int | None = None, width: int | None = None, steps: int = 3, scheme: str | None = None,
                       new_latents: int | None = None, light_decoder: float | None = None, warmup: int = 2,
                       iters: int = 5, memory: bool = True, quantize: str | None = None, decode: str = "separate",
                       dit_dim: int | None = None, dit_layers: int | None = None, dit_patch: int | None = None,
                       progress=None) -> BenchResult | None:
    """`run_bench` over the processes of a torchrun job, one GPU each (engine/parallel.py).

    decode "separate": the last rank decodes chunk n while the others generate chunk n+1,
    sequence-parallel; the iteration time is then the median gap between two chunks' decodes
    finishing, and the latency runs from the leader's start of a chunk to the decode rank's
    first frame of it. decode "inline": every rank runs the DiT and rank 0 decodes after each
    chunk, as on one GPU. Returns the result on rank 0, None on the others.
    """
    import torch.distributed as dist

    from interworld.engine.parallel import (DecodeServer, LatentSender, broadcast_module, broadcast_tensor,
                                            init_ranks, max_chunk_latents, parallelize_sequence)
    from interworld.models.vae import CausalVAE

    if decode not in ("separate", "inline"):
        raise ValueError(f"decode must be 'separate' or 'inline', not {decode!r}")
    ranks = init_ranks(device, separate_decode=decode == "separate")
    dev = ranks.device
    dtype = dtype or (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    cfg, scheme = bench_config(preset, height=height, width=width, scheme=scheme, new_latents=new_latents,
                               light_decoder=light_decoder, dit_dim=dit_dim, dit_layers=dit_layers,
                               dit_patch=dit_patch)
    c, _, h, w = cfg.latent_shape(1)
    shape = (1, c, max_chunk_latents(cfg, scheme), h, w)
    n_warm = _warm_iters(cfg, scheme, warmup)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    mine: dict = {"role": "decode" if ranks.is_decoder else "dit"}
    if ranks.is_decoder:
        with torch.device(dev):  # only the VAE here; its weights come from rank 0
            vae = CausalVAE(cfg.vae).to(dtype if dev.type == "cuda" else torch.float32).eval()
        broadcast_module(vae, 0)
        mine["records"] = DecodeServer(vae, 0, shape, dev).run()
    else:
        world = _build_world(cfg, scheme, dev, dtype, steps, memory)
        if ranks.decode_rank is not None:
            broadcast_module(world.vae, 0)
        broadcast_module(world.dit, 0, ranks.dit_group)  # replicas equal however each was built
        world.accelerate(quantize=quantize)
        parallelize_sequence(world.dit, ranks.dit_group)
        sync = device_sync(dev)
        t_reset = time.perf_counter()
        z0 = ctx = None
        if ranks.is_leader:
            z0, ctx = world.encode_start(bench_image(cfg), PROMPT)
            mine["text_s"] = world.last_timings["text_s"] if world.text_encoder is not None else None
        z0 = broadcast_tensor(z0, 0, ranks.dit_group, dev)
        ctx = broadcast_tensor(ctx, 0, ranks.dit_group, dev)
        world.begin(z0, ctx)
        if ranks.decode_rank is None:
            world.decoder = world.vae.stream_decoder()
            emit = _decode_here(world, sync) if ranks.is_leader else (lambda z, a: (None, None, {}))
        elif ranks.is_leader:
            sender = LatentSender(ranks.decode_rank, shape, dev)
            sender.send(z0, t_reset)

            def emit(z, a):
                return None, None, {"wait for the decode GPU": sender.send(z, a)}
        else:
            emit = lambda z, a: (None, None, {})  # noqa: E731
        m = _measure(world.gen, n_warm, iters, sync, emit, progress if ranks.is_leader else None)
        if ranks.is_leader and ranks.decode_rank is not None:
            sender.close()
        mine.update(measured=m, gen=world.gen if ranks.is_leader else None)
    mine["peak_gb"] = _peak_gb(dev)
    gen = mine.pop("gen", None)
    everyone = [None] * ranks.size
    dist.all_gather_object(everyone, mine)
    if not ranks.is_leader:
        return None
    m = everyone[0]["measured"]
    if ranks.decode_rank is None:
        iter_s, latencies = statistics.median(m["iter"]), m["latency"]
    else:  # record 0 is the start latent; chunk i is record i + 1
        rec = everyone[ranks.decode_rank]["records"]
        measured = range(n_warm + 1, n_warm + iters + 1)
        iter_s = pipelined_iteration([rec[i]["t_done"] for i in range(n_warm, n_warm + iters + 1)], m["t_start"])
        latencies = [rec[i]["t_first"] - rec[i]["t_start"] for i in measured]
        for st, i in zip(m["stages"], measured):
            st["VAE decode (decode GPU, overlapped)"] = rec[i]["decode_s"]
    return _result(preset, cfg, scheme, gen, dev, dtype, everyone[0].get("text_s"), m["stages"], iter_s,
                   m["no_decode"], latencies, max(e["peak_gb"] for e in everyone), gpus=ranks.size,
                   dit_gpus=ranks.dit_size, decode="separate" if ranks.decode_rank is not None else "inline",
                   rank_peak_mem_gb=[e["peak_gb"] for e in everyone])


def pipelined_iteration(done: list[float], starts: list[float]) -> float:
    """Seconds per chunk when another thread or GPU decodes: the median gap between decodes
    finishing (`done`, in order), but never less than the median gap between the generator's
    chunk starts (`starts`). When the two stages take about as long, chunks that waited for
    the decoder finish one decode time after the last, so the gaps alone would read the faster
    stage's time as the rate (a 2-GPU run read 22.0 fps beside 20.5 fps of DiT alone)."""
    gaps = statistics.median(b - a for a, b in zip(done, done[1:]))
    periods = [b - a for a, b in zip(starts, starts[1:])]
    return max(gaps, statistics.median(periods)) if periods else gaps


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]


def step_s(stages: dict) -> float:
    """The mean of the denoising steps' medians."""
    steps = [v for k, v in stages.items() if k.startswith("denoise step")]
    return sum(steps) / len(steps)


def check_baseline(preset: str, base: dict, *, device: str = "cpu", dtype: torch.dtype | None = None,
                   steps: int = 3, **shape) -> None:
    """A one-GPU result (the JSON of `bench --json`) is comparable only at the same settings;
    checked before a run, so a mismatch costs no GPU time. `shape`: bench_config's options."""
    cfg, scheme = bench_config(preset, **shape)
    dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
    want = {"preset": preset, "scheme": scheme, "height": cfg.height, "width": cfg.width, "steps": steps,
            "new_latents": cfg.chunk_latents if scheme == "causal" else cfg.new_latents,
            "dtype": str(dtype).replace("torch.", ""), "dit": dit_label(preset, cfg)}
    diff = [f"{k} {base.get(k, '')} there, {v} here" for k, v in want.items() if base.get(k, "") != v]
    if diff:
        raise ValueError("the baseline was measured at other settings: " + ", ".join(diff))


def render(r: BenchResult, baseline: dict | None = None):
    """A rich Table of the result; with `baseline` (a one-GPU result as a dict), the speed-up."""
    from rich.table import Table

    where = r.env['gpu'] if r.device.startswith('cuda') else 'CPU x' + r.env['threads']
    if r.gpus > 1:
        where = f"{r.gpus} x {where} ({r.dit_gpus} DiT, decode {r.decode})"
    elif r.decode == "overlap":
        where += ", decode overlapped"
    name = f"{r.preset} (DiT {r.dit})" if r.dit else r.preset
    t = Table(title=f"interworld bench: {name}, {r.scheme}, {r.height}x{r.width}, {r.steps} steps, {r.dtype}, "
                    f"{r.speed}, {where}")
    t.add_column("stage")
    t.add_column("median s / iteration", justify="right")
    for k, v in r.stages.items():
        t.add_row(k, "n/a (no text encoder weights)" if v is None else f"{v:.4f}")
    t.add_section()
    t.add_row("iteration (decode " + ("overlapped: gap between chunks" if r.decode == "separate" else "included") + ")",
              f"{r.iter_s:.4f}")
    t.add_row(f"frames per iteration ({r.new_latents} latents, context {r.context_latents})", str(r.frames_per_iter))
    t.add_row("frames/s, decode included", f"{r.fps:.2f}")
    t.add_row("frames/s, decode excluded", f"{r.fps_no_decode:.2f}")
    t.add_row("latency action -> first frame p50 / p99 (s)",
              f"{percentile(r.latency_s, 50):.4f} / {percentile(r.latency_s, 99):.4f}")
    mem = "GPU allocated" if r.device.startswith("cuda") else "process RSS"
    t.add_row(f"peak memory (GiB, {mem})", f"{r.peak_mem_gb:.2f}")
    for i, gb in enumerate(r.rank_peak_mem_gb if r.gpus > 1 else []):
        role = "decode" if (r.decode == "separate" and i == r.gpus - 1) else "DiT"
        t.add_row(f"  rank {i} ({role})", f"{gb:.2f}")
    if baseline is not None:
        t.add_section()
        t.add_row("speed-up over 1 GPU: frames/s decode included / excluded",
                  f"{r.fps / baseline['fps']:.2f}x / {r.fps_no_decode / baseline['fps_no_decode']:.2f}x")
        t.add_row("speed-up over 1 GPU: denoising step", f"{step_s(baseline['stages']) / step_s(r.stages):.2f}x")
    t.add_section()
    lin, att = r.flops["linear_per_step"], r.flops["attn_per_step"]
    t.add_row("FLOP per denoising step: linear / attention (TFLOP)", f"{lin / 1e12:.2f} / {att / 1e12:.2f}")
    t.add_row("measured ceilings: GEMM / SDPA (TFLOP/s)",
              f"{r.ceilings['gemm_tflops']:.1f} / {r.ceilings['sdpa_tflops']:.1f}")
    t.add_row("floor per denoising step at those ceilings (s)", f"{r.floor_s():.4f}")
    if r.dit_gpus > 1:
        t.add_row(f"  the same over {r.dit_gpus} DiT GPUs, perfect scaling (s)", f"{r.floor_s() / r.dit_gpus:.4f}")
    return t

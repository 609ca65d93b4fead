"""Multi-GPU inference computes what one process computes, checked with two CPU processes over gloo.

The sequence-parallel DiT against the plain one (segment and causal schemes, the KV cache
while streaming, tokens and heads that two ranks do not divide, both MoE experts), the decode
rank's frames against the plain World's, and the parallel bench end to end. A spawn of two
processes costs seconds on two cores, so every case runs in one spawn (a module fixture) and
each test reads its case's result. The same cases run over NCCL on two GPUs where there are.
"""

import copy
import json
import os
import time
import traceback
from datetime import timedelta

import pytest
import torch
import torch.multiprocessing as mp

TOL = 1e-5  # fp32 on the CPU
TIMEOUT_S = 60  # the whole spawn (it takes seconds); a stuck collective fails after 30 s on its own


# ------------------------------------------------------------------------- the cases (run in the workers)
def _weigh(model, seed=0):
    """Weight on the paths a fresh model starts at zero (camera scale/shift, action outputs), as
    a trained model has, so that sharding mistakes there would show."""
    g = torch.Generator().manual_seed(seed)
    experts = [m for _, m in model.experts()] if hasattr(model, "experts") else [model]
    for blk in (b for e in experts for b in e.blocks):
        layers = [getattr(blk, n) for n in ("cam_scale_layer", "cam_shift_layer") if hasattr(blk, n)]
        if blk.action_model is not None:
            layers += [blk.action_model.proj_mouse, blk.action_model.proj_keyboard]
        for lin in layers:
            lin.weight.data = torch.randn(lin.weight.shape, generator=g) * 0.05
    return model.eval()


def _pair(cfg, rank, dev):
    """(plain, sequence-parallel) copies of one DiT. Each rank builds its own from another seed:
    broadcast_module must make them equal."""
    from interworld.engine.parallel import broadcast_module, parallelize_sequence
    from interworld.models.dit import build_dit

    torch.manual_seed(100 + rank)
    plain = _weigh(build_dit(cfg), seed=rank).to(dev)
    broadcast_module(plain, 0)
    return plain, parallelize_sequence(copy.deepcopy(plain))


def _inputs(cfg, f, dev, seed=0):
    g = torch.Generator().manual_seed(seed)
    c, _, h, w = cfg.latent_shape(1)
    win = cfg.action.windows * cfg.vae.temporal
    out = dict(x=torch.randn(1, c, f, h, w, generator=g), t=torch.rand(1, f, generator=g) * 1000,
               ctx=torch.randn(1, 5, cfg.text_dim, generator=g),
               kb=(torch.rand(1, f, win, 6, generator=g) > 0.5).float(), ms=torch.randn(1, f, win, 2, generator=g),
               pl=torch.randn(1, f, cfg.camera_in, h, w, generator=g))
    return {k: v.to(dev) for k, v in out.items()}


def _actions(n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 6, generator=g) > 0.6).float(), torch.randn(n, 2, generator=g) * 3


def _diff(a, b) -> float:
    return float((a - b).abs().max())


def case_segment_forward(rank, dev):
    """One bidirectional forward (a memory frame without actions, then new frames), at the tiny
    size, with 15 tokens a frame (uneven on two ranks) and with 3 heads (uneven too)."""
    from interworld.config import get_preset
    from interworld.models.dit import Step

    out = {}
    for name, over in {"even": {}, "uneven_tokens": dict(height=40, width=24),
                       "odd_heads": dict(dim=48, ffn_dim=96, num_heads=3)}.items():
        cfg = get_preset("tiny").replace(**over)
        plain, sp = _pair(cfg, rank, dev)
        inp = _inputs(cfg, 4, dev, seed=1)
        inp["t"][:, 0] = 0

        def run(m):
            step = Step(frame_pos=torch.tensor([0, 5, 6, 7]), keyboard=inp["kb"][:, 1:], mouse=inp["ms"][:, 1:],
                        action_from=1)
            with torch.no_grad():
                return m(inp["x"], inp["t"], inp["ctx"], step, plucker=inp["pl"])

        (v0, kv0), (v1, kv1) = run(plain), run(sp)
        n = sp.sequence_parallel.local_heads
        k0 = torch.nn.functional.pad(kv0[-1][0], (0, 0, 0, 2 * n - cfg.num_heads))[:, :, rank * n:(rank + 1) * n]
        out[name] = {"v": _diff(v0, v1), "k": _diff(k0, kv1[-1][0]), "scale": float(v0.abs().max())}
    return out


def case_block_causal_forward(rank, dev):
    """The full-sequence block-causal forward, with its token mask and action mask."""
    from interworld.config import get_preset
    from interworld.engine.generator import causal_reference

    cfg = get_preset("tiny").replace(chunk_latents=2, window_latents=2)
    plain, sp = _pair(cfg, rank, dev)
    inp = _inputs(cfg, 5, dev, seed=2)
    keys, mouse = _actions(1 + 4 * cfg.vae.temporal, 3)
    poses = torch.zeros(5, 5)
    poses[:, 0] = torch.arange(5.0) * 8
    args = (cfg, inp["x"], inp["t"], inp["ctx"], keys.to(dev), mouse.to(dev), poses.to(dev), cfg.height, cfg.width)
    return {"v": _diff(causal_reference(plain, *args), causal_reference(sp, *args))}


def _stream(dit, cfg, scheme, chunks, seed=3):
    from interworld.engine.generator import Generator

    gen = Generator(dit, cfg, torch.randn(1, 4, cfg.text_dim, generator=torch.Generator().manual_seed(4)),
                    scheme=scheme, seed=seed)
    c, _, h, w = cfg.latent_shape(1)
    gen.start(torch.randn(1, c, 1, h, w, generator=torch.Generator().manual_seed(5)))
    outs = []
    for i in range(chunks):
        outs.append(gen.next_chunk(*_actions(gen.frames_for_next(), 10 + i)))
    return gen, outs


def case_causal_streaming(rank, dev):
    """Streaming with the KV cache, past the window so frames are evicted: every chunk's latents,
    and this rank's heads of the cache against the plain cache."""
    from interworld.config import get_preset

    cfg = get_preset("tiny").replace(chunk_latents=1, sink_latents=1, window_latents=2, height=40, width=24)
    plain, sp = _pair(cfg, rank, dev)
    g0, a = _stream(plain, cfg, "causal", 4)
    g1, b = _stream(sp, cfg, "causal", 4)
    n = sp.sequence_parallel.local_heads
    k0, k1 = g0.cache.kv["main"][0][0], g1.cache.kv["main"][0][0]
    return {"chunks": [_diff(x, y) for x, y in zip(a, b)], "cache_k": _diff(k0[:, :, rank * n:(rank + 1) * n], k1),
            "cache_frames": [g0.cache.frames, g1.cache.frames]}


def case_segment_moe_streaming(rank, dev):
    """The segment scheme (memory retrieval, context recomputed each step) on a 2-expert MoE:
    both experts are made sequence-parallel and the sampler switches between them."""
    from interworld.config import get_preset

    cfg = get_preset("tiny").replace(moe_boundary=800.0, steps=3)  # timesteps 1000, 909 high; 714 low
    plain, sp = _pair(cfg, rank, dev)
    calls = {}
    for name, expert in sp.experts():
        expert.register_forward_pre_hook(lambda *_, n=name: calls.__setitem__(n, calls.get(n, 0) + 1))
    _, a = _stream(plain, cfg, "segment", 3)
    _, b = _stream(sp, cfg, "segment", 3)
    return {"chunks": [_diff(x, y) for x, y in zip(a, b)], "calls": calls}


def case_decode_rank(rank, dev):
    """Rank 0 generates and sends latents; rank 1 decodes them; rank 1 then runs the plain World
    with the same seed: the frames must be the same bytes."""
    import numpy as np

    from interworld.config import get_preset
    from interworld.engine.parallel import DecodeServer, LatentSender, broadcast_module, max_chunk_latents
    from interworld.engine.world import World, to_uint8
    from interworld.models.vae import CausalVAE

    cfg = get_preset("tiny").replace(first_latents=4)  # a first chunk of 3 latents, then 2: messages are padded
    c, _, h, w = cfg.latent_shape(1)
    shape = (1, c, max_chunk_latents(cfg, "segment"), h, w)
    img = (np.random.default_rng(0).random((cfg.height, cfg.width, 3)) * 255).astype(np.uint8)
    chunks = [_actions(cfg.vae.temporal * (3 if i == 0 else 2), 20 + i) for i in range(3)]
    if rank == 0:
        world = World.from_config(cfg, device=dev, seed=0, scheme="segment")
        broadcast_module(world.vae, 0)
        z0, ctx = world.encode_start(img, "a corridor")
        world.begin(z0, ctx, seed=7)
        sender = LatentSender(1, shape, torch.device(dev))
        sender.send(z0, time.perf_counter())
        for keys, mouse in chunks:
            sender.send(world.gen.next_chunk(keys, mouse), time.perf_counter())
        sender.close()
        return {}
    torch.manual_seed(123)
    vae = CausalVAE(cfg.vae).to(dev).eval()
    broadcast_module(vae, 0)
    got = []
    records = DecodeServer(vae, 0, shape, torch.device(dev)).run(on_frames=lambda v: got.append(to_uint8(v)))
    ref = World.from_config(cfg, device=dev, seed=0, scheme="segment")
    want = [ref.reset(img, "a corridor", seed=7)] + [ref.step((k, m)) for k, m in chunks]
    return {"shapes": [list(g.shape) for g in got], "want_shapes": [list(x.shape) for x in want],
            "equal": len(got) == len(want) and all(np.array_equal(g, x) for g, x in zip(got, want)),
            "records": len(records), "latency_ok": all(r["t_first"] >= r["t_start"] for r in records)}


def case_decode_flow_control(rank, dev):
    """A decoder far slower than the leader: the leader must hold each chunk back until the
    decoder has finished the one `depth` messages before it (send times against done times)."""
    from interworld.config import get_preset
    from interworld.engine.parallel import DecodeServer, LatentSender, max_chunk_latents
    from interworld.models.vae import CausalVAE

    cfg = get_preset("tiny")
    c, _, h, w = cfg.latent_shape(1)
    shape = (1, c, max_chunk_latents(cfg, "segment"), h, w)
    if rank == 0:
        sender, sent = LatentSender(1, shape, torch.device(dev), depth=2), []
        for _ in range(8):
            sender.send(torch.zeros(1, c, 1, h, w), time.perf_counter())
            sent.append(time.perf_counter())
        sender.close()
        return {"sent": sent}
    vae = CausalVAE(cfg.vae).to(dev).eval()
    make = vae.stream_decoder

    def slow_decoder():
        d = make()
        decode = d.decode
        d.decode = lambda z: (time.sleep(0.05), decode(z))[1]
        return d

    vae.stream_decoder = slow_decoder
    return {"done": [r["t_done"] for r in DecodeServer(vae, 0, shape, torch.device(dev)).run()]}


def _bench(decode, dev):
    from interworld.engine.bench import run_bench_parallel

    r = run_bench_parallel("tiny", device=dev, scheme="causal", warmup=1, iters=3, decode=decode)
    if r is None:
        return {}
    return {"gpus": r.gpus, "dit_gpus": r.dit_gpus, "decode": r.decode, "fps": r.fps, "mem": r.rank_peak_mem_gb,
            "stages": list(r.stages), "latency": r.latency_s}


def case_bench_separate(rank, dev):
    return _bench("separate", dev)


def case_bench_inline(rank, dev):
    return _bench("inline", dev)


CASES = [case_segment_forward, case_block_causal_forward, case_causal_streaming, case_segment_moe_streaming,
         case_decode_rank, case_decode_flow_control, case_bench_separate, case_bench_inline]


def _worker(rank, store, out_dir, backend):
    import torch.distributed as dist

    torch.set_num_threads(1)  # two processes on two cores; one thread also keeps sums in one order
    device = "cuda" if backend == "nccl" else "cpu"
    if device == "cuda":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))
    results = {}
    try:
        for case in CASES:
            t0 = time.perf_counter()
            results[case.__name__] = case(rank, device)
            results[case.__name__ + "_s"] = time.perf_counter() - t0
    except Exception:
        results["error"] = traceback.format_exc()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(results, f)
    if "error" in results:
        os._exit(1)  # leave at once: the peer's pending collective then fails instead of waiting
    dist.destroy_process_group()


def _spawn(backend: str, out_dir) -> list[dict]:
    """Run every case in two processes; the results of rank 0 and rank 1. Plain processes, not
    mp.spawn: its join ends the other worker as soon as one fails, before it writes its result."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(r, str(out_dir / "store"), str(out_dir), backend)) for r in range(2)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + TIMEOUT_S
    for p in procs:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join()
    out = []
    for r in range(2):
        p = out_dir / f"rank{r}.json"
        out.append(json.loads(p.read_text()) if p.exists() else
                   {"error": f"rank {r} wrote no result (it crashed, or ran past {TIMEOUT_S} s)"})
    return out


def _get(results, name):
    """The results, if case `name` ran on every rank; else fail with every rank's error (the
    first to fail may be either: the other then reports a broken connection)."""
    if any(name not in res for res in results):
        pytest.fail("\n".join(f"rank {r}: {res.get('error', 'no error')}" for r, res in enumerate(results)))
    return results


@pytest.fixture(scope="module")
def cpu(tmp_path_factory):
    return _spawn("gloo", tmp_path_factory.mktemp("parallel"))


# ------------------------------------------------------------------------- the tests
def _check_forward(results, tol):
    for res in _get(results, "case_segment_forward"):
        for name, d in res["case_segment_forward"].items():
            assert d["v"] < tol and d["k"] < tol, (name, d)
            assert d["scale"] > 0.1  # not a trivially zero output
    for res in _get(results, "case_block_causal_forward"):
        assert res["case_block_causal_forward"]["v"] < tol


def _check_streaming(results, tol):
    for res in _get(results, "case_causal_streaming"):
        d = res["case_causal_streaming"]
        assert max(d["chunks"]) < tol and d["cache_k"] < tol, d
        assert d["cache_frames"][0] == d["cache_frames"][1] == [0, 3, 4]  # the sink and the window: 1, 2 evicted
    for res in _get(results, "case_segment_moe_streaming"):
        assert max(res["case_segment_moe_streaming"]["chunks"]) < tol
        assert res["case_segment_moe_streaming"]["calls"] == {"high": 6, "low": 3}  # both experts, 3 chunks


def test_sequence_parallel_forward_equals_one_process(cpu):
    _check_forward(cpu, TOL)


def test_sequence_parallel_streaming_equals_one_process(cpu):
    _check_streaming(cpu, TOL)


def test_decode_on_another_worker_gives_the_same_frames(cpu):
    d = _get(cpu, "case_decode_rank")[1]["case_decode_rank"]
    assert d["shapes"] == d["want_shapes"] and d["shapes"][0][0] == 1 and d["shapes"][1][0] == 3 * 2  # tiny: 2x temporal
    assert d["equal"] and d["records"] == 4 and d["latency_ok"]


def test_a_slow_decoder_holds_the_leader_back(cpu):
    sent = _get(cpu, "case_decode_flow_control")[0]["case_decode_flow_control"]["sent"]
    done = cpu[1]["case_decode_flow_control"]["done"]
    assert len(done) == len(sent) == 8
    # message k leaves only after message k - 2 is decoded (the clocks are one host's monotonic clock)
    assert all(sent[k] >= done[k - 2] for k in range(2, 8)), (sent, done)


def test_parallel_bench_runs(cpu):
    r = _get(cpu, "case_bench_separate")[0]
    sep, inl = r["case_bench_separate"], r["case_bench_inline"]
    assert (sep["gpus"], sep["dit_gpus"], sep["decode"]) == (2, 1, "separate")
    assert (inl["gpus"], inl["dit_gpus"], inl["decode"]) == (2, 2, "inline")
    for d in (sep, inl):
        assert d["fps"] > 0 and len(d["mem"]) == 2 and len(d["latency"]) == 3 and min(d["latency"]) > 0
    assert "wait for the decode GPU" in sep["stages"] and "VAE decode (decode GPU, overlapped)" in sep["stages"]
    assert "VAE decode" in inl["stages"]


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs (NCCL)")
def test_same_cases_over_nccl_on_two_gpus(tmp_path):
    results = _spawn("nccl", tmp_path)
    _check_forward(results, 1e-4)  # fp32 on GPUs: other kernels, same function
    _check_streaming(results, 1e-4)
    d = _get(results, "case_decode_rank")[1]["case_decode_rank"]
    assert d["shapes"] == d["want_shapes"] and d["records"] == 4


def test_bench_cli_compare_and_refusals(tmp_path, capsys, monkeypatch):
    from interworld.cli.main import main

    monkeypatch.delenv("RANK", raising=False)
    one = tmp_path / "one.json"
    args = ["bench", "--preset", "tiny", "--scheme", "causal", "--iters", "2", "--warmup", "1"]
    assert main(args + ["--json", str(one)]) == 0
    capsys.readouterr()
    assert main(args + ["--compare", str(one)]) == 0
    assert "speed-up over 1 GPU" in capsys.readouterr().out
    assert main(["bench", "--preset", "tiny", "--scheme", "segment", "--compare", str(one)]) == 2
    assert "scheme causal there, segment here" in capsys.readouterr().err  # refused before anything runs
    assert main(args + ["--parallel"]) == 2
    assert "torchrun --nproc-per-node" in capsys.readouterr().err


def test_pipelined_rate_is_never_faster_than_the_generator():
    from interworld.engine.bench import pipelined_iteration

    # DiT 1.95 s a chunk, decode 1.82 s: jitter makes decodes finish in bursts, one decode
    # time apart, so the median gap alone would read 1.82 s; the chunk starts say 1.95
    starts = [0.0, 1.95, 3.9, 5.85, 7.8, 9.75]
    done = [3.9, 5.72, 7.9, 9.72, 11.9, 13.72]
    assert pipelined_iteration(done, starts) == pytest.approx(1.95)
    # decode-bound: the decoder's gaps are the rate
    assert pipelined_iteration([2.0, 4.0, 6.0, 8.0], [0.0, 0.5, 1.0, 1.5]) == pytest.approx(2.0)
    assert pipelined_iteration([2.0, 4.0], [0.0]) == pytest.approx(2.0)  # one measured chunk

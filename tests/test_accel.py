"""Each speed-up of engine/accel.py computes the same function as the plain model."""

import dataclasses

import numpy as np
import pytest
import torch

from interworld.config import get_preset
from interworld.engine.accel import BlockOffload, accelerate, attention_backend, compile_blocks
from interworld.engine.generator import Generator
from interworld.models.dit import build_dit

from test_streaming import _run, _trained_like


def _stream(dit, cfg, chunks=4):
    gen = Generator(dit, cfg, torch.randn(1, 4, cfg.text_dim, generator=torch.Generator().manual_seed(1)),
                    scheme="causal", seed=3)
    with torch.no_grad():
        return torch.cat(_run(gen, chunks=chunks), 2)


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_blocks_stream_the_same_latents(mode):
    # the KV cache grows, then slides, so the compiled blocks meet several lengths, with and
    # without an action module: more variants than dynamo's default limit of 8, past which it
    # used to run the blocks eagerly without a word (an H200 bench of mg3-5b did).
    # reduce-overhead: on the CPU no graphs are captured, but its wrapper (copied outputs) runs
    tiny = get_preset("tiny")
    cfg = tiny.replace(num_layers=4, action=dataclasses.replace(tiny.action, num_blocks=2), chunk_latents=1,
                       sink_latents=1, window_latents=3, steps=2, sampler="unipc")
    dit = _trained_like(cfg)
    ref = _stream(dit, cfg, chunks=6)
    compile_blocks(dit, mode, fallback=False)  # a compile error or the recompile limit fails the test
    if mode == "default":
        assert all(b._compiled_call_impl is not None for b in dit.blocks)
    else:
        assert all("forward" in vars(b) for b in dit.blocks)
    assert list(dit.state_dict()) == list(_trained_like(cfg).state_dict())  # names unchanged: checkpoints load
    out = _stream(dit, cfg, chunks=6)
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4), float((out - ref).abs().max())


def test_compiled_training_step_has_the_same_loss_and_gradients():
    from interworld.models.dit import Step

    cfg = get_preset("tiny")
    torch.manual_seed(0)
    eager = build_dit(cfg)
    comp = build_dit(cfg)
    comp.load_state_dict(eager.state_dict())
    compile_blocks(comp, fallback=False)
    c, _, h, w = cfg.latent_shape(1)
    x = torch.randn(2, c, 3, h, w)
    t = torch.tensor([[0.0, 300.0, 700.0], [0.0, 0.0, 900.0]])
    ctx = torch.randn(2, 4, cfg.text_dim)
    grads = []
    for m in (eager, comp):
        v, _ = m(x, t, ctx, Step(frame_pos=torch.arange(3)))
        loss = (v ** 2).mean()
        loss.backward()
        grads.append((loss.detach(), [p.grad for p in m.parameters()]))
    assert torch.allclose(grads[0][0], grads[1][0], rtol=1e-5)
    for a, b in zip(grads[0][1], grads[1][1]):
        assert (a is None) == (b is None)  # the same parameters take part (no action input: not the action module)
        assert a is None or torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_block_offload_gives_the_same_output_and_holds_at_most_two_blocks():
    cfg = get_preset("tiny").replace(num_layers=4, chunk_latents=1, sink_latents=1, window_latents=2, steps=2,
                                     sampler="euler")
    dit = _trained_like(cfg)
    ref = _stream(dit, cfg, chunks=3)
    off = BlockOffload(dit, "cpu")
    assert all(p.numel() == 0 for b in dit.blocks for p in b.parameters())  # nothing held between calls
    out = _stream(dit, cfg, chunks=3)
    assert torch.equal(out, ref)
    assert off.max_resident == 2 and not off.resident
    off.remove()
    assert torch.equal(_stream(dit, cfg, chunks=3), ref)  # undone: the plain model again


def test_offload_releases_8_bit_weights_whole_and_matches_the_quantized_model():
    # 8-bit weights are tensor subclasses: swapping their `.data`, as the offloader once did, left
    # the values and scales inside in place, so a "released" block still held its weights (and on
    # a GPU ran with them still on the host)
    pytest.importorskip("torchao")
    from interworld.engine.accel import _leaves
    from interworld.engine.quantize import quantize

    cfg = get_preset("tiny").replace(num_layers=3, chunk_latents=1, sink_latents=1, window_latents=2, steps=2,
                                     sampler="euler")
    dit = quantize(_trained_like(cfg), "int8")
    ref = _stream(dit, cfg, chunks=3)
    off = BlockOffload(dit, "cpu")
    assert all(leaf.numel() == 0 for b in dit.blocks for p in b.parameters() for leaf in _leaves(p))
    assert torch.equal(_stream(dit, cfg, chunks=3), ref) and off.max_resident == 2
    assert any(len(_leaves(h)) > 1 for _, _, h in off.host[0])  # the quantized weights travelled as such


def test_offloaded_prefix_pieces_are_joined_on_the_device():
    from interworld.engine.accel import KVParts, _to_device

    a, b = (torch.randn(1, 3, 2, 4), torch.randn(1, 3, 2, 4)), (torch.randn(1, 5, 2, 4), torch.randn(1, 5, 2, 4))
    k, v = _to_device(KVParts([a, b]), torch.device("cpu"))
    assert torch.equal(k, torch.cat([a[0], b[0]], 1)) and torch.equal(v, torch.cat([a[1], b[1]], 1))
    assert _to_device(a, torch.device("cpu"))[0] is a[0] and _to_device(None, torch.device("cpu")) is None


def test_a_cache_kept_in_pieces_streams_the_same_latents(monkeypatch):
    # the host-memory cache of --offload: appended chunks stay apart, eviction slices them, the
    # offloader joins a block's pieces on the device. Forced here, where the CPU is the device too.
    from interworld.engine import generator as g
    from interworld.engine.accel import KVParts

    cfg = get_preset("tiny").replace(num_layers=3, chunk_latents=2, sink_latents=1, window_latents=3, steps=2,
                                     sampler="euler")
    dit = _trained_like(cfg)
    ref = _stream(dit, cfg, chunks=4)
    BlockOffload(dit, "cpu")
    made, plain = [], g.KVCache

    def in_pieces(*a, **k):
        made.append(plain(*a, pieces=True, **k))
        return made[-1]

    monkeypatch.setattr(g, "KVCache", in_pieces)
    out = _stream(dit, cfg, chunks=4)
    assert torch.equal(out, ref)
    cache = made[-1]
    assert cache.pieces and all(isinstance(b, KVParts) and len(b) > 1 for b in cache.kv["main"])
    assert len(cache.frames) == cfg.sink_latents + cfg.window_latents


def test_evicting_from_pieces_slices_what_the_joined_cache_keeps():
    from interworld.engine.generator import _keep_pieces

    s = 2  # tokens per frame
    parts = [(torch.randn(1, 3 * s, 2, 4), torch.randn(1, 3 * s, 2, 4)), (torch.randn(1, 2 * s, 2, 4),
                                                                          torch.randn(1, 2 * s, 2, 4))]
    keep = [0, 2, 3, 4]  # a sink, then a window that spans both pieces
    kept = _keep_pieces(parts, keep, s)
    k = torch.cat([p[0] for p in parts], 1)
    idx = torch.tensor([i * s + j for i in keep for j in range(s)])
    assert torch.equal(torch.cat([p[0] for p in kept], 1), k[:, idx]) and len(kept) == 3
    assert all(p[0].untyped_storage().data_ptr() in {q[0].untyped_storage().data_ptr() for q in parts} for p in kept)


def test_offload_and_compile_are_refused_together():
    with pytest.raises(ValueError, match="do not go together"):
        accelerate(build_dit(get_preset("tiny")), compile="default", offload="cpu")


def test_math_attention_backend_matches_the_default():
    cfg = get_preset("tiny").replace(steps=2, sampler="euler")
    dit = _trained_like(cfg)
    ref = _stream(dit, cfg, chunks=2)
    with attention_backend("math"):
        out = _stream(dit, cfg, chunks=2)
    assert torch.allclose(out, ref, atol=1e-5)
    with pytest.raises(ValueError, match="unknown attention backend"):
        attention_backend("fastest")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_offload_lowers_peak_memory_and_matches():
    cfg = get_preset("small")
    dit = _trained_like(cfg).to(torch.bfloat16)
    ref = _stream(dit.cuda(), cfg, chunks=2).float()
    dit = dit.cpu()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    # what stays allocated from the reference run: cuBLAS keeps its workspace (32 MiB on Hopper) in the
    # caching allocator, more than the small model's blocks weigh
    base = torch.cuda.memory_allocated()
    BlockOffload(dit, "cuda")
    gen = Generator(dit, cfg, torch.randn(1, 4, cfg.text_dim, generator=torch.Generator().manual_seed(1)),
                    scheme="causal", seed=3)
    with torch.no_grad():
        out = torch.cat(_run(gen, chunks=2), 2).float()
    assert torch.allclose(out, ref, atol=1e-2)
    # the keys and values for the cache came back to the host; the prefix went in block by block
    assert gen.cache.pieces and all(k.device.type == "cpu" for kvs in gen.cache.kv.values() for b in kvs for k, _ in b)
    blocks = sum(p.numel() * 2 for p in _trained_like(cfg).blocks.parameters())
    assert torch.cuda.max_memory_allocated() - base < blocks  # never the whole set of blocks at once


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_cuda_graphs_stream_the_same_latents():
    cfg = get_preset("small").replace(steps=3)
    dit = _trained_like(cfg).cuda()
    ref = _stream(dit, cfg, chunks=8)
    compile_blocks(dit, "reduce-overhead", fallback=False)
    out = _stream(dit, cfg, chunks=8)
    assert torch.allclose(out, ref, atol=1e-3, rtol=1e-3)


def test_generate_speed_options(tmp_path, capsys):
    from PIL import Image

    from interworld.cli.main import main

    Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / "s.png")
    (tmp_path / "a.json").write_text('[{"keys": ["w"], "frames": 6}]')
    base = ["generate", "--image", str(tmp_path / "s.png"), "--actions", str(tmp_path / "a.json"),
            "--out", str(tmp_path / "o.mp4"), "--preset", "tiny", "--random-init", "--quiet"]
    assert main(base + ["--attention", "math"]) == 0 and (tmp_path / "o.mp4").stat().st_size > 0
    assert main(["bench", "--preset", "tiny", "--iters", "1", "--warmup", "1", "--attention", "math"]) == 0
    assert "math attention" in capsys.readouterr().out
    for extra, needle in [(["--offload"], "--offload streams weights to a GPU"),
                          (["--quantize", "fp8"], "fp8 needs the model on an NVIDIA GPU")]:
        if extra[0] == "--quantize":
            pytest.importorskip("torchao", reason="pip install torchao for quantization")
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, err


def test_overlapped_decode_gives_the_frames_of_inline_decode():
    from interworld.engine.decode import DecodeWorker
    from interworld.engine.world import World, to_uint8

    world = World.from_pretrained("tiny", random_init=True)
    img = (torch.rand(32, 32, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    world.reset(img, "")
    chunks = [world.gen.next_chunk(torch.zeros(world.frames_per_step, 6), torch.ones(world.frames_per_step, 2))
              for _ in range(4)]
    inline = world.vae.stream_decoder()
    want = [to_uint8(inline.decode(world.vae.denormalize(z.float()))) for z in chunks]
    worker = DecodeWorker(world.vae, torch.device("cpu"), keep_frames=True)
    for i, z in enumerate(chunks):
        worker.submit(z, float(i))
    rec = worker.close()
    assert len(rec) == 4 and all(r["t_start"] <= r["t_first"] <= r["t_done"] for r in rec)
    for r, w in zip(rec, want):
        assert np.array_equal(r["frames"], w)

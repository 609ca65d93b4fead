"""Distillation on the tiny preset: the self-rollout is the streaming generator, one DMD step
moves the student and never the teacher, runs resume, and each switch runs."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from interworld.config import get_preset
from interworld.data.shards import Shard, write_shard
from interworld.engine.generator import Generator
from interworld.engine.world import World
from interworld.io.checkpoint import load_tensors, save_checkpoint
from interworld.models.dit import build_dit
from interworld.models.text import BuiltinTextEncoder
from interworld.train.distill import DistillArgs, distill, regression_loss, rollout, rollout_latents
from interworld.train.error_buffer import ErrorBuffer


def _cfg():
    return dataclasses.replace(get_preset("tiny"), scheme="causal", sampler="x0", steps=2, chunk_latents=1)


def _wake(module, seed=0):
    """Random weights everywhere (zero-initialised outputs would make every test trivially pass)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return module


@pytest.mark.parametrize("scheme,memory", [("causal", False), ("segment", False), ("segment", True),
                                           ("causal", True)])
def test_self_rollout_is_the_streaming_generator(scheme, memory):
    cfg = dataclasses.replace(_cfg(), scheme=scheme, memory_trained=memory, window_latents=1)
    torch.manual_seed(0)
    dit = _wake(build_dit(cfg)).eval()
    ctx = BuiltinTextEncoder(cfg.text_dim, cfg.text_len, cfg.builtin_text_layers)(["a corridor", "a hall"])
    c, _, h, w = cfg.latent_shape(1)
    n_lat = rollout_latents(cfg, 3)
    z = torch.randn(2, c, n_lat, h, w)
    t_frames = 1 + (n_lat - 1) * cfg.vae.temporal
    keys = torch.zeros(t_frames, 6)
    keys[1:, 0] = 1
    mouse = torch.randn(t_frames, 2)
    mouse[0] = 0

    ref = Generator(dit, cfg, ctx, scheme=scheme, sampler="x0", seed=5, memory=cfg.memory_trained)
    ref.start(z[:, :, :1])
    outs, done = [], 0
    for i in range(3):
        per = ref.frames_for_next()
        outs.append(ref.next_chunk(keys[1 + done:1 + done + per], mouse[1 + done:1 + done + per]))
        done += per
    want = torch.cat(outs, 2)
    assert want.shape[2] == n_lat - 1 and done == t_frames - 1
    assert bool(ref.last_memory) == memory  # the last chunk retrieved memory frames when the model has memory
    last = len(ref.ts) - 1
    per_item = keys.expand(2, -1, -1), mouse.expand(2, -1, -1)  # the rollout's items each have their own
    got, _ = rollout(dit, cfg, ctx, z, *per_item, chunks=3, seed=5, exit_steps=[last] * 3, grad=True)
    assert got.requires_grad
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    other, _ = rollout(dit, cfg, ctx, z, *per_item, chunks=3, seed=6, exit_steps=[last] * 3, grad=False)
    assert not torch.allclose(other, want, atol=1e-3)  # the comparison can fail: another seed differs

    # `distill --camera engine`: the rollout follows the recorded poses as the generator given them does
    poses = (torch.randn(t_frames, 5, generator=torch.Generator().manual_seed(1)) * 4).cumsum(0)
    ref = Generator(dit, cfg, ctx, scheme=scheme, sampler="x0", seed=5, memory=cfg.memory_trained)
    ref.start(z[:, :, :1], pose=poses[0])
    outs, done = [], 0
    for i in range(3):
        per = ref.frames_for_next()
        outs.append(ref.next_chunk(keys[1 + done:1 + done + per], mouse[1 + done:1 + done + per],
                                   poses[1 + done:1 + done + per]))
        done += per
    got, _ = rollout(dit, cfg, ctx, z, *per_item, chunks=3, seed=5, exit_steps=[last] * 3, grad=False,
                     poses=poses.expand(2, -1, -1))
    assert torch.allclose(got, torch.cat(outs, 2), atol=1e-5) and not torch.allclose(got, want, atol=1e-3)


@pytest.mark.parametrize("scheme,memory", [("causal", False), ("causal", True), ("segment", True)])
def test_per_item_streams_are_the_shared_streams_item_by_item(scheme, memory):
    """A batch started per_item, each item under its own actions (and poses, and memory bank), makes
    what a batch under one shared action stream makes for the item that follows those actions."""
    cfg = dataclasses.replace(_cfg(), scheme=scheme, memory_trained=memory, window_latents=1)
    torch.manual_seed(0)
    dit = _wake(build_dit(cfg)).eval()
    ctx = BuiltinTextEncoder(cfg.text_dim, cfg.text_len, cfg.builtin_text_layers)(["a corridor", "a hall"])
    c, _, h, w = cfg.latent_shape(1)
    z0 = torch.randn(2, c, 1, h, w)
    g = torch.Generator().manual_seed(1)
    keys = (torch.rand(2, 80, 6, generator=g) > 0.5).float()
    mouse = torch.randn(2, 80, 2, generator=g) * 20  # turns: the items' cameras part ways

    def run(k, m, per_item):
        gen = Generator(dit, cfg, ctx, scheme=scheme, seed=4, memory=memory)
        gen.start(z0, per_item=per_item)
        outs, done = [], 0
        for _ in range(4):
            n = gen.frames_for_next()
            outs.append(gen.next_chunk(k[..., done:done + n, :], m[..., done:done + n, :]))
            done += n
        return torch.cat(outs, 2), gen

    both, gen = run(keys, mouse, True)
    assert gen.streams == 2 and not torch.equal(gen.poses[0], gen.poses[1])
    assert len(gen.banks) == (2 if memory else 0) and bool(gen.last_memory) == memory
    for i in range(2):
        alone, _ = run(keys[i], mouse[i], False)
        assert torch.allclose(both[i], alone[i], atol=1e-5), (i, (both[i] - alone[i]).abs().max())
    with pytest.raises(ValueError, match="action stream"):
        gen.next_chunk(keys[:, :4].repeat(3, 1, 1), mouse[:, :4].repeat(3, 1, 1))


def _two_items(cfg, chunks: int = 2):
    """A woken DiT, two items' text states and real latents for `chunks` chunks, and their video frames."""
    torch.manual_seed(0)
    dit = _wake(build_dit(cfg)).eval()
    ctx = BuiltinTextEncoder(cfg.text_dim, cfg.text_len, cfg.builtin_text_layers)(["a corridor", "a hall"])
    c, _, h, w = cfg.latent_shape(1)
    z = torch.randn(2, c, rollout_latents(cfg, chunks), h, w)
    return dit, ctx, z, 1 + (z.shape[2] - 1) * cfg.vae.temporal


def test_error_buffer_holds_the_first_chunks_error_against_the_real_latents():
    """Residuals are the clean estimate minus the ground truth (SPEC): every item's first chunk,
    generated from the real start to the end of the sampler, against the real latents there."""
    cfg = dataclasses.replace(_cfg(), chunk_latents=2)
    dit, ctx, z, t_frames = _two_items(cfg)
    keys, mouse = torch.zeros(2, t_frames, 6), torch.zeros(2, t_frames, 2)
    last = cfg.steps - 1
    errors = ErrorBuffer(capacity=16, p_inject=0.0)  # collect only: the rollout stays the plain one
    got, _ = rollout(dit, cfg, ctx, z, keys, mouse, chunks=2, seed=1, errors=errors, exit_steps=[last, last],
                     grad=False)
    assert len(errors) == 4  # two items' two latents of the first chunk; the second chunk's context was generated
    want = (got[:, :, :2] - z[:, :, 1:3]).permute(0, 2, 1, 3, 4).flatten(0, 1)
    assert torch.allclose(errors.data[:4], want, atol=1e-6)
    rollout(dit, cfg, ctx, z, keys, mouse, chunks=2, seed=1, errors=errors, exit_steps=[0, last], grad=False)
    assert len(errors) == 4  # a chunk that left the sampler early is not the finished output: not collected
    with pytest.raises(ValueError, match="one action sequence per item"):
        rollout(dit, cfg, ctx, z, keys[0], mouse[0], chunks=2, seed=1, grad=False)


@pytest.mark.parametrize("scheme,first", [("causal", 2), ("segment", 2)])
def test_regression_pulls_the_chunks_with_real_context_to_the_real_latents(scheme, first):
    """The first chunk continues the real start, so the real latents after it are its target;
    later chunks continue the student's own output and get no real target."""
    cfg = dataclasses.replace(_cfg(), scheme=scheme, chunk_latents=2, first_latents=3, new_latents=2)
    z = torch.randn(2, 4, 7, 3, 5)
    x = z[:, :, 1:].clone()
    x[:, :, first:] += 5.0  # later chunks far from the real latents: not the regression's business
    x.requires_grad_(True)
    loss = regression_loss(x, z, cfg)
    assert loss.item() == 0.0
    (regression_loss(x + 0.1 * torch.randn_like(x), z, cfg)).backward()
    assert x.grad[:, :, :first].abs().sum() > 0 and x.grad[:, :, first:].abs().sum() == 0
    with torch.no_grad():
        x[:, :, :first] += 1.0
    assert regression_loss(x, z, cfg).item() == pytest.approx(1.0)
    # without self-rollout every chunk's context is real: every chunk has its target
    x.grad = None
    (regression_loss(x, z, cfg, first_only=False)).backward()
    assert (x.grad[:, :, first:] != 0).all()
    # 2 frames off by 1, 4 by 5
    assert regression_loss(x, z, cfg, first_only=False).item() == pytest.approx((2 * 1 + 4 * 25) / 6)


def test_pooled_regression_sees_the_block_means_only():
    """--regress-pool 2: detail within a 2x2 block of latents is DMD's; the block's mean is the anchor's."""
    cfg = dataclasses.replace(_cfg(), chunk_latents=2)
    z = torch.randn(2, 4, 5, 4, 6)
    x = z[:, :, 1:].clone()
    checker = (torch.arange(4)[:, None] + torch.arange(6)[None]) % 2 * 2.0 - 1.0  # +-1, mean 0 in every 2x2 block
    x[:, :, :2] += checker
    assert regression_loss(x, z, cfg).item() == pytest.approx(1.0)
    assert regression_loss(x, z, cfg, pool=2).item() == pytest.approx(0.0, abs=1e-12)
    x[:, :, :2] += 0.5  # a shift of the block means is seen at any pooling
    assert regression_loss(x, z, cfg, pool=2).item() == pytest.approx(0.25)
    assert regression_loss(x, z, cfg).item() == pytest.approx(1.25)


def test_without_self_rollout_each_item_sees_its_own_real_latents():
    cfg = _cfg()
    dit, ctx, z, t_frames = _two_items(cfg)
    keys, mouse = torch.zeros(2, t_frames, 6), torch.randn(2, t_frames, 2)
    kw = dict(chunks=2, seed=1, exit_steps=[cfg.steps - 1] * 2, grad=False, self_rollout=False)
    base, _ = rollout(dit, cfg, ctx, z, keys, mouse, **kw)
    z2 = z.clone()
    z2[1, :, 1] += 1.0  # item 1's real first chunk: the context of its second chunk, and of nothing else
    moved, _ = rollout(dit, cfg, ctx, z2, keys, mouse, **kw)
    assert torch.equal(moved[0], base[0]) and torch.equal(moved[1, :, 0], base[1, :, 0])
    assert not torch.allclose(moved[1, :, 1], base[1, :, 1], atol=1e-4)


def _data(folder, cfg, shards=3, n=25):
    folder.mkdir(parents=True, exist_ok=True)
    r = np.random.default_rng(0)
    for i in range(shards):
        base = r.integers(0, 256, (1, cfg.height, cfg.width, 3))
        frames = np.clip(base + r.integers(-20, 21, (n, cfg.height, cfg.width, 3)), 0, 255).astype(np.uint8)
        write_shard(folder / f"s{i}.npz", Shard(
            frames=frames, keys=r.integers(0, 2, (n, 6)).astype(np.uint8), mouse=r.normal(size=(n, 2)).astype(np.float32),
            pose=np.cumsum(r.normal(size=(n, 5)), 0).astype(np.float32), episode=np.zeros(n, np.int32),
            frame=np.arange(n, dtype=np.int32), meta={"map": "freedoom2:MAP01"}))


def _digest(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_dmd_steps_move_the_student_not_the_teacher_and_resume(tmp_path):
    cfg = _cfg()
    torch.manual_seed(0)
    w = World.from_config(cfg, seed=0)
    _wake(w.dit, 1)
    from interworld.models.motion import MotionModel

    teacher = save_checkpoint(tmp_path / "teacher", cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder,
                                                          "motion": MotionModel()}, extra={"motion": {"cases": 3}})
    before = _digest(teacher)
    _data(tmp_path / "data", cfg)
    out = tmp_path / "student"
    args = dict(data=str(tmp_path / "data"), out=str(out), teacher=str(teacher), batch=2, chunks=2, student_steps=2,
                fake_steps=2, lr=1e-3, fake_lr=1e-3, log_every=1, device="cpu")
    distill(DistillArgs(steps=1, **args))
    assert _digest(teacher) == before  # the teacher is never written
    t, s = load_tensors(teacher), load_tensors(out)
    fake = load_file(str(out / "fake.safetensors"))
    moved = [k for k in t if k.startswith("dit.") and not torch.equal(t[k], s[k])]
    assert moved, "one DMD step changed no student weight"
    assert any(not torch.equal(t[k], fake[k]) for k in t if k.startswith("dit."))  # the fake score learned too
    assert all(torch.equal(t[k], s[k]) for k in t if k.startswith("vae."))
    meta = json.loads((out / "config.json").read_text())
    assert meta["model"]["sampler"] == "x0" and meta["model"]["steps"] == 2 and meta["step"] == 1
    # the teacher's motion model comes along unchanged, so the student's poses are integrated as the teacher's
    assert meta["motion"] == {"cases": 3} and all(torch.equal(t[k], s[k]) for k in t if k.startswith("motion."))
    assert any(k.startswith("motion.") for k in s)

    distill(DistillArgs(steps=2, **args))  # resumes at step 1
    assert json.loads((out / "state.json").read_text())["step"] == 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "dmd" in r] == [1, 2]

    # the student is a world checkpoint that streams with its own few-step sampler
    ws = World.from_pretrained(str(out))
    assert ws.motion is not None
    ws.reset((np.random.default_rng(0).random((cfg.height, cfg.width, 3)) * 255).astype(np.uint8), "x")
    assert ws.step(None).shape[0] == ws.frames_per_step


@pytest.mark.parametrize("switches", [dict(self_rollout=False), dict(error_buffer=8), dict(scheme="segment"),
                                      dict(scheme="segment", self_rollout=False, error_buffer=8), dict(regress=1.0),
                                      dict(regress=1.0, self_rollout=False), dict(regress=1.0, regress_pool=2),
                                      dict(camera="engine")])
def test_each_switch_runs(tmp_path, switches):
    cfg = _cfg()
    w = World.from_config(cfg, seed=0)
    _wake(w.dit, 2)
    teacher = save_checkpoint(tmp_path / "teacher", cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder})
    _data(tmp_path / "data", cfg)
    out = distill(DistillArgs(data=str(tmp_path / "data"), out=str(tmp_path / "s"), teacher=str(teacher), steps=3,
                              batch=2, chunks=2, student_steps=2, fake_steps=1, log_every=1, device="cpu", **switches))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["self_rollout"] == float(switches.get("self_rollout", True))
    meta = json.loads((out / "config.json").read_text())
    assert meta["model"]["scheme"] == switches.get("scheme", "causal")
    assert meta["camera"] == switches.get("camera", "actions")
    if "error_buffer" in switches:
        sizes = [r["error_buffer_frames"] for r in log if "dmd" in r]
        assert 0 < sizes[-1] <= 8 and sizes == sorted(sizes)  # fills, then stays at its bound
    assert all(("regress" in r) == ("regress" in switches) for r in log if "dmd" in r)
    if "regress" in switches:  # the same seed without the term moves the student elsewhere
        plain = distill(DistillArgs(data=str(tmp_path / "data"), out=str(tmp_path / "p"), teacher=str(teacher),
                                    steps=3, batch=2, chunks=2, student_steps=2, fake_steps=1, device="cpu",
                                    **{k: v for k, v in switches.items() if k != "regress"}))
        a, b = load_tensors(out), load_tensors(plain)
        assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("dit."))


def test_resumed_run_keeps_its_error_buffer(tmp_path):
    """A run stopped by its time limit goes on with the residuals it had collected (on disk
    beside the checkpoint), not with an empty buffer."""
    cfg = _cfg()
    w = World.from_config(cfg, seed=0)
    _wake(w.dit, 2)
    teacher = save_checkpoint(tmp_path / "teacher", cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder})
    _data(tmp_path / "data", cfg)
    args = dict(data=str(tmp_path / "data"), out=str(tmp_path / "s"), teacher=str(teacher), batch=2, chunks=2,
                student_steps=2, fake_steps=2, log_every=1, device="cpu", error_buffer=64)
    out = distill(DistillArgs(steps=3, **args))
    held = ErrorBuffer(64)
    held.load(out / "error_buffer.0.safetensors", "cpu")
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(held) == log[-1]["error_buffer_frames"] > 0
    distill(DistillArgs(steps=4, **args))
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 4 and log[-1]["error_buffer_frames"] >= len(held)


def test_cli_names_a_missing_teacher(tmp_path, capsys):
    from interworld.cli.main import main

    assert main(["distill", "--teacher", str(tmp_path / "nope"), "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "is not a checkpoint folder" in capsys.readouterr().err


@pytest.mark.parametrize("flag,meta,says", [
    (["--regress", "-1"], None, "--regress -1.0: a weight of 0 (off) or more"),
    (["--regress", "1", "--regress-pool", "3"], None,
     "--regress-pool 3: 1 or a divisor of both sides of this model's 8x8 latents"),
    # the shipped model is a student: distilling from it by mistake must stop at once
    ([], {"kind": "student", "teacher": "runs/world"}, "is a distilled student (teacher runs/world)")])
def test_cli_names_a_bad_setting_or_teacher(tmp_path, capsys, flag, meta, says):
    from interworld.cli.main import main

    cfg = _cfg()
    w = World.from_config(cfg, seed=0)
    teacher = save_checkpoint(tmp_path / "teacher", cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder},
                              extra=meta)
    _data(tmp_path / "data", cfg)
    assert main(["distill", "--teacher", str(teacher), "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"),
                 *flag, "--device", "cpu", "--quiet"]) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_compiled_networks_give_the_eager_losses(tmp_path, monkeypatch):
    """--compile: the student, teacher and fake score with compiled blocks (dynamo tracing every
    rollout shape, with and without gradients and a KV-cache prefix) compute the eager losses.
    The `aot_eager` backend keeps this test fast; inductor's kernels are checked in test_accel."""
    import torch._dynamo as dynamo
    from torch._dynamo.utils import counters

    compile_ = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compile_(self, **{**kw, "backend": "aot_eager"}))
    dynamo.reset()
    counters.clear()  # earlier tests' compiles must not count
    cfg = _cfg()
    w = World.from_config(cfg, seed=0)
    _wake(w.dit, 3)
    teacher = save_checkpoint(tmp_path / "teacher", cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder})
    _data(tmp_path / "data", cfg)
    logs = {}
    for compiled in (False, True):
        out = distill(DistillArgs(data=str(tmp_path / "data"), out=str(tmp_path / f"s{compiled}"), teacher=str(teacher),
                                  steps=1, batch=2, chunks=2, student_steps=2, fake_steps=2, error_buffer=8, log_every=1,
                                  device="cpu", compile=compiled))
        logs[compiled] = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if "dmd" in line]
    assert counters["stats"]["unique_graphs"] > 0  # the blocks were compiled, not silently left eager
    for key in ("dmd", "dmd_grad", "fake_loss"):
        assert logs[True][0][key] == pytest.approx(logs[False][0][key], rel=1e-4), key


def test_a_student_of_another_size_starts_from_its_own_world_model(tmp_path):
    """--student-init: a wider teacher teaches a DiT of another size trained on the same VAE; the
    student and the fake score start from that model and keep its text encoder, the teacher scores."""
    cfg = _cfg()
    w = World.from_config(cfg, seed=0)
    _wake(w.dit, 1)
    teacher = save_checkpoint(tmp_path / "teacher", cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder},
                              extra={"kind": "world"})
    small = cfg.replace(dim=48, ffn_dim=96, num_heads=3, num_layers=1)
    s = World.from_config(small, seed=1)
    s.vae.load_state_dict(w.vae.state_dict())
    _wake(s.dit, 2)
    _wake(s.text_encoder, 3)
    init = save_checkpoint(tmp_path / "init", small, {"dit": s.dit, "vae": s.vae, "text": s.text_encoder},
                           extra={"kind": "world"})
    _data(tmp_path / "data", cfg)
    out = tmp_path / "student"
    args = dict(data=str(tmp_path / "data"), out=str(out), teacher=str(teacher), batch=2, chunks=2, student_steps=2,
                fake_steps=2, lr=1e-3, fake_lr=1e-3, log_every=1, device="cpu")
    distill(DistillArgs(steps=1, student_init=str(init), **args))
    t, i, st = load_tensors(teacher), load_tensors(init), load_tensors(out)
    fake = load_file(str(out / "fake.safetensors"))
    meta = json.loads((out / "config.json").read_text())
    assert (meta["model"]["dim"], meta["model"]["num_layers"], meta["student_init"]) == (48, 1, str(init))
    assert st["dit.blocks.0.self_attn.q.weight"].shape == (48, 48) == fake["dit.blocks.0.self_attn.q.weight"].shape
    assert any(not torch.equal(i[k], st[k]) for k in i if k.startswith("dit."))  # DMD moved it from its start
    assert all(torch.equal(i[k], st[k]) for k in i if k.startswith(("text.", "vae.")))  # its own text encoder
    assert any(not torch.equal(t[k], st[k]) for k in t if k.startswith("text."))

    distill(DistillArgs(steps=2, **args))  # resumes as the smaller student without being told again
    meta = json.loads((out / "config.json").read_text())
    assert meta["step"] == 2 and meta["model"]["dim"] == 48 and meta["student_init"] == str(init)
    ws = World.from_pretrained(str(out))
    ws.reset((np.random.default_rng(0).random((cfg.height, cfg.width, 3)) * 255).astype(np.uint8), "x")
    assert ws.step(None).shape[0] == ws.frames_per_step

    other_vae = World.from_config(small, seed=5)  # a VAE of its own: its latents mean something else
    bad = save_checkpoint(tmp_path / "bad", small, {"dit": s.dit, "vae": _wake(other_vae.vae, 4),
                                                    "text": s.text_encoder}, extra={"kind": "world"})
    with pytest.raises(ValueError, match="another VAE"):
        distill(DistillArgs(steps=1, student_init=str(bad), **{**args, "out": str(tmp_path / "x")}))
    layout = save_checkpoint(tmp_path / "layout", small.replace(window_latents=cfg.window_latents + 1),
                             {"dit": s.dit, "vae": s.vae, "text": s.text_encoder}, extra={"kind": "world"})
    with pytest.raises(ValueError, match="window_latents"):
        distill(DistillArgs(steps=1, student_init=str(layout), **{**args, "out": str(tmp_path / "y")}))
    with pytest.raises(ValueError, match="student checkpoint"):
        distill(DistillArgs(steps=1, student_init=str(out), **{**args, "out": str(tmp_path / "z")}))

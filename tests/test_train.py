"""Training on real recorded frames (tiny preset): the loss falls, checkpoints round-trip, runs resume."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("vizdoom", reason="pip install vizdoom==1.3.2 to record training data")

from interworld.config import get_preset  # noqa: E402
from interworld.data.vizdoom_rec import record  # noqa: E402
from interworld.engine.world import World  # noqa: E402
from interworld.train.common import autocast, read_log  # noqa: E402
from interworld.train.error_buffer import ErrorBuffer  # noqa: E402
from interworld.train.fit import FitArgs, fit  # noqa: E402
from interworld.train.world import DEFAULT_PROMPT  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("doom")
    record(d / "train", ["freedoom2:MAP01"], 450, workers=1, seed=0, height=32, width=32, shard_frames=150)
    record(d / "val", ["freedoom2:MAP19"], 150, workers=1, seed=1, height=32, width=32, shard_frames=150)
    return d


def _losses(run):
    return [r["loss"] for r in read_log(run) if "loss" in r]


def test_vae_then_world_training_lowers_the_loss_and_resumes(data, tmp_path):
    vae_run = fit(FitArgs("vae", str(data), str(tmp_path / "vae"), preset="tiny", steps=60, batch=4, lr=1e-3,
                          warmup=5, latents=3, log_every=5, val_every=1000, ckpt_every=1000, device="cpu"))
    lv = _losses(vae_run)
    assert np.mean(lv[-4:]) < 0.7 * np.mean(lv[:2]), lv
    meta = json.loads((vae_run / "config.json").read_text())
    assert meta["kind"] == "vae" and "val_recon_psnr" in meta  # validated on the validation map (MAP19)

    world_run = tmp_path / "world"
    # half the batches with memory frames retrieved from earlier in the shard
    fit(FitArgs("world", str(data), str(world_run), init=str(vae_run), steps=60, batch=4, lr=2e-3, warmup=5,
                latents=3, log_every=5, val_every=1000, ckpt_every=1000, device="cpu", memory=0.5))
    lw = _losses(world_run)
    assert np.mean(lw[-4:]) < np.mean(lw[:2]), lw
    meta = json.loads((world_run / "config.json").read_text())
    assert meta["step"] == 60 and "val_next_chunk_psnr" in meta and "val_repeat_last_psnr" in meta

    # the checkpoint is a complete world: it loads and generates, with memory on by default, and an
    # empty prompt means the prompt it was trained with
    w = World.from_pretrained(str(world_run))
    assert meta["model"]["memory_trained"] and w.memory
    assert meta["model"]["train_prompt"] == DEFAULT_PROMPT
    assert torch.equal(w.encode_prompt(""), w.encode_prompt(DEFAULT_PROMPT))
    assert not torch.equal(w.encode_prompt("corridor"), w.encode_prompt(DEFAULT_PROMPT))
    frame = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    w.reset(frame, "corridor")
    n = w.frames_per_step
    assert w.step(None).shape == (n, 32, 32, 3)

    # the same command on the same folder resumes at step 60 and goes on to 70 (with the error buffer on,
    # and the blocks compiled: the checkpoint it writes must load into the plain model)
    fit(FitArgs("world", str(data), str(world_run), steps=70, batch=4, lr=2e-3, latents=3, log_every=5,
                val_every=1000, ckpt_every=1000, device="cpu", error_buffer=64, compile=True))
    steps = [r["step"] for r in read_log(world_run) if "loss" in r]
    assert steps[-1] == 70 and 65 in steps and json.loads((world_run / "state.json").read_text())["step"] == 70
    assert np.isfinite(_losses(world_run)[-1])
    World.from_pretrained(str(world_run))
    # the buffer is kept beside the checkpoint, so a later resume starts from what it held
    held = ErrorBuffer(64)
    held.load(world_run / "error_buffer.0.safetensors", "cpu")
    assert 0 < len(held) <= 64


def test_two_process_ddp_run_stops_together(data, tmp_path):
    """torchrun with 2 CPU processes (gloo): both ranks train, agree when the time limit ends the
    run (a rank that stopped alone would hang the other in its next all-reduce), and checkpoint."""
    import os
    import subprocess
    import sys

    vae_run = fit(FitArgs("vae", str(data), str(tmp_path / "vae"), preset="tiny", steps=10, batch=2, latents=3,
                          log_every=5, val_every=1000, ckpt_every=1000, device="cpu"))
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "interworld.cli.main", "train", "world", "--data", str(data), "--out", str(out),
           "--init", str(vae_run), "--steps", "100000", "--batch", "2", "--latents", "3", "--log-every", "2",
           "--val-every", "100000", "--time-limit", "28", "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    log = read_log(out)
    assert log[0]["world_size"] == 2
    state = json.loads((out / "state.json").read_text())
    assert state["step"] > 2 and state["step"] % 2 == 0  # stopped at a shared log step


def test_world_training_of_a_umt5_model_trains_on_empty_text_states(data, tmp_path):
    """Full-size models (umT5 text, converted from the official weights) have no built-in encoder:
    --init must work without text.* tensors, and the checkpoint must load without them."""
    vae_run = fit(FitArgs("vae", str(data), str(tmp_path / "vae"), preset="tiny", steps=2, batch=2, latents=3,
                          log_every=1, val_every=1000, ckpt_every=1000, device="cpu"))
    meta = json.loads((vae_run / "config.json").read_text())
    meta["model"]["text_encoder"] = "umt5-xxl"
    (vae_run / "config.json").write_text(json.dumps(meta))
    run = fit(FitArgs("world", str(data), str(tmp_path / "w"), init=str(vae_run), steps=3, batch=2, latents=3,
                      log_every=1, val_every=1000, ckpt_every=1000, device="cpu"))
    from interworld.io.checkpoint import load_tensors

    keys = load_tensors(run)
    assert any(k.startswith("dit.") for k in keys) and not any(k.startswith("text.") for k in keys)
    w = World.from_pretrained(str(run))
    w.reset((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8), "ignored without umT5")
    assert w.step(None).shape[0] == w.frames_per_step


def test_adversarial_vae_trains_under_ddp_and_keeps_its_discriminator(data, tmp_path):
    """`train vae --adversarial` on 2 CPU processes: the discriminator (DDP-wrapped) learns, the
    decoder feels it from --adv-start on (its gradient balanced at the decoder's last layer, which
    must work under DDP), --vae-dim widens a new VAE, and the discriminator is saved beside the
    checkpoint and taken up again on resume."""
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    out = tmp_path / "vae"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29519",
           "-m", "interworld.cli.main", "train", "vae", "--data", str(data), "--out", str(out), "--preset", "tiny",
           "--steps", "12", "--batch", "2", "--latents", "2", "--log-every", "2", "--val-every", "100000",
           "--adversarial", "0.5", "--adv-start", "4", "--vae-dim", "12", "--device", "cpu", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    log = [x for x in read_log(out) if "loss" in x]
    assert all("d_loss" in x for x in log) and all(np.isfinite(x["d_loss"]) for x in log)
    adv = [x for x in log if "adv_weight" in x]
    assert adv and min(x["step"] for x in adv) > 4 and all(x["adv_weight"] > 0 for x in adv)
    meta = json.loads((out / "config.json").read_text())
    assert meta["model"]["vae"]["dim"] == 12 and meta["model"]["vae"]["dec_dim"] == 12
    d1 = load_file(str(out / "discriminator.safetensors"))
    fit(FitArgs("vae", str(data), str(out), steps=14, batch=2, latents=2, log_every=1, val_every=1000,
                ckpt_every=1000, device="cpu", adversarial=0.5, adv_start=4))
    d2 = load_file(str(out / "discriminator.safetensors"))
    assert d1.keys() == d2.keys() and any(not torch.equal(d1[k], d2[k]) for k in d1)
    first = [x for x in read_log(out) if x.get("step") == 13 and "d_loss" in x][0]
    assert first["d_loss"] < 1.0  # resumed with the trained discriminator: a fresh one starts near 2 (1.8 here)


def test_a_new_vae_with_more_latent_channels_feeds_a_world_model(data, tmp_path):
    """--vae-z: a new VAE of that many latent channels, and a world model on it whose DiT takes them;
    refused where it would reshape a trained VAE."""
    vae_run = fit(FitArgs("vae", str(data), str(tmp_path / "vae"), preset="tiny", steps=2, batch=2, latents=2,
                          val_every=1000, ckpt_every=1000, device="cpu", vae_z=6))
    assert get_preset("tiny").vae.z_dim != 6
    assert json.loads((vae_run / "config.json").read_text())["model"]["vae"]["z_dim"] == 6
    run = fit(FitArgs("world", str(data), str(tmp_path / "w"), init=str(vae_run), steps=1, batch=2, latents=3,
                      val_every=1000, ckpt_every=1000, device="cpu"))
    w = World.from_pretrained(str(run))
    assert w.vae.latents_mean.shape == (6,) and w.dit.patch_embedding.in_channels == 6
    w.reset((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8), "x")
    assert w.step([{"keys": ["w"], "mouse": [3, 0]}]).shape[0] == w.frames_per_step
    for kind, init in (("vae", str(vae_run)), ("world", str(vae_run))):
        with pytest.raises(ValueError, match="new VAE"):
            fit(FitArgs(kind, str(data), str(tmp_path / "x"), init=init, steps=1, batch=2, latents=3,
                        device="cpu", vae_z=8))
    # resumed with the arguments it began with (a lease's follow-up call), and refused with others
    fit(FitArgs("vae", str(data), str(vae_run), preset="tiny", steps=3, batch=2, latents=2, val_every=1000,
                ckpt_every=1000, device="cpu", vae_z=6))
    assert json.loads((vae_run / "state.json").read_text())["step"] == 3
    for shape in ({"vae_z": 4}, {"vae_dim": 5}, {"vae_z": 0}):
        with pytest.raises(ValueError, match="new VAE"):
            fit(FitArgs("vae", str(data), str(vae_run), preset="tiny", steps=4, batch=2, latents=2,
                        device="cpu", **shape))


def test_a_new_dit_of_another_width_trains_on_a_vae(data, tmp_path):
    vae_run = fit(FitArgs("vae", str(data), str(tmp_path / "vae"), preset="tiny", steps=2, batch=2, latents=2,
                          val_every=1000, ckpt_every=1000, device="cpu"))
    run = fit(FitArgs("world", str(data), str(tmp_path / "w"), init=str(vae_run), steps=3, batch=2, latents=3,
                      val_every=1000, ckpt_every=1000, device="cpu", dit_dim=64, dit_layers=3))
    m = json.loads((run / "config.json").read_text())["model"]
    assert (m["dim"], m["ffn_dim"], m["num_heads"], m["num_layers"]) == (64, 192, 1, 3)
    w = World.from_pretrained(str(run))  # the checkpoint builds the wider model
    assert len(w.dit.blocks) == 3 and w.dit.blocks[0].self_attn.q.weight.shape == (64, 64)
    from safetensors.torch import load_file

    # from a distilled student (the shipped file is one): a new DiT on its VAE, the old one unused, and
    # the preset's sampler, not the student's few-step x0 one
    student = tmp_path / "student"
    student.mkdir()
    (student / "model.safetensors").write_bytes((run / "model.safetensors").read_bytes())
    meta = json.loads((run / "config.json").read_text())
    meta["model"].update(sampler="x0", steps=2)
    (student / "config.json").write_text(json.dumps({**meta, "kind": "student"}))
    run2 = fit(FitArgs("world", str(data), str(tmp_path / "w2"), init=str(student), steps=1, batch=2, latents=3,
                       val_every=1000, ckpt_every=1000, device="cpu", dit_dim=128))
    old, new = load_file(str(run / "model.safetensors")), load_file(str(run2 / "model.safetensors"))
    assert new["dit.blocks.0.self_attn.q.weight"].shape == (128, 128)
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("vae."))
    m2 = json.loads((run2 / "config.json").read_text())["model"]
    tiny = get_preset("tiny")
    assert (m2["sampler"], m2["steps"]) == (tiny.sampler, tiny.steps) != ("x0", 2)
    with pytest.raises(ValueError, match="new DiT"):  # a run folder that has a DiT is resumed as it is
        fit(FitArgs("world", str(data), str(run2), steps=2, batch=2, latents=3, device="cpu", dit_dim=192))
    # one token per latent pixel: the same blocks on four times the tokens, and the checkpoint says so
    run3 = fit(FitArgs("world", str(data), str(tmp_path / "w3"), init=str(vae_run), steps=2, batch=2, latents=3,
                       val_every=1000, ckpt_every=1000, device="cpu", dit_patch=1))
    w3 = World.from_pretrained(str(run3))
    assert w3.cfg.patch == (1, 1, 1) and w3.dit.patch_embedding.kernel_size == (1, 1, 1)
    assert w3.cfg.tokens_per_frame(32, 32) == 4 * tiny.tokens_per_frame(32, 32)
    # conditioned on the actions alone (--no-camera): no camera layers, and it streams
    run5 = fit(FitArgs("world", str(data), str(tmp_path / "w5"), init=str(vae_run), steps=2, batch=2, latents=3,
                       val_every=1000, ckpt_every=1000, device="cpu", dit_camera=False))
    w5 = World.from_pretrained(str(run5))
    assert w5.cfg.camera is False and tiny.camera is True
    assert not any("cam" in k for k in w5.dit.state_dict()) and any("cam" in k for k in w3.dit.state_dict())
    w5.reset((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8), "x")
    assert w5.step(None).shape[0] == w5.frames_per_step
    # RoPE by ray direction (--ray-rope): the checkpoint says so, and it streams under a turn
    run6 = fit(FitArgs("world", str(data), str(tmp_path / "w6"), init=str(vae_run), steps=2, batch=2, latents=3,
                       val_every=1000, ckpt_every=1000, device="cpu", dit_ray_rope=True))
    w6 = World.from_pretrained(str(run6))
    assert w6.cfg.ray_rope is True and tiny.ray_rope is False
    w6.reset((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8), "x")
    assert w6.step([{"keys": ["w"], "mouse": [9, 0]}]).shape[0] == w6.frames_per_step
    with pytest.raises(ValueError, match="multiple of 64"):  # 0 is refused, not taken as "the config's"
        fit(FitArgs("world", str(data), str(tmp_path / "w4"), init=str(vae_run), steps=1, batch=2, latents=3,
                    device="cpu", dit_dim=0))


def test_training_precision_on_a_cpu_is_fp32_and_its_name_is_checked():
    x = torch.ones(2, 2)
    for precision in ("bf16", "fp32"):
        with autocast(torch.device("cpu"), precision):
            assert (x @ x).dtype == torch.float32
    with pytest.raises(ValueError, match="fp16"):
        autocast(torch.device("cpu"), "fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_training_precision_bf16_autocasts_and_fp32_does_not():
    x = torch.ones(2, 2, device="cuda")
    with autocast(x.device, "bf16"):
        assert (x @ x).dtype == torch.bfloat16
    with autocast(x.device, "fp32"):
        assert (x @ x).dtype == torch.float32


def test_the_previous_frame_path_joins_a_trained_dit_as_it_was_and_then_learns(data, tmp_path):
    from interworld.models.dit import Step

    vae_run = fit(FitArgs("vae", str(data), str(tmp_path / "vae"), preset="tiny", steps=2, batch=2, latents=2,
                          val_every=1000, ckpt_every=1000, device="cpu"))
    base = fit(FitArgs("world", str(data), str(tmp_path / "w"), init=str(vae_run), steps=3, batch=2, latents=3,
                       val_every=1000, ckpt_every=1000, device="cpu"))
    run = fit(FitArgs("world", str(data), str(tmp_path / "p"), init=str(base), steps=4, batch=2, latents=3, lr=1e-3,
                      warmup=1, val_every=1000, ckpt_every=1000, device="cpu", prev_latent=True))
    assert json.loads((run / "config.json").read_text())["model"]["prev_latent"]
    w = World.from_pretrained(str(run))
    assert float(w.dit.patch_embedding_prev.weight.detach().abs().sum()) > 0  # trained, and kept in the checkpoint

    # before training (a run at lr 0), the new path is zero: the DiT gives what the one it came from gives
    joined = fit(FitArgs("world", str(data), str(tmp_path / "p0"), init=str(base), steps=1, batch=2, latents=3,
                         lr=0.0, warmup=1, val_every=1000, ckpt_every=1000, device="cpu", prev_latent=True))
    old, fresh = World.from_pretrained(str(base)), World.from_pretrained(str(joined)).dit
    assert fresh.cfg.prev_latent and float(fresh.patch_embedding_prev.weight.detach().abs().sum()) == 0
    c, f, h, wd = old.cfg.latent_shape(9, 32, 32)
    x, t = torch.randn(1, c, f, h, wd), torch.full((1, f), 500.0)
    t[:, 0] = 0
    ctx = torch.randn(1, 4, old.cfg.text_dim)
    with torch.no_grad():
        ref = old.dit(x, t, ctx, Step(frame_pos=torch.arange(f)))[0]
        assert torch.equal(fresh.eval()(x, t, ctx, Step(frame_pos=torch.arange(f)))[0], ref)
        # once trained, it reads the frame before: changing frame 0 moves frame 1's output through it
        w.dit.patch_embedding_prev.weight.data.normal_(std=0.1)
        y = x.clone()
        y[:, :, 0] += 1
        mask = torch.ones(f, f).tril().bool().repeat_interleave(h * wd // 4, 0).repeat_interleave(h * wd // 4, 1)
        a = w.dit(x, t, ctx, Step(frame_pos=torch.arange(f), mask=mask))[0]
        b = w.dit(y, t, ctx, Step(frame_pos=torch.arange(f), mask=mask))[0]
    assert not torch.allclose(a[:, :, 1], b[:, :, 1])


def test_world_training_on_its_own_rollouts_runs_and_asks_for_the_causal_scheme(data, tmp_path, monkeypatch):
    import interworld.train.world as world_mod

    vae_run = fit(FitArgs("vae", str(data), str(tmp_path / "vae"), preset="tiny", steps=2, batch=2, latents=2,
                          val_every=1000, ckpt_every=1000, device="cpu"))
    made = []
    real = world_mod.self_rollout_context

    def spy(dit, cfg, ctx, z, keys, mouse, n, seed, poses=None):
        assert poses is not None and poses.shape[:2] == keys.shape[:2]  # the clips' recorded poses
        made.append(n)
        return real(dit, cfg, ctx, z, keys, mouse, n, seed, poses=poses)

    monkeypatch.setattr(world_mod, "self_rollout_context", spy)
    run = fit(FitArgs("world", str(data), str(tmp_path / "w"), init=str(vae_run), steps=6, batch=2, latents=5,
                      scheme="causal", val_every=1000, ckpt_every=1000, device="cpu", self_context=1.0,
                      memory=0.5, log_every=1))
    assert len(made) == 6 and set(made) <= {1, 2, 3}  # every batch, 1 to latents - 2 generated latents
    assert all(np.isfinite(_losses(run)))
    with pytest.raises(ValueError, match="causal"):
        fit(FitArgs("world", str(data), str(tmp_path / "s"), init=str(vae_run), steps=1, batch=2, latents=5,
                    scheme="segment", device="cpu", self_context=0.5))
    with pytest.raises(ValueError, match="at least 3 latents"):
        fit(FitArgs("world", str(data), str(tmp_path / "l"), init=str(vae_run), steps=1, batch=2, latents=2,
                    scheme="causal", device="cpu", self_context=0.5))
    # another clip's sink: asked of world_loss for the self-context batches; refused where it cannot apply
    import interworld.train.fit as fit_mod
    asked = []
    loss = fit_mod.world_loss
    monkeypatch.setattr(fit_mod, "world_loss", lambda *x, **k: asked.append(k["foreign_sink"]) or loss(*x, **k))
    fit(FitArgs("world", str(data), str(tmp_path / "o"), init=str(vae_run), steps=2, batch=2, latents=5,
                scheme="causal", val_every=1000, ckpt_every=1000, device="cpu", self_context=1.0,
                self_context_sink="other"))
    assert asked == [True, True]
    for kw in ({"self_context": 0.0}, {"self_context": 0.5, "batch": 1}):
        with pytest.raises(ValueError, match="self-context-sink other"):
            fit(FitArgs("world", str(data), str(tmp_path / "x"), init=str(vae_run), steps=1, latents=5,
                        **{"batch": 2, **kw}, scheme="causal", device="cpu", self_context_sink="other"))


def test_steps_for_time_ends_the_schedule_with_the_time():
    from interworld.train.common import Budget, steps_for_time

    assert steps_for_time(1000, 7.5, 400.0, 100_000) == 4000  # 3000 more steps in the 400 s left
    assert steps_for_time(1000, 7.5, 400.0, 2500) == 2500  # never beyond --steps
    assert steps_for_time(1000, 7.5, -5.0, 100_000) == 1001  # out of time: the schedule ends now
    assert Budget(None).left() == float("inf") and not Budget(None).done()
    assert Budget(1000).margin == 20 and Budget(30).margin == 3  # a short budget keeps a tenth back


def test_fit_time_anneals_by_the_time_limit(data, tmp_path):
    """--fit-time: with far more --steps than the time allows, the cosine is fitted to the measured
    speed, so the run stops on time with its learning rate near the floor, not at its peak."""
    vae_run = fit(FitArgs("vae", str(data), str(tmp_path / "vae"), preset="tiny", steps=2, batch=2, latents=2,
                          val_every=1000, ckpt_every=1000, device="cpu"))
    with pytest.raises(ValueError, match="--time-limit"):
        fit(FitArgs("world", str(data), str(tmp_path / "x"), init=str(vae_run), steps=5, device="cpu", fit_time=True))
    run = fit(FitArgs("world", str(data), str(tmp_path / "w"), init=str(vae_run), steps=1_000_000, batch=2,
                      latents=3, lr=1e-3, warmup=4, log_every=4, val_every=10**6, ckpt_every=10**6, device="cpu",
                      time_limit=15, fit_time=True))
    logs = [r for r in read_log(run) if "lr" in r]
    plans = [r["planned_steps"] for r in logs]
    assert max(plans) == 1_000_000 and plans[-1] < 1_000_000  # the cap until the speed is measured, then a plan
    last = logs[-1]
    assert last["step"] >= 0.7 * plans[-1]  # it ran (nearly) to its plan ...
    assert last["lr"] < 0.4e-3  # ... so the cosine came down from 1e-3 towards its floor of 1e-4


def test_ema_averages_the_weights_swaps_them_in_and_resumes(tmp_path):
    from interworld.io.checkpoint import save_checkpoint
    from interworld.train.fit import EMA

    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    w0 = m[0].weight.detach().clone()
    ema = EMA({"dit": m}, 0.5)
    with torch.no_grad():
        m[0].weight.add_(1.0)
    ema.update(step=100)  # the ramp (101/110) is above 0.5: the decay is 0.5
    assert torch.allclose(ema.avg["dit"]["0.weight"], w0 + 0.5)
    ema.update(step=0)  # at the start the ramp, 1/10, rules: the average moves 90% of the way
    assert torch.allclose(ema.avg["dit"]["0.weight"], w0 + 0.95)
    with ema.applied():
        assert torch.allclose(m[0].weight, w0 + 0.95)
    assert torch.allclose(m[0].weight, w0 + 1.0)  # its own weights again
    sd = ema.state_dicts()["dit"]
    assert set(sd) == set(m.state_dict()) and torch.equal(sd["1.running_var"], m[1].running_var)
    cfg = get_preset("tiny")
    save_checkpoint(tmp_path / "ema", cfg, ema.state_dicts())
    again = EMA({"dit": m}, 0.5, resume_from=tmp_path / "ema")
    assert torch.allclose(again.avg["dit"]["0.weight"], w0 + 0.95)
    with pytest.raises(ValueError, match="--ema"):
        EMA({"dit": m}, 1.0)
    with pytest.raises(ValueError, match="--ema averages a world model"):
        fit(FitArgs("vae", str(tmp_path / "no-data"), str(tmp_path / "v"), ema=0.999, device="cpu"))


def test_world_training_with_ema_saves_and_validates_the_average(data, tmp_path):
    """...and a run keeps the motion model of the checkpoint it starts from, in both checkpoints (run 30:
    without it eval integrated the poses with the fixed kinematics and lost 1.5 dB in rollouts)."""
    from interworld.io.checkpoint import load_tensors, read_config, save_checkpoint
    from interworld.models.motion import MotionModel

    vae_run = fit(FitArgs("vae", str(data), str(tmp_path / "vae"), preset="tiny", steps=2, batch=2, latents=2,
                          val_every=1000, ckpt_every=1000, device="cpu"))
    cfg, meta = read_config(vae_run)
    vae = {k[len("vae."):]: v for k, v in load_tensors(vae_run).items() if k.startswith("vae.")}
    save_checkpoint(vae_run, cfg, {"vae": vae, "motion": MotionModel()}, extra={**meta, "motion": {"cases": 3}})
    motion = {k: v for k, v in load_tensors(vae_run).items() if k.startswith("motion.")}
    run = fit(FitArgs("world", str(data), str(tmp_path / "w"), init=str(vae_run), steps=4, batch=2, latents=3,
                      lr=1e-3, warmup=1, val_every=4, ckpt_every=1000, device="cpu", ema=0.9))
    val = [r for r in read_log(run) if "val_next_chunk_psnr" in r][-1]
    assert np.isfinite(val["val_next_chunk_psnr_ema"]) and val["val_next_chunk_psnr_ema"] != val["val_next_chunk_psnr"]
    avg, own = World.from_pretrained(str(run / "ema")), World.from_pretrained(str(run))
    for ckpt in (run, run / "ema"):
        saved = load_tensors(ckpt)
        assert motion and all(torch.equal(saved[k], v) for k, v in motion.items())
        assert json.loads((ckpt / "config.json").read_text())["motion"] == {"cases": 3}
    assert avg.motion is not None and own.motion is not None
    assert json.loads((run / "ema" / "config.json").read_text())["ema"] == 0.9
    a, b = avg.dit.state_dict(), own.dit.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(x, y) for x, y in zip(avg.vae.state_dict().values(), own.vae.state_dict().values()))
    # resumed, the average continues from the saved one, not from the weights it resumes
    fit(FitArgs("world", str(data), str(run), steps=5, batch=2, latents=3, lr=0.0, warmup=1, val_every=1000,
                ckpt_every=1000, device="cpu", ema=0.9))
    again = World.from_pretrained(str(run / "ema")).dit.state_dict()
    assert any(not torch.equal(again[k], World.from_pretrained(str(run)).dit.state_dict()[k]) for k in again)


def test_a_vae_retimed_to_shorter_latents_keeps_its_other_layers_and_the_motion_model(data, tmp_path):
    """`train vae --init V --temporal-down 1,0` (plan item 2 of docs/TRAINING.md): V's VAE of 4-frame
    latents becomes one of 2-frame latents, every layer but the dropped temporal ones as V had it."""
    import dataclasses

    from interworld.io.checkpoint import load_tensors, save_checkpoint
    from interworld.models.motion import MotionModel
    from interworld.models.vae import CausalVAE

    tiny = get_preset("tiny")
    cfg = tiny.replace(vae=dataclasses.replace(tiny.vae, dim_mult=(1, 2, 2), temporal_down=(True, True)))
    assert cfg.vae.temporal == 4
    torch.manual_seed(0)
    init = tmp_path / "v4"
    save_checkpoint(init, cfg, {"vae": CausalVAE(cfg.vae), "motion": MotionModel()},
                    extra={"kind": "vae", "motion": {"cases": 3}})
    run = fit(FitArgs("vae", str(data), str(tmp_path / "v2"), init=str(init), steps=1, batch=2, latents=2, lr=0.0,
                      warmup=1, val_every=1000, ckpt_every=1000, device="cpu", temporal_down=(True, False)))
    m = json.loads((run / "config.json").read_text())
    assert m["model"]["vae"]["temporal_down"] == [True, False] and m["motion"] == {"cases": 3}
    old, new = load_tensors(init), load_tensors(run)
    dropped = sorted(set(old) - set(new))
    assert dropped and all(".time_conv." in k for k in dropped)  # the encoder's second level, the decoder's first
    assert set(new) <= set(old) and any(".time_conv." in k for k in new)  # the first level still halves time
    # lr 0: every weight is the init's; only the latents' statistics are measured again, as they now differ
    assert [k for k in new if not torch.equal(new[k], old[k])] == ["vae.latents_mean", "vae.latents_std"]
    # a world model trains on it and streams two frames a latent
    w = World.from_pretrained(str(fit(FitArgs("world", str(data), str(tmp_path / "w"), init=str(run), steps=2,
                                                  batch=2, latents=3, val_every=1000, ckpt_every=1000,
                                                  device="cpu"))))
    assert w.cfg.vae.temporal == 2 and w.motion is not None
    w.reset((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8), "x")
    latents = w.cfg.chunk_latents if w.scheme == "causal" else w.cfg.new_latents
    assert w.step([{"keys": ["w"], "mouse": [5, 0]}]).shape[0] == w.frames_per_step == 2 * latents
    for kind, td, match in (("world", (True,), "shapes a VAE"), ("vae", (True, False, True), "1 to 2 levels")):
        with pytest.raises(ValueError, match=match):
            fit(FitArgs(kind, str(data), str(tmp_path / f"x{kind}"), init=str(init), steps=1, batch=2, latents=2,
                        device="cpu", temporal_down=td))
    with pytest.raises(ValueError, match="already has one"):
        fit(FitArgs("vae", str(data), str(run), steps=2, batch=2, latents=2, device="cpu", temporal_down=(True,)))

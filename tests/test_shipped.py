"""The small model that ships in the package: trained, 8-bit, and better than repeating the last frame."""

import numpy as np
import pytest
import torch
from PIL import Image

from interworld.engine.world import World, shipped_model_dir
from interworld.io.checkpoint import read_config


def test_the_shipped_model_is_an_8bit_trained_checkpoint_under_40_mb():
    d = shipped_model_dir("small")
    assert d is not None, "src/interworld/assets/small/ is missing"
    size = sum(p.stat().st_size for p in d.iterdir())
    assert size < 40e6
    cfg, meta = read_config(d)
    assert cfg.name == "small" and meta["step"] > 0
    # a world model (train world) or a few-step student distilled from one, which names its teacher
    assert meta["kind"] == "world" or (meta["kind"] == "student" and meta["teacher"]), meta
    from safetensors import safe_open

    with safe_open(str(d / "model.safetensors"), "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert "I8" in dtypes  # the weights are stored in 8 bits (io/quant.py)


def test_generate_and_play_default_to_the_shipped_model():
    w = World.from_pretrained("small")  # no random_init: the shipped weights
    assert w.motion is not None  # its camera poses carry Doom's momentum (docs/TRAINING.md, run 28)
    first = w.reset(np.asarray(Image.open("examples/start.png").convert("RGB")), "x")
    assert first.shape == (1, 128, 160, 3)
    frames = w.step(None)
    assert frames.shape[1:] == (128, 160, 3) and frames.std() > 1.0  # a picture, not a flat colour


def test_the_shipped_model_is_trained_on_doom():
    # Against the engine on a validation map (never trained on): far better than the same network
    # untrained, and structurally closer than repeating the last frame (SSIM; the README's card
    # has the full evaluation).
    pytest.importorskip("vizdoom", reason="needs ViZDoom (pip install vizdoom)")
    from interworld.eval.replay import replay
    from interworld.eval.run import teacher_forced

    gt = replay("freedoom2:MAP20", None, None, seed=0, warmup=10, height=128, width=160, policy_frames=420)
    r = {}
    for name, random_init in (("trained", False), ("random", True)):
        w = World.from_pretrained("small", random_init=random_init)
        r[name] = teacher_forced(w, gt, context_latents=7, windows=8, steps=w.cfg.steps, seed=0)
    assert r["trained"]["psnr"] > r["random"]["psnr"] + 5, r
    assert r["trained"]["ssim"] > r["trained"]["repeat_ssim"] + 0.05, r


def test_the_shipped_model_reads_no_prompt_as_its_training_prompt():
    # it was trained on uncaptioned Doom with one prompt: "" would be a text it never saw
    w = World.from_pretrained("small")
    assert w.cfg.train_prompt
    assert torch.equal(w.encode_prompt(""), w.encode_prompt(w.cfg.train_prompt))

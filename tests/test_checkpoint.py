"""Checkpoints: safetensors + config.json, atomic, strict, with errors that name the keys."""

import json

import numpy as np
import pytest
import torch

from interworld.config import get_preset
from interworld.engine.world import World
from interworld.io.checkpoint import CheckpointError, load_into, load_tensors, read_config, save_checkpoint
from interworld.models.dit import WanDiT
from interworld.models.text import BuiltinTextEncoder


def test_world_round_trip_gives_the_same_video(tmp_path):
    w = World.from_pretrained("tiny", random_init=True, seed=3)
    parts = {"dit": w.dit, "vae": w.vae, "text": w.text_encoder}
    save_checkpoint(tmp_path / "ck", w.cfg, parts, extra={"step": 7})
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors"]
    cfg, meta = read_config(tmp_path / "ck")
    assert cfg == w.cfg and meta["step"] == 7
    w2 = World.from_pretrained(str(tmp_path / "ck"))
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    a0, b0 = w.reset(img, "hall", seed=1), w2.reset(img, "hall", seed=1)
    assert np.array_equal(a0, b0)
    assert np.array_equal(w.step(None), w2.step(None))


def test_loading_names_bad_keys(tmp_path):
    cfg = get_preset("tiny")
    m = WanDiT(cfg)
    sd = {f"dit.{k}": v for k, v in m.state_dict().items()}
    del sd["dit.blocks.0.self_attn.q.weight"]
    sd["dit.blocks.0.extra.weight"] = torch.zeros(1)
    sd["dit.head.head.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as e:
        load_into(WanDiT(cfg), sd, "dit", "test.safetensors")
    msg = str(e.value)
    assert "missing 1 keys: blocks.0.self_attn.q.weight" in msg
    assert "unexpected 1 keys: blocks.0.extra.weight" in msg
    assert "head.head.bias: checkpoint (3,) vs model (16,)" in msg


def test_not_a_checkpoint_and_unknown_config_fields(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        read_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": {"dim": 8, "bogus": 1}}))
    with pytest.raises(ValueError, match="bogus"):
        read_config(tmp_path)
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_tensors(tmp_path)
    with pytest.raises(CheckpointError, match="neither a checkpoint folder nor a preset"):
        World.from_pretrained(str(tmp_path / "missing"))


def test_atomic_save_leaves_no_temp_files(tmp_path):
    cfg = get_preset("tiny")
    save_checkpoint(tmp_path, cfg, {"dit": WanDiT(cfg)})
    save_checkpoint(tmp_path, cfg, {"dit": WanDiT(cfg)})  # overwrite in place
    assert not list(tmp_path.glob("*.tmp"))


def test_builtin_text_encoder_handles_empty_and_long_prompts():
    enc = BuiltinTextEncoder(16, 8, 1)
    out = enc(["", "a very long prompt that is cut to the text length", "é"])
    assert out.shape == (3, 8, 16) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])


def test_int8_storage_roundtrips_within_a_step_and_the_world_matches_float(tmp_path):
    import numpy as np

    from interworld.config import get_preset
    from interworld.engine.world import World
    from interworld.io.checkpoint import save_checkpoint
    from interworld.io.quant import dequantize, quantize

    w = torch.randn(64, 32, 3) * torch.linspace(0.01, 3, 64)[:, None, None]  # rows of very different scale
    q = quantize({"w": w, "b": torch.randn(64)})
    assert q["w"].dtype == torch.int8 and q["b"].dtype == torch.float16
    back = dequantize(q)["w"]
    step = w.reshape(64, -1).abs().amax(1) / 127
    # half a step, plus the float16 scale's rounding (2^-11 relative) over 127 steps
    assert ((back - w).reshape(64, -1).abs() <= step[:, None] * (0.5 + 127 * 2**-11)).all()

    world = World.from_config(get_preset("tiny"), seed=0)
    parts = {"dit": world.dit, "vae": world.vae, "text": world.text_encoder}
    f32 = save_checkpoint(tmp_path / "f32", world.cfg, parts)
    i8 = save_checkpoint(tmp_path / "i8", world.cfg, parts, int8=True)
    assert (i8 / "model.safetensors").stat().st_size < 0.5 * (f32 / "model.safetensors").stat().st_size
    a, b = World.from_pretrained(str(f32)), World.from_pretrained(str(i8))
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    fa = np.concatenate([a.reset(img, "x", seed=1)] + [a.step(None) for _ in range(3)]).astype(float)
    fb = np.concatenate([b.reset(img, "x", seed=1)] + [b.step(None) for _ in range(3)]).astype(float)
    mse = ((fa - fb) ** 2).mean()
    assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 35  # 8-bit storage changes the video by < 1/50 of a level RMS

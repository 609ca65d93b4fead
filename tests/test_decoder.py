"""The light decoder: trained against the full one with the encoder frozen, it ships in a checkpoint."""

import dataclasses
import json

import numpy as np
import torch

from interworld.config import get_preset
from interworld.data.shards import Shard, write_shard
from interworld.engine.world import World
from interworld.io.checkpoint import load_tensors, save_checkpoint
from interworld.models.motion import MotionModel
from interworld.train.decoder import train_decoder


def _checkpoint_and_shards(tmp_path):
    tiny = get_preset("tiny")
    cfg = tiny.replace(vae=dataclasses.replace(tiny.vae, dec_dim=32))  # wide enough that halving shows
    w = World.from_config(cfg, seed=0)
    # with a motion model, which a decoder run keeps as it keeps the DiT (the loop below checks both)
    ck = save_checkpoint(tmp_path / "ck", cfg, {"dit": w.dit, "vae": w.vae, "text": w.text_encoder,
                                                "motion": MotionModel()})
    r = np.random.default_rng(0)
    (tmp_path / "d").mkdir()
    for i, m in enumerate(["freedoom2:MAP01", "freedoom2:MAP19"]):
        n = 40
        base = r.integers(0, 256, (1, 32, 32, 3))
        write_shard(tmp_path / "d" / f"s{i}.npz", Shard(
            frames=np.clip(base + r.integers(-30, 31, (n, 32, 32, 3)), 0, 255).astype(np.uint8),
            keys=np.zeros((n, 6), np.uint8), mouse=np.zeros((n, 2), np.float32), pose=np.zeros((n, 5), np.float32),
            episode=np.zeros(n, np.int32), frame=np.arange(n, dtype=np.int32), meta={"map": m}))
    return ck, r


def test_light_decoder_keeps_the_latents_and_loads_as_a_world(tmp_path):
    ck, r = _checkpoint_and_shards(tmp_path)
    out = train_decoder(str(ck), str(tmp_path / "d"), str(tmp_path / "light"), width=0.5, steps=30, batch=2,
                        device="cpu", log_every=10)
    a, b = load_tensors(ck), load_tensors(out)
    for k in a:  # the DiT, the text encoder and the whole encoder side are untouched
        if not k.startswith("vae.decoder."):
            assert torch.equal(a[k], b[k]), k
    n_full = sum(v.numel() for k, v in a.items() if k.startswith("vae.decoder."))
    n_light = sum(v.numel() for k, v in b.items() if k.startswith("vae.decoder."))
    assert n_light < 0.4 * n_full  # half the widths: about a quarter of the weights
    meta = json.loads((out / "config.json").read_text())
    assert meta["model"]["vae"]["dec_width_scale"] == 0.5
    assert np.isfinite(meta["decoder"]["val_light_vs_full_psnr"])
    losses = [json.loads(l)["loss"] for l in (out / "log.jsonl").read_text().splitlines() if '"loss"' in l]
    assert losses[-1] < losses[0]
    lw = World.from_pretrained(str(out))
    first = lw.reset((r.random((32, 32, 3)) * 255).astype(np.uint8), "x")
    assert first.shape == (1, 32, 32, 3) and lw.step(None).shape[0] == lw.frames_per_step


def test_full_width_fine_tunes_the_decoder_from_its_own_weights_after_a_history(tmp_path):
    ck, _ = _checkpoint_and_shards(tmp_path)
    a = load_tensors(ck)
    same = load_tensors(train_decoder(str(ck), str(tmp_path / "d"), str(tmp_path / "f0"), width=1.0, steps=0,
                                      latents=2, history=2, device="cpu"))
    assert all(torch.equal(a[k], same[k]) for k in a)  # no step taken: the full decoder as it was
    out = train_decoder(str(ck), str(tmp_path / "d"), str(tmp_path / "f"), width=1.0, steps=8, batch=2, latents=2,
                        history=2, device="cpu", log_every=1)
    b = load_tensors(out)
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("vae.decoder."))
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("vae.decoder."))
    meta = json.loads((out / "config.json").read_text())["decoder"]
    assert meta["width"] == 1.0 and meta["history"] == 2 and np.isfinite(meta["val_light_vs_real_psnr"])


def test_adaptive_weight_balances_the_gradients_at_the_last_layer():
    from interworld.models.discriminator import adaptive_weight

    w = torch.ones(3, requires_grad=True)
    rec = (w * torch.tensor([1.0, 2.0, 2.0])).sum()  # gradient norm 3
    adv = (w * torch.tensor([0.0, 0.0, 0.5])).sum()  # gradient norm 0.5
    assert abs(float(adaptive_weight(rec, adv, w)) - 3 / (0.5 + 1e-4)) < 1e-3


def test_the_discriminator_sees_each_frame_with_the_one_before():
    from interworld.models.discriminator import PatchDiscriminator

    torch.manual_seed(0)
    d = PatchDiscriminator(dim=16)
    v = torch.rand(2, 3, 4, 32, 32) * 2 - 1
    out = d(v)
    assert out.shape == (2 * 3, 1, 4, 4)
    v2 = v.clone()
    v2[:, :, 1] = -v2[:, :, 1]  # frame 1 enters the pairs (1, 0) and (2, 1), not (3, 2)
    out2 = d(v2).view(2, 3, -1)
    diff = (out2 - out.view(2, 3, -1)).abs().amax((0, 2))
    assert diff[0] > 0 and diff[1] > 0 and diff[2] == 0


def test_adversarial_fine_tune_trains_a_discriminator_and_only_the_decoder(tmp_path):
    ck, _ = _checkpoint_and_shards(tmp_path)
    a = load_tensors(ck)
    out = train_decoder(str(ck), str(tmp_path / "d"), str(tmp_path / "g"), width=1.0, steps=40, batch=2, latents=2,
                        history=2, device="cpu", log_every=5, adversarial=0.5, disc_start=10)
    b = load_tensors(out)
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("vae.decoder."))
    assert not any(k.startswith("disc") for k in b)  # the discriminator is a training aid: it does not ship
    rows = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    d = [r["d_loss"] for r in rows if "d_loss" in r]
    adv = [r for r in rows if "adv_weight" in r]
    # 2 is the hinge loss of a discriminator that cannot tell (logits 0): it learns to tell real frames from decoded
    assert len(d) == 8 and min(d) < 1.0
    assert adv and all(r["step"] > 10 and r["adv_weight"] > 0 for r in adv)  # the decoder feels it after disc_start
    meta = json.loads((out / "config.json").read_text())["decoder"]
    assert meta["adversarial"] == 0.5 and meta["val_light_sharpness"] >= 0 and meta["val_real_sharpness"] > 0


def test_a_decoder_run_resumes_with_its_optimizer_and_discriminator(tmp_path):
    ck, _ = _checkpoint_and_shards(tmp_path)
    kw = dict(width=1.0, batch=2, latents=2, history=2, device="cpu", log_every=1, adversarial=0.5, disc_start=2)
    out = train_decoder(str(ck), str(tmp_path / "d"), str(tmp_path / "g"), steps=12, **kw)
    first = load_tensors(out)
    again = load_tensors(train_decoder(str(ck), str(tmp_path / "d"), str(tmp_path / "g"), steps=12, **kw))
    assert all(torch.equal(first[k], again[k]) for k in first)  # at its last step already: nothing changes
    train_decoder(str(ck), str(tmp_path / "d"), str(tmp_path / "g"), steps=16, **kw)
    rows = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert json.loads((out / "state.json").read_text())["step"] == 16
    assert [r["step"] for r in rows if "loss" in r][-4:] == [13, 14, 15, 16]
    d13 = [r["d_loss"] for r in rows if r.get("step") == 13 and "d_loss" in r][0]
    assert d13 < 1.0  # the trained discriminator came back (a fresh one starts near 2)

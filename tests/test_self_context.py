"""Training on the model's own rollout as context (`train world --self-context`): the context is
what the streaming generator makes under each clip's actions, the targets the real latents."""

import dataclasses

import pytest
import torch

import interworld.train.world as world_mod
from interworld.config import get_preset
from interworld.diffusion.flow import add_noise
from interworld.engine.generator import Generator
from interworld.models.dit import WanDiT
from interworld.train.world import WorldBatch, world_loss


class Recorder(torch.nn.Module):
    """Wraps the DiT as DDP does (`.module`) and keeps the inputs of the calls made through it."""

    def __init__(self, m):
        super().__init__()
        self.module, self.calls = m, []

    def forward(self, x, t, ctx, step, plucker=None):
        self.calls.append((x.clone(), t.clone()))
        return self.module(x, t, ctx, step, plucker=plucker)


def _setup(b=2, f=6, seed=0, camera=False):
    cfg = get_preset("tiny").replace(scheme="causal", camera=camera)
    torch.manual_seed(seed)
    dit = WanDiT(cfg).eval()
    for blk in dit.blocks:  # weight on the zero-initialised action path: the actions must matter
        if blk.action_model is not None:
            for p in blk.action_model.parameters():
                torch.nn.init.normal_(p, std=0.1)
    for name, p in dit.named_parameters():  # and on the camera's, which starts at zero too
        if ".cam_" in name:
            torch.nn.init.normal_(p, std=0.2)
    g = torch.Generator().manual_seed(seed)
    c, _, h, w = cfg.latent_shape(1)
    z = torch.randn(b, c, f, h, w, generator=g)
    n_video = 1 + (f - 1) * cfg.vae.temporal
    keys = (torch.rand(b, n_video, 6, generator=g) > 0.5).float()
    mouse = torch.randn(b, n_video, 2, generator=g) * 20
    batch = WorldBatch(None, keys, mouse, torch.zeros(b, n_video, 5), ["a"] * b, latents=z,
                       size=(cfg.height, cfg.width))
    return cfg, dit, z, keys, mouse, batch


@pytest.mark.parametrize("n,foreign", [(1, False), (3, False), (1, True)])
def test_the_context_is_the_generators_rollout_and_the_targets_stay_real(monkeypatch, n, foreign):
    cfg, dit, z, keys, mouse, batch = _setup()
    seen = {}

    def spy_loss(v, target, noise, mask=None):
        seen.update(target=target, noise=noise)
        return ((v - (noise - target)) ** 2).mean()

    monkeypatch.setattr(world_mod, "flow_matching_loss", spy_loss)
    rec = Recorder(dit)
    with torch.no_grad():
        world_loss(rec, None, None, batch, cfg, "causal", "cpu", self_context=n, seed=7, foreign_sink=foreign)
    (x, t), = rec.calls  # one training pass through the wrapper; the rollout used the network inside

    # the reference: the streaming generator from the clip's first latent, chunk c on video frames
    # 1 + c * per ... (c + 1) * per of each clip's own actions
    ctx = torch.zeros(z.shape[0], 1, cfg.text_dim)
    gen = Generator(dit, cfg, ctx, scheme="causal", seed=7, memory=False)
    gen.start(z[:, :, :1], per_item=True)
    per = gen.frames_for_next()
    with torch.no_grad():
        ref = torch.cat([gen.next_chunk(keys[:, 1 + c * per:1 + (c + 1) * per],
                                        mouse[:, 1 + c * per:1 + (c + 1) * per]) for c in range(n)], 2)
    assert not torch.allclose(ref, z[:, :, 1:n + 1], atol=0.1)  # generated, not the real latents
    assert not torch.allclose(ref[0], ref[1], atol=1e-3)  # each clip under its own actions and noise
    # the real start image; with foreign_sink the next clip's, while the rollout is from the clip's own
    assert torch.equal(x[:, :, 0], z[[1, 0], :, 0] if foreign else z[:, :, 0])
    assert torch.allclose(x[:, :, 1:n + 1], ref, atol=1e-5)  # clean (t = 0): the rollout as it is
    assert (t[:, :n + 1] == 0).all() and (t[:, n + 1:] > 0).all()
    assert (t[:, n + 1:] == t[:, n + 1:n + 2]).all()  # one level per clip after the prefix, as streaming
    # the targets are the real latents, noised for the frames after the prefix
    assert torch.equal(seen["target"], z)
    want = add_noise(z, seen["noise"], t)[:, :, n + 1:]
    assert torch.allclose(x[:, :, n + 1:], want, atol=1e-6)


def test_the_self_context_rollout_follows_the_clips_own_poses():
    # the rollout under poses integrated from the actions was then trained on as if made under the
    # engine's, which the rest of the clip's conditioning follows (run 28)
    cfg, dit, z, keys, mouse, batch = _setup(camera=True)
    g = torch.Generator().manual_seed(3)
    steps = torch.randn(z.shape[0], keys.shape[1], 5, generator=g) * torch.tensor([6.0, 6.0, 0.0, 5.0, 1.0])
    batch.pose = steps.cumsum(1)  # a walk that no fixed step per key gives
    rec = Recorder(dit)
    with torch.no_grad():
        world_loss(rec, None, None, batch, cfg, "causal", "cpu", self_context=1, seed=7)
    (x, _), = rec.calls

    def reference(poses):
        gen = Generator(dit, cfg, torch.zeros(z.shape[0], 1, cfg.text_dim), scheme="causal", seed=7, memory=False)
        gen.start(z[:, :, :1], pose=None if poses is None else poses[:, 0], per_item=True)
        per = gen.frames_for_next()
        with torch.no_grad():
            return gen.next_chunk(keys[:, 1:1 + per], mouse[:, 1:1 + per],
                                  None if poses is None else poses[:, 1:1 + per])

    assert torch.allclose(x[:, :, 1:2], reference(batch.pose), atol=1e-5)
    assert not torch.allclose(x[:, :, 1:2], reference(None), atol=1e-3)


def test_self_context_is_checked_before_training():
    from interworld.train.world import self_rollout_context

    cfg, dit, z, keys, mouse, _ = _setup(f=4)
    ctx = torch.zeros(2, 1, cfg.text_dim)
    for n in (0, 4):  # nothing to generate; no target left
        with pytest.raises(ValueError, match="self-generated latents"):
            self_rollout_context(dit, cfg, ctx, z, keys, mouse, n, seed=0)
    _, _, _, _, _, batch = _setup(f=4)
    with pytest.raises(ValueError, match="causal"):
        world_loss(dit, None, None, batch, cfg.replace(scheme="segment"), "segment", "cpu", self_context=1)
    _, _, _, _, _, one = _setup(b=1, f=4)
    with pytest.raises(ValueError, match="2 clips"):  # one clip has no other sink to borrow
        world_loss(dit, None, None, one, cfg, "causal", "cpu", self_context=1, foreign_sink=True)


def test_teacher_forcing_can_show_the_dit_another_clips_sink():
    """`teacher_forced_prediction(sink_from=...)` (the sink test of docs/TRAINING.md, run 19): the DiT
    sees another clip's first latent and nothing else of it."""
    from interworld.engine.world import World
    from interworld.train.world import teacher_forced_prediction

    w = World.from_config(get_preset("tiny"))
    with torch.no_grad():  # off the zero-initialised output head, so the context shows in the prediction
        for p in w.dit.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.3)
    cfg, tr = w.cfg, w.cfg.vae.temporal
    n = 1 + 3 * tr  # 4 latents: 2 of context, 2 predicted
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, n, cfg.height, cfg.width, 3), generator=g, dtype=torch.uint8)
    frames[1, 0] = frames[0, 0]  # clips 0 and 1 share their start frame, and only it
    batch = WorldBatch(frames, torch.zeros(3, n, 6), torch.randn(3, n, 2, generator=g), torch.zeros(3, n, 5),
                       ["a"] * 3)

    def predict(sink_from=None):
        return teacher_forced_prediction(w.dit, w.vae, w.text_encoder, batch, cfg, "causal", "cpu",
                                         context_latents=2, steps=2, sink_from=sink_from)[0]

    base = predict()
    # the same start frame is the same sink: had a later latent of clip 1 come along, clip 0 would change
    assert torch.allclose(predict(torch.tensor([1, 0, 2])), base, atol=1e-6)
    swapped = predict(torch.tensor([2, 1, 0]))
    assert torch.allclose(swapped[1], base[1], atol=1e-6)
    for i in (0, 2):
        assert (swapped[i] - base[i]).abs().max() > 1e-3  # 0.0095 here


def test_teacher_forced_prediction_keeps_no_graph():
    """The sampler's steps must not chain autograd graphs through trainable weights: `eval --steps 30`
    ran out of 24 GB that way (eval and training's validation call it outside no_grad)."""
    from interworld.engine.world import World
    from interworld.train.world import teacher_forced_prediction

    w = World.from_config(get_preset("tiny"))
    assert any(p.requires_grad for p in w.dit.parameters())
    cfg, n = w.cfg, 1 + 3 * w.cfg.vae.temporal
    frames = torch.randint(0, 256, (1, n, cfg.height, cfg.width, 3), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    batch = WorldBatch(frames, torch.zeros(1, n, 6), torch.zeros(1, n, 2), torch.zeros(1, n, 5), ["a"])
    pred, real = teacher_forced_prediction(w.dit, w.vae, w.text_encoder, batch, cfg, "causal", "cpu",
                                           context_latents=2, steps=3)
    assert pred.shape == real.shape and not pred.requires_grad and pred.grad_fn is None


def test_teacher_forced_prediction_of_the_x0_sampler_depends_on_its_seed_alone():
    # the re-noising of the distilled students' sampler drew from torch's global generator
    from interworld.engine.world import World
    from interworld.train.world import teacher_forced_prediction

    cfg = dataclasses.replace(get_preset("tiny"), sampler="x0")
    w = World.from_config(cfg, seed=0)
    n = 1 + 3 * cfg.vae.temporal
    frames = torch.randint(0, 256, (1, n, cfg.height, cfg.width, 3), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    batch = WorldBatch(frames, torch.zeros(1, n, 6), torch.zeros(1, n, 2), torch.zeros(1, n, 5), ["a"])
    preds = []
    for seed, global_seed in [(5, 0), (5, 1), (6, 0)]:
        torch.manual_seed(global_seed)
        preds.append(teacher_forced_prediction(w.dit, w.vae, w.text_encoder, batch, cfg, "causal", "cpu",
                                               context_latents=2, steps=3, seed=seed)[0])
    assert torch.equal(preds[0], preds[1]) and not torch.equal(preds[0], preds[2])

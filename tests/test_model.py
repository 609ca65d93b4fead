"""The DiT at every scale: sizes, zero-initialised additions, RoPE, camera."""

import pytest
import torch

from interworld.config import ModelConfig, get_preset, latent_frames, video_frames
from interworld.models.camera import integrate_poses, latent_plucker, plucker_rays
from interworld.models.dit import Step, WanDiT, build_dit, count_params
from interworld.models.rope import head_thetas, ray_freqs, rope_3d, rope_rays, split_dims
from interworld.config import Kinematics


def test_full_presets_on_meta_device():
    """The published sizes: Wan2.2-TI2V-5B 5.0B, Matrix-Game-3.0 about 6.47B, two 14B experts."""
    sizes = {}
    for name in ("ti2v-5b", "mg3-5b", "a14b-moe"):
        with torch.device("meta"):
            sizes[name] = count_params(build_dit(get_preset(name)))
    assert 4.95e9 < sizes["ti2v-5b"] < 5.05e9
    assert 6.44e9 < sizes["mg3-5b"] < 6.50e9
    assert 27.5e9 < sizes["a14b-moe"] < 29.5e9


def test_mg3_layout_names_and_shapes():
    with torch.device("meta"):
        m = build_dit(get_preset("mg3-5b"))
    sd = m.state_dict()
    assert sd["patch_embedding.weight"].shape == (3072, 48, 1, 2, 2)
    assert sd["patch_embedding_wancamctrl.weight"].shape == (3072, 6144)
    assert sd["blocks.0.self_attn.q.weight"].shape == (3072, 3072)
    assert sd["blocks.0.self_attn.norm_q.weight"].shape == (3072,)
    assert sd["blocks.0.modulation"].shape == (1, 6, 3072)
    assert sd["blocks.0.ffn.0.weight"].shape == (14336, 3072)
    assert sd["blocks.0.action_model.keyboard_embed.0.weight"].shape == (128, 6)
    assert sd["blocks.0.action_model.keyboard_attn_kv.weight"].shape == (2048, 128 * 12)
    assert sd["blocks.0.action_model.mouse_mlp.0.weight"].shape == (1024, 2 * 12 + 3072)
    assert sd["blocks.0.cam_scale_layer.weight"].shape == (3072, 3072)
    assert "blocks.14.action_model.t_qkv.weight" in sd and "blocks.15.action_model.t_qkv.weight" not in sd
    assert sd["head.head.weight"].shape == (48 * 4, 3072)
    assert sd["time_projection.1.weight"].shape == (6 * 3072, 3072)
    with torch.device("meta"):
        moe = build_dit(get_preset("a14b-moe"))
    names = moe.state_dict().keys()
    assert any(k.startswith("high_noise_model.blocks.0.action_model.") for k in names)
    assert not any(k.startswith("low_noise_model.") and ".action_model." in k for k in names)


def test_rope_split_and_head_perturbation():
    assert tuple(2 * c for c in split_dims(128)) == (44, 42, 42)
    th = head_thetas(24, 10000.0, 0.8)
    assert th[0] == pytest.approx(2000.0) and th[-1] == pytest.approx(18000.0)
    cos, sin = rope_3d(torch.tensor([0, 7]), 2, 3, 128, 24, 10000.0, 0.8)
    assert cos.shape == (2 * 2 * 3, 24, 64)
    # frame index 0, row 0, col 0 is the identity rotation
    assert torch.allclose(cos[0], torch.ones(24, 64)) and torch.allclose(sin[0], torch.zeros(24, 64))
    # different heads rotate the same temporal position differently (no aliasing across heads)
    assert not torch.allclose(cos[6, 0, :22], cos[6, 1, :22])


def test_ray_rope_places_tokens_by_where_they_look():
    """rope_rays: the column axis turns with the token's azimuth in the world, so a camera turned by
    one token's angle gives a token the rotation its neighbour had; the time axis is rope_3d's, and so
    is everything with the camera at rest facing yaw 0, pitch 0 except the nearly linear atan."""
    h, w, d, n, fov = 4, 6, 64, 2, 90.0
    ct, ch, cw = split_dims(d)
    focal = 0.5 / torch.tan(torch.deg2rad(torch.tensor(fov / 2))).double()
    u = (torch.arange(w, dtype=torch.float64) + 0.5 - w / 2) / w / focal
    turn = float(torch.rad2deg(torch.atan(u[3]) - torch.atan(u[2])))  # column 3's ray, seen by column 2
    view = torch.tensor([[[10.0, 0.0], [10.0 - turn, 0.0]]])
    cos, sin = rope_rays(torch.tensor([0, 1]), view, h, w, d, n, 10000.0, 0.8, fov)
    assert cos.shape == (1, 2 * h * w, n, d // 2)
    tok = lambda f, r, c: (f * h + r) * w + c  # noqa: E731
    axis = slice(ct + ch, None)  # the column (azimuth) pairs
    assert torch.allclose(cos[0, tok(1, 1, 2), :, axis], cos[0, tok(0, 1, 3), :, axis], atol=1e-6)
    assert torch.allclose(sin[0, tok(1, 1, 2), :, axis], sin[0, tok(0, 1, 3), :, axis], atol=1e-6)
    assert not torch.allclose(cos[0, tok(1, 1, 3), :, axis], cos[0, tok(0, 1, 3), :, axis], atol=1e-3)
    c3, _ = rope_3d(torch.tensor([0, 1]), h, w, d, n, 10000.0, 0.8)
    assert torch.equal(cos[0, :, :, :ct], c3[:, :, :ct])  # time as before
    # whole turns come back to the same rotation: the frequencies are whole numbers
    assert torch.equal(ray_freqs(cw), ray_freqs(cw).round()) and ray_freqs(cw).min() >= 1
    c360, s360 = rope_rays(torch.tensor([0, 1]), view + torch.tensor([360.0, 0.0]), h, w, d, n, 10000.0, 0.8, fov)
    assert torch.allclose(c360, cos, atol=1e-5) and torch.allclose(s360, sin, atol=1e-5)


def test_ray_rope_dit_sees_only_relative_turns():
    """A DiT with ray_rope gives the same output when every frame's yaw turns by the same angle (the
    world turned under the camera), and another when one frame turns against the others; without
    Step.view it refuses to guess."""
    cfg = get_preset("tiny").replace(ray_rope=True, camera=False, action=None)
    torch.manual_seed(0)
    m = WanDiT(cfg).eval()
    inp = _inputs(get_preset("tiny"))
    view = torch.tensor([[[0.0, 0.0], [7.0, 2.0], [20.0, -3.0]]])
    one_turned = view.clone()
    one_turned[0, 2, 0] += 50.0

    def run(v):
        with torch.no_grad():
            return m(inp["x"], inp["t"], inp["ctx"], Step(frame_pos=torch.arange(3), view=v))[0]

    base = run(view)
    assert torch.allclose(run(view + torch.tensor([33.0, 0.0])), base, atol=1e-4)
    assert not torch.allclose(run(one_turned), base, atol=1e-3)
    with pytest.raises(ValueError, match="ray_rope"):
        m(inp["x"], inp["t"], inp["ctx"], Step(frame_pos=torch.arange(3)))


def _inputs(cfg, f=3, b=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    c, _, h, w = cfg.latent_shape(1)
    win = cfg.action.windows * cfg.vae.temporal
    return dict(
        x=torch.randn(b, c, f, h, w, generator=g), t=torch.rand(b, f, generator=g) * 1000,
        ctx=torch.randn(b, 5, cfg.text_dim, generator=g),
        kb=(torch.rand(b, f, win, 6, generator=g) > 0.5).float(), ms=torch.randn(b, f, win, 2, generator=g),
        pl=torch.randn(b, f, cfg.camera_in, h, w, generator=g))


def test_fresh_action_and_camera_paths_are_identity():
    cfg = get_preset("tiny")
    torch.manual_seed(0)
    full = WanDiT(cfg)
    bare = WanDiT(cfg.replace(action=None, camera=False))
    missing, unexpected = bare.load_state_dict(full.state_dict(), strict=False)
    assert not missing  # every base weight is shared
    inp = _inputs(cfg)
    step = Step(frame_pos=torch.arange(3), keyboard=inp["kb"], mouse=inp["ms"])
    a, _ = full(inp["x"], inp["t"], inp["ctx"], step, plucker=inp["pl"])
    b, _ = bare(inp["x"], inp["t"], inp["ctx"], Step(frame_pos=torch.arange(3)))
    assert torch.equal(a, b)
    # ... and once trained (non-zero outputs) they do change the prediction
    for blk in full.blocks:
        torch.nn.init.normal_(blk.cam_scale_layer.weight, std=0.1)
        if blk.action_model is not None:
            torch.nn.init.normal_(blk.action_model.proj_keyboard.weight, std=0.1)
    c, _ = full(inp["x"], inp["t"], inp["ctx"], Step(frame_pos=torch.arange(3), keyboard=inp["kb"], mouse=inp["ms"]),
                plucker=inp["pl"])
    assert not torch.allclose(a, c)


def test_memory_changes_output_only_through_attention():
    """Memory frames prepended to the sequence, with attention to them masked, leave the
    prediction of the other frames exactly as without them."""
    cfg = get_preset("tiny")
    torch.manual_seed(1)
    m = WanDiT(cfg)
    for blk in m.blocks:  # non-zero camera and action paths, as in a trained model
        torch.nn.init.normal_(blk.cam_shift_layer.weight, std=0.1)
        if blk.action_model is not None:
            torch.nn.init.normal_(blk.action_model.proj_mouse.weight, std=0.1)
    mem, rest = _inputs(cfg, f=2, seed=2), _inputs(cfg, f=3, seed=3)
    s = cfg.tokens_per_frame()
    pos_rest, pos_mem = torch.tensor([7, 8, 9]), torch.tensor([1, 4])
    base, _ = m(rest["x"], rest["t"], rest["ctx"], Step(frame_pos=pos_rest, keyboard=rest["kb"], mouse=rest["ms"]),
                plucker=rest["pl"])
    x = torch.cat([mem["x"], rest["x"]], 2)
    t = torch.cat([torch.zeros(1, 2), rest["t"]], 1)
    pl = torch.cat([mem["pl"], rest["pl"]], 1)
    fm = torch.ones(5, 5, dtype=torch.bool)
    fm[2:, :2] = False  # the other frames may not look at memory
    mask = fm.repeat_interleave(s, 0).repeat_interleave(s, 1)
    step = Step(frame_pos=torch.cat([pos_mem, pos_rest]), mask=mask, keyboard=rest["kb"], mouse=rest["ms"], action_from=2)
    masked, _ = m(x, t, rest["ctx"], step, plucker=pl)
    assert torch.allclose(masked[:, :, 2:], base, atol=1e-5)
    step.mask = None
    seen, _ = m(x, t, rest["ctx"], step, plucker=pl)
    assert (seen[:, :, 2:] - base).abs().max() > 1e-4  # with attention, memory does matter


def test_forward_is_fast_and_shaped_on_cpu():
    cfg = get_preset("tiny")
    m = WanDiT(cfg)
    inp = _inputs(cfg, f=3)
    out, kvs = m(inp["x"], inp["t"], inp["ctx"], Step(frame_pos=torch.arange(3), keyboard=inp["kb"], mouse=inp["ms"]),
                 plucker=inp["pl"])
    assert out.shape == inp["x"].shape and len(kvs) == cfg.num_layers
    assert torch.isfinite(out).all()
    # a denoising pass keeps no keys/values (55 GB at a14b-moe size) and computes the same output
    lean, none = m(inp["x"], inp["t"], inp["ctx"], Step(frame_pos=torch.arange(3), keyboard=inp["kb"],
                                                       mouse=inp["ms"], keep_kv=False), plucker=inp["pl"])
    assert none is None and torch.equal(lean, out)


def test_config_round_trip_and_frame_arithmetic():
    for name in ("tiny", "small", "mg3-5b", "a14b-moe"):
        cfg = get_preset(name)
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert latent_frames(57) == 15 and video_frames(15) == 57 and latent_frames(41) == 11
    with pytest.raises(ValueError):
        latent_frames(40)
    mg3 = get_preset("mg3-5b")
    assert mg3.tokens_per_frame() == 880 and mg3.camera_in * 4 == 6144
    assert (mg3.memory_latents + mg3.past_latents + mg3.new_latents) * 880 == 16720


def test_kinematics_and_plucker():
    kin = Kinematics()
    keys = torch.zeros(10, 6)
    keys[:, 0] = 1  # W for 10 frames
    poses = integrate_poses(torch.zeros(5), keys, torch.zeros(10, 2), kin)
    assert poses[-1, 0] == pytest.approx(10 * kin.move_step) and poses[-1, 1] == pytest.approx(0)
    turn = integrate_poses(torch.zeros(5), torch.zeros(9, 6), torch.tensor([[10.0, 0.0]] * 9), kin)
    assert turn[-1, 3] == pytest.approx(360 - 90)  # positive dx turns right: yaw (counter-clockwise) falls
    assert torch.allclose(turn[:, :3], torch.zeros(9, 3))
    # rays of the identity camera point through the pixels, with zero moment
    rays = plucker_rays(torch.zeros(1, 5), torch.zeros(1, 5), 4, 4, 90.0)
    assert torch.allclose(rays[:, :3], torch.zeros(1, 3, 4, 4), atol=1e-6)
    d = rays[0, 3:]
    assert torch.allclose(d.norm(dim=0), torch.ones(4, 4), atol=1e-6) and (d[2] > 0).all()
    # a camera turned 90 degrees left sees the reference's left-pointing rays straight ahead
    rel = plucker_rays(torch.tensor([[0, 0, 0, 90.0, 0]]), torch.zeros(1, 5), 2, 2, 90.0)
    centre_dir = rel[0, 3:].mean(dim=(1, 2))
    assert centre_dir[0] / centre_dir.norm() < -0.99  # OpenCV x is right, so "left" is negative x
    cfg = get_preset("tiny")
    pl = latent_plucker(torch.zeros(2, 5), torch.zeros(2, 5), 32, 32, cfg.vae.spatial, kin)
    assert pl.shape == (2, cfg.camera_in, 32 // cfg.vae.spatial, 32 // cfg.vae.spatial)
    assert torch.isfinite(pl).all()


def test_action_rope_turns_only_the_configured_channels():
    import dataclasses

    from interworld.config import ActionConfig
    from interworld.models.action import ActionModule

    torch.manual_seed(0)
    base = ActionConfig(num_blocks=1, hidden=8, keyboard_hidden=16, mouse_hidden=16, heads=2)  # head dim 8
    x, kb, ms = torch.randn(1, 5, 3, 32), torch.rand(1, 5, 12, 6), torch.randn(1, 5, 12, 2)
    pos = torch.arange(5)

    def out(rope_dims):
        torch.manual_seed(1)
        m = ActionModule(dataclasses.replace(base, rope_dims=rope_dims), dim=32, temporal=4)
        for p in (m.proj_mouse.weight, m.proj_keyboard.weight):
            torch.nn.init.normal_(p, std=0.1)
        return m(x, kb, ms, pos, None)

    assert torch.allclose(out(None), out(8))  # all 8 channels of the head: the same rotation
    partial = out(2)
    assert not torch.allclose(partial, out(8), atol=1e-4)  # fewer channels turn: another function
    assert get_preset("mg3-5b").action.rope_dims == 8  # Matrix-Game: rope_dim_list [8, 28, 28] on a (t, 1, 1) grid

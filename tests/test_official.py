"""The official checkpoints: Wan2.2 (native, diffusers, A14B experts) and Matrix-Game-3.0.

No official weights can be downloaded here, so the tests write small checkpoints in each
official layout (the real key names, dimensions shrunk), load them, and check that every
tensor lands where it should and that the loaded model computes what a model built directly
from the same tensors computes. The full-size key sets are checked on the meta device
against lists written down from the public code (tests/data/official_keys_*.txt, made by
tests/data/make_official_keys.py, which names its sources).

The writers below spell the official names their own way (forward, as the official and
diffusers code name things), independently of the loader's maps in io/official_keys.py.
"""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from interworld.config import ActionConfig, VAEConfig, get_preset
from interworld.io import official as O
from interworld.io import official_keys as K
from interworld.io.checkpoint import CheckpointError, load_tensors, read_config
from interworld.models.dit import Step, WanDiT, build_dit
from interworld.models.vae import CausalVAE

from helpers import SafeOpenSpy, tiny_tokenizer

DATA = Path(__file__).parent / "data"

# a Wan2.2-structured VAE, shrunk: 16x spatial, 4x temporal, as the real one
TINY_VAE = VAEConfig(arch="wan2.2", z_dim=4, dim=8, dec_dim=8, dim_mult=(1, 2, 2, 2), num_res_blocks=1,
                     temporal_down=(False, True, True), patch=2)
ACTION = ActionConfig(num_blocks=1, hidden=8, keyboard_hidden=16, mouse_hidden=16, heads=2, rope_dims=8)


def base_cfg(text_len=8):
    """Wan2.2-TI2V in miniature: no actions, no camera, plain RoPE."""
    return get_preset("tiny").replace(action=None, camera=False, rope_sigma=0.0, cross_attn_residual_from_norm=False,
                                      vae=TINY_VAE, text_encoder="umt5-xxl", text_len=text_len)


def mg3_cfg():
    return base_cfg().replace(action=ACTION, camera=True, rope_sigma=0.8, cross_attn_residual_from_norm=True)


def randomised(module, seed):
    """Every tensor random (zero-initialised projections too), so misplaced ones show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point() and not name.startswith("latents_"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.2 + (1.0 if name.endswith(("gamma", "norm.weight")) else 0))
    return module.eval()


def wan_config_json(cfg, mg3=False):
    c = {"_class_name": "WanModel", "_diffusers_version": "0.33.0", "model_type": "ti2v", "dim": cfg.dim,
         "ffn_dim": cfg.ffn_dim, "freq_dim": cfg.freq_dim, "in_dim": cfg.in_dim, "out_dim": cfg.in_dim,
         "num_heads": cfg.num_heads, "num_layers": cfg.num_layers, "text_len": cfg.text_len, "eps": cfg.eps,
         "text_dim": cfg.text_dim}  # text_dim is not saved by the real WanModel (4096); shrunk here
    if mg3:
        a = cfg.action
        c.update(use_memory=True, sigma_theta=cfg.rope_sigma, use_text_crossattn=True, action_config={
            "blocks": list(range(a.num_blocks)), "enable_keyboard": True, "enable_mouse": True, "heads_num": a.heads,
            "hidden_size": a.hidden, "img_hidden_size": cfg.dim, "keyboard_dim_in": a.keyboard_dim,
            "keyboard_hidden_dim": a.keyboard_hidden, "mouse_dim_in": a.mouse_dim, "mouse_hidden_dim": a.mouse_hidden,
            "mouse_qk_dim_list": [8, 28, 28], "patch_size": [1, 2, 2], "qk_norm": True, "qkv_bias": False,
            "rope_dim_list": [8, 28, 28], "rope_theta": a.rope_theta, "vae_time_compression_ratio": 4,
            "windows_size": a.windows})
    return c


def diffusers_config_json(cfg):
    return {"_class_name": "WanTransformer3DModel", "_diffusers_version": "0.35.0", "added_kv_proj_dim": None,
            "attention_head_dim": cfg.head_dim, "cross_attn_norm": True, "eps": cfg.eps, "ffn_dim": cfg.ffn_dim,
            "freq_dim": cfg.freq_dim, "image_dim": None, "in_channels": cfg.in_dim, "num_attention_heads": cfg.num_heads,
            "num_layers": cfg.num_layers, "out_channels": cfg.in_dim, "patch_size": [1, 2, 2],
            "pos_embed_seq_len": None, "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 1024,
            "text_dim": cfg.text_dim}


# ------------------------------------------------------------------ official names, spelled forward
DIFFUSERS_RENAMES = [  # scripts/convert_wan_to_diffusers.py applies these substring renames in order
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"), ("head.modulation", "scale_shift_table"),
    ("head.head", "proj_out"), ("modulation", "scale_shift_table"), ("ffn.0", "ffn.net.0.proj"),
    ("ffn.2", "ffn.net.2"), ("norm2", "norm__placeholder"), ("norm3", "norm2"), ("norm__placeholder", "norm3"),
    ("self_attn.q", "attn1.to_q"), ("self_attn.k", "attn1.to_k"), ("self_attn.v", "attn1.to_v"),
    ("self_attn.o", "attn1.to_out.0"), ("self_attn.norm_q", "attn1.norm_q"), ("self_attn.norm_k", "attn1.norm_k"),
    ("cross_attn.q", "attn2.to_q"), ("cross_attn.k", "attn2.to_k"), ("cross_attn.v", "attn2.to_v"),
    ("cross_attn.o", "attn2.to_out.0"), ("cross_attn.norm_q", "attn2.norm_q"), ("cross_attn.norm_k", "attn2.norm_k"),
]


def to_diffusers_dit(native: str) -> str:
    for a, b in DIFFUSERS_RENAMES:
        native = native.replace(a, b)
    return native


def to_native_vae(ours: str) -> str:
    """interworld wan2.2 VAE name -> Wan's Sequential-indexed name."""
    for a, b in (("norm1", "residual.0"), ("conv1", "residual.2"), ("norm2", "residual.3"), ("conv2", "residual.6"),
                 ("resample", "resample.1")):
        ours = re.sub(rf"(?<=\d)\.{a}\.", f".{b}.", ours)  # layers inside numbered blocks only
    return re.sub(r"^(encoder|decoder)\.head\.1\.", r"\1.head.2.", ours)


def to_diffusers_vae(native: str, n_res: int) -> str:
    """Wan's VAE name -> AutoencoderKLWan's, as convert_vae_22 renames them."""
    tails = {"residual.0": "norm1", "residual.2": "conv1", "residual.3": "norm2", "residual.6": "conv2",
             "shortcut": "conv_shortcut"}
    top = {"conv1.": "quant_conv.", "conv2.": "post_quant_conv."}
    for a, b in top.items():
        if native.startswith(a):
            return b + native[len(a):]
    part, rest = native.split(".", 1)
    for a, b in {"conv1.": "conv_in.", "head.0.": "norm_out.", "head.2.": "conv_out.", "middle.1.": "mid_block.attentions.0."}.items():
        if rest.startswith(a):
            return f"{part}.{b}{rest[len(a):]}"
    m = re.match(r"middle\.([02])\.(residual\.\d|shortcut)\.(.*)", rest)
    if m:
        return f"{part}.mid_block.resnets.{int(m.group(1)) // 2}.{tails[m.group(2)]}.{m.group(3)}"
    m = re.match(r"(down|up)samples\.(\d+)\.(?:down|up)samples\.(\d+)\.(.*)", rest)
    kind = m.group(1)
    if int(m.group(3)) == (n_res if kind == "down" else n_res + 1):
        return f"{part}.{kind}_blocks.{m.group(2)}.{kind}sampler.{m.group(4)}"
    t = re.match(r"(residual\.\d|shortcut)\.(.*)", m.group(4))
    return f"{part}.{kind}_blocks.{m.group(2)}.resnets.{m.group(3)}.{tails[t.group(1)]}.{t.group(2)}"


def native_vae_tensors(vae) -> dict:
    out = {}
    for k, v in vae.state_dict().items():
        if k.startswith("latents_"):
            continue  # Wan2.2_VAE.pth does not carry the statistics
        n = to_native_vae(k)
        out[n] = v.reshape(v.shape[:2]) [..., None, None] if n.endswith("middle.1.norm.gamma") else v.clone()
    return out


def write_shards(folder: Path, tensors: dict, n: int, stem="diffusion_pytorch_model"):
    folder.mkdir(parents=True, exist_ok=True)
    keys = list(tensors)
    if n == 1:
        save_file({k: tensors[k].contiguous() for k in keys}, str(folder / f"{stem}.safetensors"))
        return
    per = math.ceil(len(keys) / n)
    wmap = {}
    for i in range(n):
        name = f"{stem}-{i + 1:05d}-of-{n:05d}.safetensors"
        part = keys[i * per:(i + 1) * per]
        save_file({k: tensors[k].contiguous() for k in part}, str(folder / name))
        wmap.update({k: name for k in part})
    (folder / f"{stem}.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wmap}))


def read_keys(name):
    out = {}
    for line in (DATA / name).read_text().splitlines():
        if line and not line.startswith("#"):
            k, s = line.split("\t")
            out[k] = tuple(int(x) for x in s.split(","))
    return out


def inputs(cfg, f=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    c, h, w = cfg.in_dim, 2, 2
    return dict(x=torch.randn(1, c, f, h, w, generator=g), t=torch.tensor([[0.0, 400.0, 900.0][:f]]),
                ctx=torch.randn(1, 5, cfg.text_dim, generator=g),
                pl=torch.randn(1, f, cfg.camera_in, h, w, generator=g),
                kb=(torch.rand(1, f, 12, 6, generator=g) > 0.5).float(), ms=torch.randn(1, f, 12, 2, generator=g))


def run_dit(dit, cfg, inp, actions=True):
    f = inp["x"].shape[2]
    step = Step(frame_pos=torch.arange(f), keyboard=inp["kb"] if actions else None, mouse=inp["ms"] if actions else None)
    with torch.no_grad():
        return dit(inp["x"], inp["t"], inp["ctx"], step, plucker=inp["pl"] if cfg.camera else None)[0]


# ------------------------------------------------------------------ full size, on the meta device
def test_full_key_sets_match_the_official_lists():
    """Names and shapes of the full mg3-5b / ti2v-5b models against the official key lists."""
    def check(listing, module, key_map):
        ref = read_keys(listing)
        want = {k: tuple(v.shape) for k, v in module.state_dict().items() if not k.startswith("latents_")}
        mapped = {key_map(k): s for k, s in ref.items()}
        assert len(mapped) == len(ref), f"{listing}: two official keys map to one"
        assert set(mapped) == set(want), (listing, sorted(set(mapped) ^ set(want))[:6])
        bad = [k for k in want if not O._fits(mapped[k], want[k], k)]
        assert not bad, (listing, bad[:6])
        return ref

    with torch.device("meta"):
        mg3, ti2v = build_dit(get_preset("mg3-5b")), build_dit(get_preset("ti2v-5b"))
        vae = CausalVAE(get_preset("mg3-5b").vae)
    ref = check("official_keys_mg3-5b.txt", mg3, K.dit_native)
    assert sum(math.prod(s) for s in ref.values()) == sum(p.numel() for p in mg3.parameters())  # 6.47B
    native = check("official_keys_ti2v-5b.txt", ti2v, K.dit_native)
    diff = check("official_keys_ti2v-5b_diffusers.txt", ti2v, K.dit_diffusers)
    assert {to_diffusers_dit(k): s for k, s in native.items()} == diff  # the writers below spell diffusers right
    vnative = check("official_keys_wan2.2_vae.txt", vae, K.vae_native)
    vdiff = check("official_keys_wan2.2_vae_diffusers.txt", vae, K.vae_diffusers)
    assert {to_diffusers_vae(k, 2): s for k, s in vnative.items()} == vdiff
    assert {to_native_vae(k) for k in vae.state_dict() if not k.startswith("latents_")} == set(vnative)
    assert O.vae_config_from_keys(vnative) == get_preset("mg3-5b").vae  # the .pth's shapes give the preset
    # Wan's umT5-XXL onto transformers' UMT5 encoder
    transformers = pytest.importorskip("transformers")
    t5 = read_keys("official_keys_umt5-xxl.txt")
    tcfg = transformers.UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                                   feed_forward_proj="gated-gelu")
    with torch.device("meta"):
        enc = transformers.UMT5EncoderModel(tcfg)
    want = {k: tuple(v.shape) for k, v in enc.state_dict().items() if k != "encoder.embed_tokens.weight"}
    assert {K.t5_native(k): s for k, s in t5.items()} == want


# ------------------------------------------------------------------ the Wan2.2 VAE layout
def test_wan22_vae_layout_streams_and_stays_causal():
    """The Wan2.2-structured VAE keeps interworld's guarantees: streaming decode equals the
    whole decode (the first-frame rule and the DupUp shortcuts included), and it is causal."""
    vae = randomised(CausalVAE(TINY_VAE), 8)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 1 + 4 * 3, 32, 48, generator=g) * 2 - 1
    y = x.clone()
    y[:, :, -4:] = 0  # only the frames of the last latent
    with torch.no_grad():
        zx, zy = vae.encode(x), vae.encode(y)
        assert zx.shape == (1, 4, 4, 2, 3)
        assert torch.equal(zx[:, :, :3], zy[:, :, :3]) and not torch.allclose(zx[:, :, 3], zy[:, :, 3])
        whole = vae.decode(zx)
        dec = vae.stream_decoder()
        parts = [dec.decode(zx[:, :, :1]), dec.decode(zx[:, :, 1:3]), dec.decode(zx[:, :, 3:])]
    assert [p.shape[2] for p in parts] == [1, 8, 4]
    assert torch.allclose(torch.cat(parts, 2), whole, atol=1e-4)  # float rounding only


# ------------------------------------------------------------------ Matrix-Game-3.0, native, sharded
@pytest.fixture(scope="module")
def mg3_release(tmp_path_factory):
    """A Matrix-Game-3.0 release folder in miniature: base_distilled_model/ in 3 shards + Wan2.2_VAE."""
    root = tmp_path_factory.mktemp("mg3")
    cfg = mg3_cfg()
    torch.manual_seed(0)
    dit, vae = randomised(WanDiT(cfg), 1), randomised(CausalVAE(cfg.vae), 2)
    d = root / "base_distilled_model"
    write_shards(d, {k: v.to(torch.bfloat16) for k, v in dit.state_dict().items()}, 3)
    (d / "config.json").write_text(json.dumps(wan_config_json(cfg, mg3=True)))
    save_file(native_vae_tensors(vae), str(root / "Wan2.2_VAE.safetensors"))
    return root, cfg, dit, vae


def test_mg3_release_streams_shard_by_shard(mg3_release, monkeypatch):
    root, cfg, dit, vae = mg3_release
    spy = SafeOpenSpy(O.safe_open)
    monkeypatch.setattr(O, "safe_open", spy)
    loaded = O.load_official(root, dtype=torch.float32)
    opened, reads = spy.opened, spy.reads
    assert spy.max_live == 1, "two safetensors files open at once"
    shards = [f"diffusion_pytorch_model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert loaded.layout.name == "Matrix-Game-3.0" and loaded.report.files[:3] == [str(root / "base_distilled_model" / s)
                                                                                  for s in shards]
    # all headers first (nothing read), then each shard once, in order, every tensor read exactly once
    assert [o for o in opened if o in shards] == shards + shards
    assert sum(reads[s] for s in shards) == len(dit.state_dict()) and reads["Wan2.2_VAE.safetensors"] == len(
        native_vae_tensors(vae))
    assert loaded.cfg.action == cfg.action and loaded.cfg.camera and loaded.cfg.rope_sigma == 0.8
    assert loaded.cfg.cross_attn_residual_from_norm and loaded.cfg.vae == cfg.vae and loaded.cfg.steps == 3
    # every tensor landed where it should (the shards were bf16: compare in bf16)
    got = loaded.dit.state_dict()
    for k, v in dit.state_dict().items():
        assert torch.equal(got[k], v.to(torch.bfloat16).float()), k
    vgot = loaded.vae.state_dict()
    for k, v in vae.state_dict().items():
        if not k.startswith("latents_"):
            assert torch.equal(vgot[k], v), k
    # the .pth carries no statistics: Wan2.2's 48 are filled in for z=48, none for this shrunk VAE
    assert torch.equal(vgot["latents_std"], torch.ones(4)) and any("not normalised" in n for n in loaded.report.notes)


@pytest.mark.filterwarnings("ignore:.*no published latent statistics")
def test_converted_mg3_computes_what_the_same_tensors_compute(mg3_release, tmp_path):
    from interworld.cli.main import main
    from interworld.engine.world import World

    root, cfg, dit, vae = mg3_release
    assert main(["convert", str(root), str(tmp_path / "ck"), "--dtype", "float32"]) == 0
    ccfg, meta = read_config(tmp_path / "ck")
    assert meta["converted_from"]["layout"] == "Matrix-Game-3.0"
    # a model built directly from the same tensors
    direct = WanDiT(ccfg).eval()
    direct.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in dit.state_dict().items()})
    inp = inputs(ccfg)
    w = World.from_pretrained(str(tmp_path / "ck"))
    assert torch.equal(run_dit(w.dit, ccfg, inp), run_dit(direct, ccfg, inp))
    # the official folder directly gives the same world as the converted one
    with pytest.warns(UserWarning, match="umT5"):
        w2 = World.from_pretrained(str(root))
    assert torch.equal(run_dit(w2.dit, w2.cfg, inp), run_dit(direct, ccfg, inp))
    z = torch.randn(1, 4, 2, 2, 2)
    with torch.no_grad():
        assert torch.equal(w.vae.decode(z), w2.vae.decode(z))
        assert torch.allclose(w.vae.decode(z), vae.decode(z), atol=1e-6)
    # and the --init path reads the converted folder as any interworld checkpoint
    assert set(load_tensors(tmp_path / "ck")) >= {"dit.blocks.0.action_model.proj_keyboard.weight", "vae.conv2.weight"}


# ------------------------------------------------------------------ Wan2.2 base: diffusers layout, adding actions
@pytest.fixture(scope="module")
def ti2v_diffusers(tmp_path_factory):
    root = tmp_path_factory.mktemp("ti2v_diffusers")
    cfg = base_cfg(text_len=512)  # diffusers configs do not carry it: the Wan pipelines pad prompts to 512
    dit, vae = randomised(WanDiT(cfg), 3), randomised(CausalVAE(cfg.vae), 4)
    (root / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline", "expand_timesteps": True}))
    write_shards(root / "transformer", {to_diffusers_dit(k): v for k, v in dit.state_dict().items()}, 2)
    (root / "transformer" / "config.json").write_text(json.dumps(diffusers_config_json(cfg)))
    n = cfg.vae.num_res_blocks
    write_shards(root / "vae", {to_diffusers_vae(k, n): v for k, v in native_vae_tensors(vae).items()}, 1)
    vc = cfg.vae
    (root / "vae" / "config.json").write_text(json.dumps({
        "_class_name": "AutoencoderKLWan", "base_dim": vc.dim, "decoder_base_dim": vc.dec_dim, "z_dim": vc.z_dim,
        "dim_mult": list(vc.dim_mult), "num_res_blocks": n, "temperal_downsample": list(vc.temporal_down),
        "is_residual": True, "in_channels": 12, "out_channels": 12, "patch_size": 2, "scale_factor_spatial": 16,
        "latents_mean": [0.1, 0.2, 0.3, 0.4], "latents_std": [1.0, 2.0, 3.0, 4.0]}))
    return root, cfg, dit, vae


def test_diffusers_layout_lands_every_tensor(ti2v_diffusers):
    root, cfg, dit, vae = ti2v_diffusers
    loaded = O.load_official(root, dtype=torch.float32)
    assert loaded.layout.name == "diffusers" and loaded.cfg.action is None and not loaded.cfg.camera
    assert loaded.cfg.rope_sigma == 0.0 and not loaded.cfg.cross_attn_residual_from_norm
    for k, v in dit.state_dict().items():
        assert torch.equal(loaded.dit.state_dict()[k], v), k
    for k, v in vae.state_dict().items():
        if not k.startswith("latents_"):
            assert torch.equal(loaded.vae.state_dict()[k], v), k
    assert loaded.vae.latents_std.tolist() == [1.0, 2.0, 3.0, 4.0]  # the statistics of vae/config.json
    inp = inputs(cfg)
    assert torch.equal(run_dit(loaded.dit, cfg, inp, actions=False), run_dit(dit, cfg, inp, actions=False))


def test_base_with_actions_starts_as_the_base(ti2v_diffusers, tmp_path):
    root, cfg, dit, _ = ti2v_diffusers
    loaded = O.load_official(root, dtype=torch.float32, with_actions=True)
    c = loaded.cfg
    assert c.action is not None and c.camera and c.name == "ti2v-5b+actions"
    assert c.rope_sigma == 0.0 and not c.cross_attn_residual_from_norm  # the base's own computation is kept
    assert loaded.report.new and all(K.is_new_module_key(k) for k in loaded.report.new)
    sd = loaded.dit.state_dict()
    assert {k for k in sd if K.is_new_module_key(k)} == set(loaded.report.new)
    assert torch.count_nonzero(sd["blocks.0.action_model.proj_mouse.weight"]) == 0
    assert torch.count_nonzero(sd["blocks.1.cam_scale_layer.weight"]) == 0
    assert torch.count_nonzero(sd["blocks.0.action_model.t_qkv.weight"]) > 0  # the rest is a normal init
    # with keys held, the mouse moving and the camera turning, it still computes the base's output
    inp = inputs(c)
    assert torch.allclose(run_dit(loaded.dit, c, inp, actions=True), run_dit(dit, cfg, inp, actions=False), atol=1e-5)
    # converted with --with-actions, it is a checkpoint `train world --init` reads
    rep = O.convert(root, tmp_path / "init", dtype=torch.float32, with_actions=True)
    assert len(rep.new) == len(loaded.report.new)
    ccfg, _ = read_config(tmp_path / "init")
    assert ccfg == c and any(k.startswith("vae.") for k in load_tensors(tmp_path / "init"))


# ------------------------------------------------------------------ Wan2.2-A14B: two experts
@pytest.mark.parametrize("fmt", ["native", "diffusers"])
def test_a14b_experts_land_in_their_expert(tmp_path, fmt):
    cfg = get_preset("tiny").replace(action=None, camera=False, rope_sigma=0.0, vae=TINY_VAE, moe_boundary=875.0)
    high, low = randomised(WanDiT(cfg, with_action=False), 5), randomised(WanDiT(cfg, with_action=False), 6)
    names = ("high_noise_model", "low_noise_model") if fmt == "native" else ("transformer", "transformer_2")
    for model, name in zip((high, low), names):
        d = tmp_path / name
        if fmt == "native":
            write_shards(d, dict(model.state_dict()), 2)
            (d / "config.json").write_text(json.dumps(wan_config_json(cfg)))
        else:
            write_shards(d, {to_diffusers_dit(k): v for k, v in model.state_dict().items()}, 2)
            (d / "config.json").write_text(json.dumps(diffusers_config_json(cfg)))
    if fmt == "native":
        (tmp_path / "Wan2.1_VAE.pth").write_bytes(b"not read")
    else:
        (tmp_path / "model_index.json").write_text(json.dumps({"boundary_ratio": 0.875}))
    loaded = O.load_official(tmp_path, dtype=torch.float32, with_actions=True)
    assert loaded.cfg.num_experts == 2 and loaded.dit.high_noise_model.has_action
    assert not loaded.dit.low_noise_model.has_action
    sd = loaded.dit.state_dict()
    for model, prefix in ((high, "high_noise_model."), (low, "low_noise_model.")):
        for k, v in model.state_dict().items():
            assert torch.equal(sd[prefix + k], v), prefix + k
    assert loaded.report.new and all(k.startswith("high_noise_model.blocks.") for k in loaded.report.new)
    if fmt == "native":
        assert any("Wan2.1_VAE" in n for n in loaded.report.notes)  # named, not silently skipped


# ------------------------------------------------------------------ MG-LightVAE
def test_lightvae_decoder_with_the_full_encoder(mg3_release, tmp_path):
    root, cfg, _, vae = mg3_release
    for p in root.iterdir():
        (tmp_path / p.name).symlink_to(p)
    light_cfg = VAEConfig(**{**TINY_VAE.__dict__, "dec_width_scale": 0.5})
    light = randomised(CausalVAE(light_cfg), 7)
    n = light_cfg.num_res_blocks
    tensors = {to_diffusers_vae(k, n): v for k, v in native_vae_tensors(light).items()}
    tensors["dynamic_feature_projection_heads.0.weight"] = torch.zeros(3, 3)  # training-only, dropped
    save_file(tensors, str(tmp_path / "MG-LightVAE.safetensors"))
    loaded = O.load_official(tmp_path, dtype=torch.float32, vae="lightvae")
    assert loaded.cfg.vae.dec_width_scale == 0.5 and loaded.report.dropped == ["dynamic_feature_projection_heads.0.weight"]
    got = loaded.vae.state_dict()
    for k in got:
        if k.startswith(("encoder.", "conv1.")):
            assert torch.equal(got[k], vae.state_dict()[k]), k  # the Wan2.2 encoder
        elif k.startswith(("decoder.", "conv2.")):
            assert torch.equal(got[k], light.state_dict()[k]), k  # the pruned decoder
    with pytest.raises(CheckpointError, match="MG-LightVAE_v2.safetensors"):
        O.load_official(tmp_path, vae="lightvae_v2")


# ------------------------------------------------------------------ errors
def test_unknown_layout_is_refused_with_what_was_expected(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError) as e:
        O.detect(tmp_path)
    msg = str(e.value)
    assert "found: weights.bin" in msg
    for expected in ("interworld checkpoint", "Wan2.2 native", "Wan2.2-A14B native", "diffusers", "Matrix-Game-3.0"):
        assert expected in msg
    from interworld.engine.world import World

    with pytest.raises(CheckpointError, match="no config.json in it; expected .*Wan2.2 native.*Matrix-Game-3.0"):
        World.from_pretrained(str(tmp_path))


def test_misfitting_keys_are_named_with_the_layout_before_anything_is_read(mg3_release, tmp_path, monkeypatch):
    root, cfg, dit, _ = mg3_release
    sd = dict(dit.state_dict())
    del sd["blocks.1.cam_shift_layer.bias"]
    sd["blocks.0.action_model.extra.weight"] = torch.zeros(2)
    sd["head.head.weight"] = torch.zeros(3, cfg.dim)
    d = tmp_path / "base_model"
    write_shards(d, sd, 2)
    (d / "config.json").write_text(json.dumps(wan_config_json(cfg, mg3=True)))
    (tmp_path / "Wan2.2_VAE.safetensors").symlink_to(root / "Wan2.2_VAE.safetensors")
    spy = SafeOpenSpy(O.safe_open)
    monkeypatch.setattr(O, "safe_open", spy)
    with pytest.raises(CheckpointError) as e:
        O.load_official(tmp_path)
    msg = str(e.value)
    assert "(Matrix-Game-3.0 layout)" in msg and "missing 1 keys: blocks.1.cam_shift_layer.bias" in msg
    assert "unexpected 1 keys: blocks.0.action_model.extra.weight" in msg
    assert f"head.head.weight: checkpoint (3, {cfg.dim}) vs model" in msg
    assert spy.keys_read == []  # found from the headers alone


def test_pickles_are_never_opened_and_the_error_gives_the_command(tmp_path, mg3_release):
    root, *_ = mg3_release
    (tmp_path / "base_distilled_model").symlink_to(root / "base_distilled_model")
    (tmp_path / "Wan2.2_VAE.pth").write_bytes(b"\x80\x04 not a pickle we would ever load")
    with pytest.raises(CheckpointError, match=r"Wan2.2_VAE.pth is a pickle.*scripts/pth_to_safetensors.py .*"
                                              r"Wan2.2_VAE.safetensors"):
        O.load_official(tmp_path)
    loaded = O.load_official(tmp_path, vae="none", dtype=torch.float32)  # the DiT alone still loads
    assert loaded.layout.name == "Matrix-Game-3.0" and loaded.vae is None
    with pytest.raises(CheckpointError, match="convert it first with `interworld convert"):
        read_config(tmp_path)  # what `train world --init OFFICIAL` meets


def test_image_to_video_checkpoints_are_refused(tmp_path):
    cfg = base_cfg()
    c = wan_config_json(cfg)
    c.update(model_type="i2v", in_dim=36, out_dim=16)
    (tmp_path / "config.json").write_text(json.dumps(c))
    write_shards(tmp_path, {"patch_embedding.weight": torch.zeros(1)}, 1)
    with pytest.raises(CheckpointError, match="in_dim 36 != out_dim 16: image-to-video"):
        O.load_official(tmp_path)


def test_cli_convert_errors_are_one_line(tmp_path, capsys):
    from interworld.cli.main import main

    assert main(["convert", str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("interworld convert: error:") and "expected" in err[0]


# ------------------------------------------------------------------ umT5 text encoding
def test_umt5_from_the_official_folder(tmp_path):
    """Wan's umT5 weights (native names) through transformers, equal to the same weights loaded natively."""
    from interworld.models.text import UMT5TextEncoder

    transformers = pytest.importorskip("transformers")
    n = tiny_tokenizer(tmp_path / "google" / "umt5-xxl")
    tcfg = transformers.UMT5Config(vocab_size=n, d_model=16, d_kv=4, d_ff=24, num_layers=2, num_heads=4,
                                   feed_forward_proj="gated-gelu", dropout_rate=0.0)
    torch.manual_seed(0)
    ref = transformers.UMT5EncoderModel(tcfg).eval()
    wan_names = {"shared.weight": "token_embedding.weight", "encoder.final_layer_norm.weight": "norm.weight"}
    per = {"layer.0.layer_norm": "norm1", "layer.0.SelfAttention.q": "attn.q", "layer.0.SelfAttention.k": "attn.k",
           "layer.0.SelfAttention.v": "attn.v", "layer.0.SelfAttention.o": "attn.o",
           "layer.0.SelfAttention.relative_attention_bias": "pos_embedding.embedding", "layer.1.layer_norm": "norm2",
           "layer.1.DenseReluDense.wi_0": "ffn.gate.0", "layer.1.DenseReluDense.wi_1": "ffn.fc1",
           "layer.1.DenseReluDense.wo": "ffn.fc2"}
    out = {}
    for k, v in ref.state_dict().items():
        if k == "encoder.embed_tokens.weight":
            continue
        m = re.match(r"encoder\.block\.(\d+)\.(.*)\.weight$", k)
        out[wan_names[k] if k in wan_names else f"blocks.{m.group(1)}.{per[m.group(2)]}.weight"] = v.clone()
    save_file(out, str(tmp_path / "models_t5_umt5-xxl-enc-bf16.safetensors"))
    enc = UMT5TextEncoder(str(tmp_path), text_len=8, dtype=torch.float32)
    assert enc.source.kind == "wan"
    a = enc(["a  dark corridor", "hall"])
    tok = enc.tokenizer("a dark corridor", return_tensors="pt")
    with torch.no_grad():
        want = ref(input_ids=tok.input_ids, attention_mask=tok.attention_mask).last_hidden_state[0]
    assert torch.allclose(a[0, :want.shape[0]], want, atol=1e-5)  # whitespace cleaned as Wan cleans it
    assert "hall" in enc._cache and torch.equal(enc(["hall"])[0], a[1, :1])
    # only the .pth: the error says how to convert it
    (tmp_path / "models_t5_umt5-xxl-enc-bf16.safetensors").rename(tmp_path / "models_t5_umt5-xxl-enc-bf16.pth")
    with pytest.raises(CheckpointError, match="pth_to_safetensors.py"):
        UMT5TextEncoder(str(tmp_path), text_len=8)


def test_umt5_from_a_diffusers_pipeline(tmp_path):
    from interworld.models.text import UMT5TextEncoder

    transformers = pytest.importorskip("transformers")
    n = tiny_tokenizer(tmp_path / "tokenizer")
    tcfg = transformers.UMT5Config(vocab_size=n, d_model=16, d_kv=4, d_ff=24, num_layers=1, num_heads=4)
    torch.manual_seed(0)
    transformers.UMT5EncoderModel(tcfg).save_pretrained(tmp_path / "text_encoder")
    enc = UMT5TextEncoder(str(tmp_path), text_len=8, dtype=torch.float32)
    assert enc.source.kind == "transformers" and enc(["stone hall"]).shape == (1, 2, 16)

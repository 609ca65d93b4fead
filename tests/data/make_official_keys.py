"""Write the full key lists (name and shape) of the official checkpoints, from their public code.

This file is independent of interworld's modules: it spells out the official module trees
as the public code builds them, so tests/test_official.py can check interworld's models
and name maps against them. Run it from the repository root to regenerate the data files:

    python tests/data/make_official_keys.py

Sources (read for names, shapes and configs):
- Wan-Video/Wan2.2 @ 42bf4cfaa384bc21833865abc2f9e6c0e67233dc: wan/modules/model.py (WanModel,
  WanAttentionBlock, Head), wan/modules/vae2_2.py (WanVAE_, Encoder3d, Decoder3d,
  Down_/Up_ResidualBlock, Resample, ResidualBlock, AttentionBlock), wan/modules/t5.py (umt5_xxl,
  T5Encoder), wan/configs/wan_ti2v_5B.py (dim 3072, ffn 14336, 24 heads, 30 layers).
- huggingface/diffusers @ 58eb52c0803ea9af3abec60841c2a093bdf1f951: scripts/convert_wan_to_diffusers.py
  (TRANSFORMER_KEYS_RENAME_DICT, convert_vae_22, the Wan2.2-TI2V-5B transformer config),
  src/diffusers/models/transformers/transformer_wan.py, src/diffusers/models/autoencoders/autoencoder_kl_wan.py.
- SkyworkAI/Matrix-Game, Matrix-Game-3/wan/modules/action_module.py @ 395be8812e60b6598ee4c8b122d552290bb7e3e8
  (ActionModule) and Matrix-Game-3's WanModel (wan/modules/model.py: use_memory camera layers,
  patch_embedding_wancamctrl of 6 x 256 x prod(patch) inputs, action_model in action_config["blocks"]);
  action_config values (blocks 0-14, heads 16, hidden 128, keyboard/mouse hidden 1024, windows 3,
  vae_time_compression_ratio 4, qkv_bias false, qk_norm true) as used by public ports of the
  release (the release's base_model/config.json itself could not be read here).
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def linear(name, out, inp, bias=True):
    yield f"{name}.weight", (out, inp)
    if bias:
        yield f"{name}.bias", (out,)


# ------------------------------------------------------------------------------ DiT
def wan_dit(dim=3072, ffn=14336, layers=30, in_dim=48, out_dim=48, text_dim=4096, freq_dim=256, patch=(1, 2, 2),
            mg3=False, action_blocks=15):
    p = patch[0] * patch[1] * patch[2]
    yield "patch_embedding.weight", (dim, in_dim, *patch)
    yield "patch_embedding.bias", (dim,)
    if mg3:
        yield from linear("patch_embedding_wancamctrl", dim, 6 * 256 * p)
        yield from linear("c2ws_hidden_states_layer1", dim, dim)
        yield from linear("c2ws_hidden_states_layer2", dim, dim)
    yield from linear("text_embedding.0", dim, text_dim)
    yield from linear("text_embedding.2", dim, dim)
    yield from linear("time_embedding.0", dim, freq_dim)
    yield from linear("time_embedding.2", dim, dim)
    yield from linear("time_projection.1", 6 * dim, dim)
    for i in range(layers):
        b = f"blocks.{i}"
        for att in ("self_attn", "cross_attn"):
            for x in "qkvo":
                yield from linear(f"{b}.{att}.{x}", dim, dim)
            yield f"{b}.{att}.norm_q.weight", (dim,)
            yield f"{b}.{att}.norm_k.weight", (dim,)
        yield f"{b}.norm3.weight", (dim,)  # the cross-attention norm (cross_attn_norm=True); norm1/norm2 have no weights
        yield f"{b}.norm3.bias", (dim,)
        yield from linear(f"{b}.ffn.0", ffn, dim)
        yield from linear(f"{b}.ffn.2", dim, ffn)
        yield f"{b}.modulation", (1, 6, dim)
        if mg3:
            for n in ("cam_injector_layer1", "cam_injector_layer2", "cam_scale_layer", "cam_shift_layer"):
                yield from linear(f"{b}.{n}", dim, dim)
            if i < action_blocks:
                a = f"{b}.action_model"
                win = 3 * 4  # windows_size x vae_time_compression_ratio
                yield from linear(f"{a}.keyboard_embed.0", 128, 6)
                yield from linear(f"{a}.keyboard_embed.2", 128, 128)
                yield from linear(f"{a}.mouse_mlp.0", 1024, 2 * win + dim)
                yield from linear(f"{a}.mouse_mlp.2", 1024, 1024)
                yield f"{a}.mouse_mlp.3.weight", (1024,)
                yield f"{a}.mouse_mlp.3.bias", (1024,)
                yield from linear(f"{a}.t_qkv", 3 * 1024, 1024, bias=False)
                yield f"{a}.img_attn_q_norm.weight", (1024 // 16,)
                yield f"{a}.img_attn_k_norm.weight", (1024 // 16,)
                yield from linear(f"{a}.proj_mouse", dim, 1024, bias=False)
                yield f"{a}.key_attn_q_norm.weight", (1024 // 16,)
                yield f"{a}.key_attn_k_norm.weight", (1024 // 16,)
                yield from linear(f"{a}.mouse_attn_q", 1024, dim, bias=False)
                yield from linear(f"{a}.keyboard_attn_kv", 2 * 1024, 128 * win, bias=False)
                yield from linear(f"{a}.proj_keyboard", dim, 1024, bias=False)
    yield from linear("head.head", out_dim * p, dim)
    yield "head.modulation", (1, 2, dim)


def diffusers_transformer(dim=3072, ffn=14336, layers=30, in_dim=48, out_dim=48, text_dim=4096, freq_dim=256,
                          patch=(1, 2, 2)):
    p = patch[0] * patch[1] * patch[2]
    yield "patch_embedding.weight", (dim, in_dim, *patch)
    yield "patch_embedding.bias", (dim,)
    yield from linear("condition_embedder.time_embedder.linear_1", dim, freq_dim)
    yield from linear("condition_embedder.time_embedder.linear_2", dim, dim)
    yield from linear("condition_embedder.time_proj", 6 * dim, dim)
    yield from linear("condition_embedder.text_embedder.linear_1", dim, text_dim)
    yield from linear("condition_embedder.text_embedder.linear_2", dim, dim)
    for i in range(layers):
        b = f"blocks.{i}"
        for att in ("attn1", "attn2"):
            for x in ("to_q", "to_k", "to_v", "to_out.0"):
                yield from linear(f"{b}.{att}.{x}", dim, dim)
            yield f"{b}.{att}.norm_q.weight", (dim,)
            yield f"{b}.{att}.norm_k.weight", (dim,)
        yield f"{b}.norm2.weight", (dim,)
        yield f"{b}.norm2.bias", (dim,)
        yield from linear(f"{b}.ffn.net.0.proj", ffn, dim)
        yield from linear(f"{b}.ffn.net.2", dim, ffn)
        yield f"{b}.scale_shift_table", (1, 6, dim)
    yield from linear("proj_out", out_dim * p, dim)
    yield "scale_shift_table", (1, 2, dim)


# ------------------------------------------------------------------------------ VAE
def _conv3(name, out, inp, k=(3, 3, 3)):
    yield f"{name}.weight", (out, inp, *k)
    yield f"{name}.bias", (out,)


def _resblock(name, inp, out, diffusers):
    n = ("norm1", "conv1", "norm2", "conv2", "conv_shortcut") if diffusers else \
        ("residual.0", "residual.2", "residual.3", "residual.6", "shortcut")
    yield f"{name}.{n[0]}.gamma", (inp, 1, 1, 1)
    yield from _conv3(f"{name}.{n[1]}", out, inp)
    yield f"{name}.{n[2]}.gamma", (out, 1, 1, 1)
    yield from _conv3(f"{name}.{n[3]}", out, out)
    if inp != out:
        yield from _conv3(f"{name}.{n[4]}", out, inp, (1, 1, 1))


def _mid(name, c, diffusers):
    r0, at, r1 = (("mid_block.resnets.0", "mid_block.attentions.0", "mid_block.resnets.1") if diffusers
                  else ("middle.0", "middle.1", "middle.2"))
    yield from _resblock(f"{name}.{r0}", c, c, diffusers)
    yield f"{name}.{at}.norm.gamma", (c, 1, 1)
    yield f"{name}.{at}.to_qkv.weight", (3 * c, c, 1, 1)
    yield f"{name}.{at}.to_qkv.bias", (3 * c,)
    yield f"{name}.{at}.proj.weight", (c, c, 1, 1)
    yield f"{name}.{at}.proj.bias", (c,)
    yield from _resblock(f"{name}.{r1}", c, c, diffusers)


def wan22_vae(diffusers=False, dim=160, dec_dim=256, z=48, mult=(1, 2, 4, 4), n_res=2, tdown=(False, True, True)):
    d = diffusers
    enc = [dim * m for m in (1, *mult)]
    yield from _conv3("encoder.conv_in" if d else "encoder.conv1", enc[0], 12)
    for i in range(len(mult)):
        cin, cout = enc[i], enc[i + 1]
        g = f"encoder.down_blocks.{i}" if d else f"encoder.downsamples.{i}"
        for j in range(n_res):
            yield from _resblock(f"{g}.resnets.{j}" if d else f"{g}.downsamples.{j}", cin if j == 0 else cout, cout, d)
        if i < len(mult) - 1:
            r = f"{g}.downsampler" if d else f"{g}.downsamples.{n_res}"
            yield f"{r}.resample.1.weight", (cout, cout, 3, 3)
            yield f"{r}.resample.1.bias", (cout,)
            if tdown[i]:
                yield from _conv3(f"{r}.time_conv", cout, cout, (3, 1, 1))
    yield from _mid("encoder", enc[-1], d)
    yield f"encoder.{'norm_out' if d else 'head.0'}.gamma", (enc[-1], 1, 1, 1)
    yield from _conv3(f"encoder.{'conv_out' if d else 'head.2'}", 2 * z, enc[-1])
    yield from _conv3("quant_conv" if d else "conv1", 2 * z, 2 * z, (1, 1, 1))
    yield from _conv3("post_quant_conv" if d else "conv2", z, z, (1, 1, 1))
    dec = [dec_dim * m for m in (mult[-1], *mult[::-1])]
    tup = tdown[::-1]
    yield from _conv3("decoder.conv_in" if d else "decoder.conv1", dec[0], z)
    yield from _mid("decoder", dec[0], d)
    for i in range(len(mult)):
        cin, cout = dec[i], dec[i + 1]
        g = f"decoder.up_blocks.{i}" if d else f"decoder.upsamples.{i}"
        for j in range(n_res + 1):
            yield from _resblock(f"{g}.resnets.{j}" if d else f"{g}.upsamples.{j}", cin if j == 0 else cout, cout, d)
        if i < len(mult) - 1:
            r = f"{g}.upsampler" if d else f"{g}.upsamples.{n_res + 1}"
            yield f"{r}.resample.1.weight", (cout, cout, 3, 3)
            yield f"{r}.resample.1.bias", (cout,)
            if tup[i]:
                yield from _conv3(f"{r}.time_conv", 2 * cout, cout, (3, 1, 1))
    yield f"decoder.{'norm_out' if d else 'head.0'}.gamma", (dec[-1], 1, 1, 1)
    yield from _conv3(f"decoder.{'conv_out' if d else 'head.2'}", 12, dec[-1])


# ------------------------------------------------------------------------------ umT5
def wan_umt5(vocab=256384, dim=4096, dim_attn=4096, dim_ffn=10240, heads=64, layers=24, buckets=32):
    yield "token_embedding.weight", (vocab, dim)
    for i in range(layers):
        b = f"blocks.{i}"
        yield f"{b}.norm1.weight", (dim,)
        for x in "qkv":
            yield f"{b}.attn.{x}.weight", (dim_attn, dim)
        yield f"{b}.attn.o.weight", (dim, dim_attn)
        yield f"{b}.norm2.weight", (dim,)
        yield f"{b}.ffn.gate.0.weight", (dim_ffn, dim)
        yield f"{b}.ffn.fc1.weight", (dim_ffn, dim)
        yield f"{b}.ffn.fc2.weight", (dim, dim_ffn)
        yield f"{b}.pos_embedding.embedding.weight", (buckets, heads)
    yield "norm.weight", (dim,)


FILES = {
    "official_keys_ti2v-5b.txt": ("Wan2.2-TI2V-5B DiT, native layout (Wan-AI/Wan2.2-TI2V-5B "
                                  "diffusion_pytorch_model*.safetensors)", lambda: wan_dit()),
    "official_keys_mg3-5b.txt": ("Matrix-Game-3.0 DiT, native layout (Skywork/Matrix-Game-3.0 "
                                 "base_model/ and base_distilled_model/)", lambda: wan_dit(mg3=True)),
    "official_keys_ti2v-5b_diffusers.txt": ("Wan2.2-TI2V-5B WanTransformer3DModel, diffusers layout "
                                            "(Wan-AI/Wan2.2-TI2V-5B-Diffusers transformer/)",
                                            lambda: diffusers_transformer()),
    "official_keys_wan2.2_vae.txt": ("Wan2.2 VAE, native layout (Wan2.2_VAE.pth)", lambda: wan22_vae()),
    "official_keys_wan2.2_vae_diffusers.txt": ("Wan2.2 AutoencoderKLWan, diffusers layout (vae/)",
                                               lambda: wan22_vae(diffusers=True)),
    "official_keys_umt5-xxl.txt": ("Wan's umT5-XXL encoder, native layout (models_t5_umt5-xxl-enc-bf16.pth)",
                                   lambda: wan_umt5()),
}


def main() -> None:
    for name, (title, gen) in FILES.items():
        rows = list(gen())
        assert len({k for k, _ in rows}) == len(rows), name
        lines = [f"# {title}", "# name<TAB>shape; written by tests/data/make_official_keys.py from the public code",
                 "# (see that file for the repositories, files and commits)"]
        lines += [f"{k}\t{','.join(map(str, s))}" for k, s in rows]
        (HERE / name).write_text("\n".join(lines) + "\n")
        print(f"{name}: {len(rows)} keys")


if __name__ == "__main__":
    main()

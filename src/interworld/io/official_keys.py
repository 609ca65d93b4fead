"""Name tables between the official checkpoint layouts and interworld's modules.

Facts come from the public code (read for names, shapes and constants only):
- Wan-Video/Wan2.2 `wan/modules/model.py` (WanModel: the native DiT names, which the
  Matrix-Game-3.0 release keeps and extends), `wan/modules/vae2_2.py` (the native VAE names
  and its latent statistics), `wan/modules/t5.py` (the native umT5 encoder names).
- huggingface/diffusers `scripts/convert_wan_to_diffusers.py` (native -> diffusers renames
  for `WanTransformer3DModel` and the Wan2.2 `AutoencoderKLWan`), with
  `src/diffusers/models/transformers/transformer_wan.py` and
  `src/diffusers/models/autoencoders/autoencoder_kl_wan.py`.
- SkyworkAI/Matrix-Game `Matrix-Game-3/wan/modules/action_module.py` and `vae2_2.py` (the
  action module's names; MG-LightVAE files use diffusers-style VAE names).

interworld's DiT uses the native Wan / Matrix-Game names, so native DiT keys map to themselves.
Every function here maps one source key to one interworld key, or to None for keys that
are deliberately dropped (training-only heads); anything else that does not fit is named
by the loader.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------------------- DiT
# diffusers WanTransformer3DModel -> native WanModel. Anchored, applied first match only.
_DIT_DIFFUSERS = [
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.head."),
    (r"^blocks\.(\d+)\.scale_shift_table$", r"blocks.\1.modulation"),
    (r"^blocks\.(\d+)\.attn1\.to_([qkv])\.", r"blocks.\1.self_attn.\2."),
    (r"^blocks\.(\d+)\.attn1\.to_out\.0\.", r"blocks.\1.self_attn.o."),
    (r"^blocks\.(\d+)\.attn1\.norm_([qk])\.", r"blocks.\1.self_attn.norm_\2."),
    (r"^blocks\.(\d+)\.attn2\.to_([qkv])\.", r"blocks.\1.cross_attn.\2."),
    (r"^blocks\.(\d+)\.attn2\.to_out\.0\.", r"blocks.\1.cross_attn.o."),
    (r"^blocks\.(\d+)\.attn2\.norm_([qk])\.", r"blocks.\1.cross_attn.norm_\2."),
    # diffusers numbers the block norms in call order: its norm2 is the affine
    # cross-attention norm that Wan calls norm3 (norm1 / Wan's norm2 have no weights)
    (r"^blocks\.(\d+)\.norm2\.", r"blocks.\1.norm3."),
    (r"^blocks\.(\d+)\.ffn\.net\.0\.proj\.", r"blocks.\1.ffn.0."),
    (r"^blocks\.(\d+)\.ffn\.net\.2\.", r"blocks.\1.ffn.2."),
]
_DIT_DIFFUSERS = [(re.compile(a), b) for a, b in _DIT_DIFFUSERS]


def dit_native(key: str) -> str:
    """Native Wan / Matrix-Game DiT key -> interworld key (the same names)."""
    return key


def dit_diffusers(key: str) -> str:
    """diffusers WanTransformer3DModel key -> interworld key (unknown keys pass through)."""
    for pat, rep in _DIT_DIFFUSERS:
        if pat.match(key):
            return pat.sub(rep, key, count=1)
    return key


# Modules Matrix-Game adds to the Wan base. When a base checkpoint is loaded into a model that
# has them, they are created fresh; those listed in ZERO_INIT start at zero so the model
# computes exactly what the base computes (the camera scale/shift and the action output
# projections are the only paths by which they reach the residual stream).
NEW_MODULE_PATTERNS = [re.compile(p) for p in (
    r"^(?:\w+_noise_model\.)?patch_embedding_wancamctrl\.",
    r"^(?:\w+_noise_model\.)?c2ws_hidden_states_layer[12]\.",
    r"^(?:\w+_noise_model\.)?blocks\.\d+\.cam_(?:injector_layer1|injector_layer2|scale_layer|shift_layer)\.",
    r"^(?:\w+_noise_model\.)?blocks\.\d+\.action_model\.",
)]
ZERO_INIT = ("cam_scale_layer", "cam_shift_layer", "proj_mouse", "proj_keyboard")


def is_new_module_key(key: str) -> bool:
    return any(p.match(key) for p in NEW_MODULE_PATTERNS)


# ---------------------------------------------------------------------------- VAE
# Wan2.2 VAE statistics (wan/modules/vae2_2.py `Wan2_2_VAE`, the same numbers as diffusers'
# `latents_mean` / `latents_std` for Wan2.2): the native .pth does not carry them.
WAN22_LATENTS_MEAN = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667)
WAN22_LATENTS_STD = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744)

# native Wan VAE -> interworld (arch "wan2.2"): Wan's residual blocks are Sequentials
# (norm, silu, conv, norm, silu, dropout, conv), its resamplers Sequentials (pad|upsample, conv)
# and its heads (norm, silu, conv); interworld names the layers that hold weights.
_VAE_NATIVE = [(re.compile(a), b) for a, b in (
    (r"\.residual\.0\.", ".norm1."),
    (r"\.residual\.2\.", ".conv1."),
    (r"\.residual\.3\.", ".norm2."),
    (r"\.residual\.6\.", ".conv2."),
    (r"\.resample\.1\.", ".resample."),
    (r"^(encoder|decoder)\.head\.2\.", r"\1.head.1."),
)]


def vae_native(key: str) -> str:
    """Native Wan2.2 VAE key (Wan2.2_VAE.pth, converted to safetensors) -> interworld key."""
    for pat, rep in _VAE_NATIVE:
        key = pat.sub(rep, key)
    return key


_RESNET_TAIL = {"norm1": "residual.0", "conv1": "residual.2", "norm2": "residual.3", "conv2": "residual.6",
                "conv_shortcut": "shortcut"}


def vae_diffusers_to_native(key: str, num_res_blocks: int = 2) -> str | None:
    """diffusers AutoencoderKLWan (Wan2.2, is_residual) key -> native Wan key; None drops it.

    The resampler of a down group sits after its `num_res_blocks` residual blocks in the
    native Sequential, the up group's after `num_res_blocks + 1`.
    """
    if key.startswith("dynamic_feature_projection_heads."):
        return None  # training-only heads in the MG-LightVAE files
    top = {"quant_conv.": "conv1.", "post_quant_conv.": "conv2."}
    for a, b in top.items():
        if key.startswith(a):
            return b + key[len(a):]
    m = re.match(r"^(encoder|decoder)\.(.*)$", key)
    if not m:
        return key
    part, rest = m.groups()

    def resnet(tail: str) -> str:
        name, _, param = tail.partition(".")
        return f"{_RESNET_TAIL.get(name, name)}.{param}"

    simple = {"conv_in.": "conv1.", "norm_out.": "head.0.", "conv_out.": "head.2.",
              "mid_block.attentions.0.": "middle.1."}
    for a, b in simple.items():
        if rest.startswith(a):
            return f"{part}.{b}{rest[len(a):]}"
    m = re.match(r"^mid_block\.resnets\.([01])\.(.*)$", rest)
    if m:
        return f"{part}.middle.{2 * int(m.group(1))}.{resnet(m.group(2))}"
    m = re.match(r"^(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.(.*)$", rest)
    if m:
        kind = "downsamples" if m.group(1) == "down" else "upsamples"
        return f"{part}.{kind}.{m.group(2)}.{kind}.{m.group(3)}.{resnet(m.group(4))}"
    m = re.match(r"^(down|up)_blocks\.(\d+)\.(downsampler|upsampler)\.(.*)$", rest)
    if m:
        kind = "downsamples" if m.group(1) == "down" else "upsamples"
        idx = num_res_blocks if kind == "downsamples" else num_res_blocks + 1
        return f"{part}.{kind}.{m.group(2)}.{kind}.{idx}.{m.group(4)}"
    return key


def vae_diffusers(key: str, num_res_blocks: int = 2) -> str | None:
    native = vae_diffusers_to_native(key, num_res_blocks)
    return None if native is None else vae_native(native)


# ---------------------------------------------------------------------------- umT5
def t5_native(key: str) -> str:
    """Wan's umT5 encoder (models_t5_umt5-xxl-enc-bf16.pth) key -> transformers UMT5EncoderModel key.

    Wan's feed-forward is fc2(fc1(x) * gelu(gate(x))): gate is transformers' wi_0, fc1 its wi_1.
    Every umT5 layer has its own relative-position table (shared_pos=False).
    """
    if key == "token_embedding.weight":
        return "shared.weight"
    if key == "norm.weight":
        return "encoder.final_layer_norm.weight"
    m = re.match(r"^blocks\.(\d+)\.(.*)$", key)
    if not m:
        return key
    i, rest = m.groups()
    table = {
        "norm1.weight": "layer.0.layer_norm.weight",
        "attn.q.weight": "layer.0.SelfAttention.q.weight",
        "attn.k.weight": "layer.0.SelfAttention.k.weight",
        "attn.v.weight": "layer.0.SelfAttention.v.weight",
        "attn.o.weight": "layer.0.SelfAttention.o.weight",
        "pos_embedding.embedding.weight": "layer.0.SelfAttention.relative_attention_bias.weight",
        "norm2.weight": "layer.1.layer_norm.weight",
        "ffn.gate.0.weight": "layer.1.DenseReluDense.wi_0.weight",
        "ffn.fc1.weight": "layer.1.DenseReluDense.wi_1.weight",
        "ffn.fc2.weight": "layer.1.DenseReluDense.wo.weight",
    }
    return f"encoder.block.{i}.{table[rest]}" if rest in table else key

"""Configs for every scale of the model, as small dataclasses with named presets.

The same code runs the `tiny` test model, the `small` model that ships in the
package, the Wan2.2-TI2V-5B base, Matrix-Game-3.0 (`mg3-5b`) and the 2x14B MoE.
Facts about the official models are in SPEC.md section 1.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, asdict
from typing import Any

# The keyboard action set of Matrix-Game-3.0: a multi-hot of 6 per video frame.
KEYS = ("w", "s", "a", "d", "space", "attack")


@dataclass
class VAEConfig:
    """Causal 3D VAE in the Wan2.2 style.

    Spatial compression = 2 ** (len(dim_mult) - 1) * patch; temporal = 2 ** sum(temporal_down).
    """

    z_dim: int = 48
    dim: int = 160  # encoder base width
    dec_dim: int = 256  # decoder base width (Wan2.2 decodes wider than it encodes)
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_down: tuple[bool, ...] = (False, True, True)
    patch: int = 2  # pixel-unshuffle before the encoder (Wan2.2: 2x2)
    attn_mid: bool = True  # per-frame spatial attention in the middle block
    dec_width_scale: float = 1.0  # <1 prunes decoder widths (MG-LightVAE: 0.5 / 0.25)
    # "interworld": our own compact layout (tiny, small). "wan2.2": the exact structure of the
    # Wan2.2 VAE (residual down/up groups with parameter-free shortcuts, Wan's patchify order,
    # Wan's first-frame rule in the temporal upsampler), so the official weights load as they are.
    arch: str = "interworld"

    @property
    def spatial(self) -> int:
        return 2 ** (len(self.dim_mult) - 1) * self.patch

    @property
    def temporal(self) -> int:
        return 2 ** sum(self.temporal_down)


@dataclass
class ActionConfig:
    """The Matrix-Game action module (keyboard cross-attention, mouse temporal attention)."""

    num_blocks: int = 15  # applied in blocks [0, num_blocks)
    keyboard_dim: int = len(KEYS)
    mouse_dim: int = 2
    hidden: int = 128  # keyboard embedding width
    keyboard_hidden: int = 1024
    mouse_hidden: int = 1024
    heads: int = 16
    windows: int = 3  # latent frames of action history: windows * vae temporal = 12 video frames
    rope_theta: float = 256.0
    # channels per head rotated by the frame index; None: all. Matrix-Game's action module builds
    # its RoPE over a (t, h, w) grid with dims [8, 28, 28] and h = w = 0, so only 8 of 64 turn
    rope_dims: int | None = None


@dataclass
class Kinematics:
    """Fixed kinematic model that integrates actions into camera poses (not learned).

    Units follow ViZDoom: map units for position, degrees for angles, yaw counter-clockwise.
    """

    move_step: float = 8.0  # map units per video frame for W/S
    strafe_step: float = 8.0  # map units per video frame for A/D
    deg_per_mouse_x: float = 1.0  # degrees of yaw per mouse unit (positive dx turns right)
    deg_per_mouse_y: float = 1.0  # degrees of pitch per mouse unit (positive dy looks down)
    pitch_min: float = -56.0  # ViZDoom lets the view go 56 degrees down and 32 up
    pitch_max: float = 32.0
    fov: float = 90.0  # horizontal field of view, degrees


@dataclass
class ModelConfig:
    name: str = "custom"
    # --- DiT (Wan names) ---
    dim: int = 3072
    ffn_dim: int = 14336
    num_heads: int = 24
    num_layers: int = 30
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512
    patch: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True
    # MG3's public ports add the cross-attention output to norm3(x) rather than x in
    # memory mode. Kept as a switch so official weights can run as trained.
    cross_attn_residual_from_norm: bool = False
    rope_theta: float = 10000.0
    rope_sigma: float = 0.8  # per-head theta perturbation: theta_h = theta (1 + sigma e_h)
    # --- Matrix-Game additions ---
    action: ActionConfig | None = field(default_factory=ActionConfig)
    camera: bool = True  # Plucker-ray camera injection in every block
    # each latent frame's tokens also embed the frame before it (a second, zero-initialised patch
    # embedding): a direct path for copying what stays in view, as DIAMOND and GameNGen stack past
    # frames as input channels. Our own addition (docs/TRAINING.md, run 17); official weights have none
    prev_latent: bool = False
    # the RoPE row and column axes follow each token's ray elevation and azimuth in the world (the
    # frame's pitch and yaw plus the token's angle off the axis), so attention can find, after a
    # turn, what a token sees where it was before, and caches keys that stay valid. Our own
    # addition (models/rope.py, rope_rays); official weights have plain 3D RoPE
    ray_rope: bool = False
    # --- MoE (Wan2.2-A14B): a high-noise and a low-noise expert switched by timestep ---
    moe_boundary: float | None = None  # timestep (0..1000) at or above which the high-noise expert runs
    # --- generation schedule ---
    scheme: str = "segment"  # "segment" (official) or "causal" (block-causal + KV cache)
    first_latents: int = 15  # segment 0: image latent + 14 new (57 video frames)
    memory_latents: int = 5
    memory_bank: int = 64  # latent frames kept for memory retrieval (engine/memory_bank.py)
    # whether the weights learned to use retrieved memory frames (Matrix-Game-3.0's did; ours do
    # once trained with `train world --memory`): only then do generate and play use memory by
    # default. False for configs that predate the field
    memory_trained: bool = False
    # memory frames keep their latent index as their RoPE time position, except that one more
    # than this many frames back sits at this distance: training saw no longer gaps (None: no limit)
    memory_max_gap: int | None = None
    past_latents: int = 4
    new_latents: int = 10
    chunk_latents: int = 2  # causal: latent frames generated per chunk
    sink_latents: int = 1  # causal: first latent frames kept in the cache forever
    window_latents: int = 8  # causal: most recent latent frames kept in the cache
    # --- sampling ---
    steps: int = 3
    shift: float = 5.0
    sampler: str = "unipc"
    # --- data ---
    height: int = 704
    width: int = 1280
    fps: float = 40
    text_encoder: str = "umt5-xxl"  # or "builtin"
    # the one prompt a model was trained with (Doom recordings have no captions, so every clip had
    # train/world.py's DEFAULT_PROMPT): an empty prompt at inference uses it, since "" is a text
    # the model never saw. None: the prompt is used as given
    train_prompt: str | None = None
    builtin_text_layers: int = 2
    vae: VAEConfig = field(default_factory=VAEConfig)
    kinematics: Kinematics = field(default_factory=Kinematics)

    # ----------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def in_dim(self) -> int:
        return self.vae.z_dim

    @property
    def camera_in(self) -> int:
        """Plucker channels per latent pixel: 6 rays folded by the VAE's spatial factor."""
        return 6 * self.vae.spatial * self.vae.spatial

    @property
    def num_experts(self) -> int:
        return 1 if self.moe_boundary is None else 2

    def latent_shape(self, frames: int, height: int | None = None, width: int | None = None):
        h, w = height or self.height, width or self.width
        s = self.vae.spatial
        return (self.vae.z_dim, latent_frames(frames, self.vae.temporal), h // s, w // s)

    def tokens_per_frame(self, height: int | None = None, width: int | None = None) -> int:
        h, w = height or self.height, width or self.width
        s = self.vae.spatial
        return (h // s // self.patch[1]) * (w // s // self.patch[2])

    def replace(self, **kw) -> "ModelConfig":
        return dataclasses.replace(self, **kw)

    def with_dit(self, dim: int | None = None, layers: int | None = None, patch: int | None = None,
                 camera: bool | None = None, ray_rope: bool | None = None) -> "ModelConfig":
        """This config with a DiT `dim` wide (heads of 64 channels, FFN 3x), `layers` deep, and
        latent patches of `patch` x `patch` (1: one token per latent pixel, four times the tokens of
        Wan's 2), conditioned on camera poses or not (`camera`), with RoPE by ray direction or not
        (`ray_rope`); None keeps the config's (`train world --dit-dim`, `bench --dit-dim`)."""
        cfg = self if camera is None else self.replace(camera=camera)
        cfg = cfg if ray_rope is None else cfg.replace(ray_rope=ray_rope)
        if dim is not None:
            if dim < 64 or dim % 64:
                raise ValueError(f"--dit-dim {dim}: give a multiple of 64 (heads of 64 channels)")
            cfg = cfg.replace(dim=dim, ffn_dim=3 * dim, num_heads=dim // 64)
        if layers is not None:
            if layers < 1:
                raise ValueError(f"--dit-layers {layers}: give 1 or more")
            cfg = cfg.replace(num_layers=layers)
        if patch is not None:
            if patch not in (1, 2):
                raise ValueError(f"--dit-patch {patch}: give 1 or 2 (latent pixels per token side)")
            cfg = cfg.replace(patch=(cfg.patch[0], patch, patch))
        return cfg

    # ---------------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"config has unknown fields {sorted(unknown)}; known: {sorted(known)}")
        if d.get("action") is not None:
            d["action"] = ActionConfig(**d["action"])
        if "vae" in d:
            v = dict(d["vae"])
            for k in ("dim_mult", "temporal_down"):
                if k in v:
                    v[k] = tuple(v[k])
            d["vae"] = VAEConfig(**v)
        if "kinematics" in d:
            d["kinematics"] = Kinematics(**d["kinematics"])
        if "patch" in d:
            d["patch"] = tuple(d["patch"])
        return cls(**d)


def latent_frames(video_frames: int, temporal: int = 4) -> int:
    """Causal VAE: the first frame gets its own latent, then one latent per `temporal` frames."""
    if video_frames < 1 or (video_frames - 1) % temporal:
        raise ValueError(f"a causal VAE needs 1 + {temporal}k video frames, got {video_frames}")
    return 1 + (video_frames - 1) // temporal


def video_frames(latents: int, temporal: int = 4) -> int:
    return 1 + (latents - 1) * temporal


# ------------------------------------------------------------------------- presets
def _wan22_vae() -> VAEConfig:
    return VAEConfig(arch="wan2.2")


def _wan21_vae() -> VAEConfig:
    # Wan2.1 VAE used by Wan2.2-A14B: z 16, 8x spatial by convolutions, no patchify.
    return VAEConfig(z_dim=16, dim=96, dec_dim=96, dim_mult=(1, 2, 4, 4), patch=1)


def tiny() -> ModelConfig:
    """For tests: a forward pass in milliseconds on a CPU."""
    return ModelConfig(
        name="tiny",
        dim=32, ffn_dim=64, num_heads=2, num_layers=2, freq_dim=16, text_dim=16, text_len=8,
        action=ActionConfig(num_blocks=1, hidden=8, keyboard_hidden=16, mouse_hidden=16, heads=2),
        first_latents=3, memory_latents=1, past_latents=1, new_latents=2,
        chunk_latents=1, sink_latents=1, window_latents=2,
        steps=2, height=32, width=32, fps=10, text_encoder="builtin", builtin_text_layers=1,
        vae=VAEConfig(z_dim=4, dim=8, dec_dim=8, dim_mult=(1, 2), num_res_blocks=1,
                      temporal_down=(True,), patch=2, attn_mid=False),
        kinematics=Kinematics(),
    )


def small() -> ModelConfig:
    """The model that ships in the package: 128x160 Doom at 17.5 fps, sized for CPUs."""
    return ModelConfig(
        name="small",
        # 320 wide and 10 deep since run 12: at 224 x 8 the DiT plateaued lower (docs/TRAINING.md)
        dim=320, ffn_dim=960, num_heads=5, num_layers=10, freq_dim=64, text_dim=128, text_len=32,
        action=ActionConfig(num_blocks=4, hidden=64, keyboard_hidden=128, mouse_hidden=128, heads=4),
        scheme="causal",
        first_latents=6, memory_latents=2, past_latents=2, new_latents=4,
        chunk_latents=1, sink_latents=1, window_latents=6,
        # recorded shards hold 128 latent frames: the longest gap a memory frame has in training
        memory_max_gap=120,
        # shift 3, not Wan's 5: 16x20 latents need less of the schedule spent at high noise
        steps=3, shift=3.0, height=128, width=160, fps=17.5, text_encoder="builtin",
        # 8x spatial (2x2 patchify + two stride-2 stages), 4x temporal, 16 channels
        vae=VAEConfig(z_dim=16, dim=32, dec_dim=32, dim_mult=(1, 2, 4), num_res_blocks=1,
                      temporal_down=(True, True), patch=2, attn_mid=False),
        # ViZDoom at 2 tics per frame: about 16 map units per frame at full walking speed
        kinematics=Kinematics(move_step=16.0, strafe_step=15.0),
    )


def ti2v_5b() -> ModelConfig:
    """Wan2.2-TI2V-5B: the base, without actions or camera, and with Wan's plain RoPE
    (the per-head perturbation is Matrix-Game-3.0's)."""
    return ModelConfig(name="ti2v-5b", action=None, camera=False, fps=24, steps=50, rope_sigma=0.0,
                       sampler="unipc", vae=_wan22_vae())


def mg3_5b() -> ModelConfig:
    """Matrix-Game-3.0 exactly (about 6.47B parameters)."""
    return ModelConfig(name="mg3-5b", cross_attn_residual_from_norm=True, vae=_wan22_vae(),
                       action=ActionConfig(rope_dims=8), memory_trained=True)


def a14b_moe() -> ModelConfig:
    """Two experts of the Wan2.2-A14B dimensions; actions in the high-noise expert only."""
    return ModelConfig(
        name="a14b-moe", dim=5120, ffn_dim=13824, num_heads=40, num_layers=40,
        action=ActionConfig(num_blocks=20, rope_dims=8),  # first half of the blocks, as in mg3-5b
        # Per-block dim x dim camera layers would add 4.2B per expert; the published
        # 28B total (2x14B) leaves no room for them, so this variant has none.
        camera=False,
        moe_boundary=875.0,  # Wan2.2-A14B t2v boundary ratio 0.875
        cross_attn_residual_from_norm=True, vae=_wan21_vae(),
        height=704, width=1280, fps=16, memory_trained=True,
    )


# the speed options of engine/accel.py, here so the CLI can list them without importing torch
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")
ATTENTION_BACKENDS = ("auto", "cudnn", "flash", "efficient", "math")

PRESETS = {"tiny": tiny, "small": small, "ti2v-5b": ti2v_5b, "mg3-5b": mg3_5b, "a14b-moe": a14b_moe}


def get_preset(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    return cfg.replace(**overrides) if overrides else cfg

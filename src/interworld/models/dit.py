"""The Wan-style diffusion transformer with the Matrix-Game-3.0 additions.

Read top to bottom: patch embedding -> per-frame time embedding -> camera (Plucker)
embedding -> blocks (adaLN self-attention with 3D RoPE, camera scale/shift, text
cross-attention, action module in the first blocks, adaLN FFN) -> head -> unpatchify.
Parameter names follow the official Wan / Matrix-Game layout (`blocks.0.self_attn.q.weight`,
`patch_embedding_wancamctrl.weight`, `blocks.0.action_model.keyboard_embed.0.weight`, ...).

Attention is always `scaled_dot_product_attention`, so the GPU's fast backends apply.
The same weights serve both attention schemes: the caller chooses which frames see
which through `frame_mask` and a per-block KV prefix (the streaming cache).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from interworld.config import ModelConfig
from interworld.models.action import ActionModule
from interworld.models.norms import LayerNorm, RMSNorm
from interworld.models.rope import apply_rope, rope_3d, rope_rays

KV = tuple[torch.Tensor, torch.Tensor]


def sinusoidal_embedding(dim: int, t: torch.Tensor) -> torch.Tensor:
    """Wan's timestep embedding: [cos, sin] of t * 10000^(-i/half)."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    ang = t.double()[..., None] * freqs
    return torch.cat([ang.cos(), ang.sin()], dim=-1).float()


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool, eps: float):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps) if qk_norm else nn.Identity()

    def forward(self, x, cos, sin, mask=None, kv_prefix: KV | None = None) -> tuple[torch.Tensor, KV]:
        q = self.norm_q(self.q(x)).unflatten(-1, (self.heads, -1))
        k = self.norm_k(self.k(x)).unflatten(-1, (self.heads, -1))
        v = self.v(x).unflatten(-1, (self.heads, -1))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        ka, va = (k, v) if kv_prefix is None else (torch.cat([kv_prefix[0], k], 1), torch.cat([kv_prefix[1], v], 1))
        o = F.scaled_dot_product_attention(q.transpose(1, 2), ka.transpose(1, 2), va.transpose(1, 2), attn_mask=mask)
        return self.o(o.transpose(1, 2).flatten(2)), (k, v)


class CrossAttention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_norm: bool, eps: float):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps) if qk_norm else nn.Identity()

    def forward(self, x, context):
        q = self.norm_q(self.q(x)).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        k = self.norm_k(self.k(context)).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        v = self.v(context).unflatten(-1, (self.heads, -1)).transpose(1, 2)
        return self.o(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, index: int, with_action: bool):
        super().__init__()
        d, eps = cfg.dim, cfg.eps
        self.cfg = cfg
        self.norm1 = LayerNorm(d, eps, elementwise_affine=False)
        self.self_attn = SelfAttention(d, cfg.num_heads, cfg.qk_norm, eps)
        self.norm3 = LayerNorm(d, eps, elementwise_affine=True) if cfg.cross_attn_norm else nn.Identity()
        self.cross_attn = CrossAttention(d, cfg.num_heads, cfg.qk_norm, eps)
        self.norm2 = LayerNorm(d, eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, d))
        self.modulation = nn.Parameter(torch.randn(1, 6, d) / d**0.5)
        if cfg.camera:
            self.cam_injector_layer1 = nn.Linear(d, d)
            self.cam_injector_layer2 = nn.Linear(d, d)
            self.cam_scale_layer = nn.Linear(d, d)
            self.cam_shift_layer = nn.Linear(d, d)
            for lin in (self.cam_scale_layer, self.cam_shift_layer):  # a fresh camera path is the identity
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        self.action_model = ActionModule(cfg.action, d, cfg.vae.temporal, eps) if with_action else None

    def forward(self, x, e, cos, sin, context, s: "Step") -> tuple[torch.Tensor, KV]:
        """x [B, L, dim] float32 residual stream; e [B, F, 6, dim] per-frame modulation."""
        b, n_frames = e.shape[:2]
        dt = self.self_attn.q.weight.dtype
        mod = (self.modulation.float()[:, None] + e).unbind(2)  # 6 x [B, F, dim]

        def adaln(h, shift, scale):  # per-frame shift/scale over that frame's tokens
            h = h.unflatten(1, (n_frames, -1))
            return (h * (1 + scale[:, :, None]) + shift[:, :, None]).flatten(1, 2).to(dt)

        def gate(h, g):
            return (h.float().unflatten(1, (n_frames, -1)) * g[:, :, None]).flatten(1, 2)

        y, kv = self.self_attn(adaln(self.norm1(x), mod[0], mod[1]), cos, sin, s.mask, s.kv_prefix)
        x = x + gate(y, mod[2])
        if s.camera is not None and self.cfg.camera:
            c = s.camera
            hc = c + self.cam_injector_layer2(F.silu(self.cam_injector_layer1(c)))
            x = (1.0 + self.cam_scale_layer(hc).float()) * x + self.cam_shift_layer(hc).float()
        xn = self.norm3(x)
        x = (xn if self.cfg.cross_attn_residual_from_norm else x) + self.cross_attn(xn.to(dt), context).float()
        if self.action_model is not None and s.keyboard is not None:
            a = s.action_from
            xa = x.unflatten(1, (n_frames, -1))
            pos = s.frame_pos[..., a:]
            if pos.dim() == 2:  # per-sample positions (memory in training): the action frames' are shared
                pos = pos[0]
            ya = self.action_model(xa[:, a:].to(dt), s.keyboard, s.mouse, pos, s.action_mask)
            x = torch.cat([xa[:, :a], ya.float()], dim=1).flatten(1, 2)
        y = self.ffn(adaln(self.norm2(x), mod[3], mod[4]))
        return x + gate(y, mod[5]), kv


class Head(nn.Module):
    def __init__(self, dim: int, out: int, eps: float):
        super().__init__()
        self.norm = LayerNorm(dim, eps, elementwise_affine=False)
        self.head = nn.Linear(dim, out)
        self.modulation = nn.Parameter(torch.randn(1, 2, dim) / dim**0.5)

    def forward(self, x, e):
        n_frames = e.shape[1]
        shift, scale = (self.modulation.float()[:, None] + e[:, :, None]).unbind(2)
        h = self.norm(x).unflatten(1, (n_frames, -1)) * (1 + scale[:, :, None]) + shift[:, :, None]
        return self.head(h.flatten(1, 2).to(self.head.weight.dtype))


@dataclass
class Step:
    """What one forward needs besides the latents: positions, masks, conditions, cache."""

    frame_pos: torch.Tensor  # [F] latent-frame time positions, or [B, F] when samples differ
    mask: torch.Tensor | None = None
    kv_prefix: KV | None = None
    camera: torch.Tensor | None = None
    keyboard: torch.Tensor | None = None
    mouse: torch.Tensor | None = None
    action_from: int = 0
    # the clean latent [B, C, 1, h, w] before x's first frame, for models with cfg.prev_latent (the
    # streaming cache's last frame); None: the first frame starts a stream, or its past is not held
    prev: torch.Tensor | None = None
    action_mask: torch.Tensor | None = None
    # return each block's (k, v): only a cache or memory pass uses them, and holding them for
    # every block is 55 GB at a14b-moe's 66,880 tokens (a denoising step needs none of it)
    keep_kv: bool = True
    # each frame's camera (yaw, pitch) in degrees, [F, 2] or [S, F, 2]: models with cfg.ray_rope
    # rotate their row and column RoPE axes by where each token looks (models/rope.py, rope_rays)
    view: torch.Tensor | None = None


class WanDiT(nn.Module):
    def __init__(self, cfg: ModelConfig, with_action: bool = True):
        super().__init__()
        self.cfg = cfg
        d, p = cfg.dim, cfg.patch
        self.patch_embedding = nn.Conv3d(cfg.in_dim, d, kernel_size=p, stride=p)
        if cfg.prev_latent:
            if p[0] != 1:
                raise ValueError("prev_latent needs a temporal patch of 1")
            self.patch_embedding_prev = nn.Conv3d(cfg.in_dim, d, kernel_size=p, stride=p)
            nn.init.zeros_(self.patch_embedding_prev.weight)  # a fresh path changes nothing
            nn.init.zeros_(self.patch_embedding_prev.bias)
        if cfg.camera:
            self.patch_embedding_wancamctrl = nn.Linear(cfg.camera_in * math.prod(p), d)
            self.c2ws_hidden_states_layer1 = nn.Linear(d, d)
            self.c2ws_hidden_states_layer2 = nn.Linear(d, d)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        n_action = cfg.action.num_blocks if (cfg.action is not None and with_action) else 0
        self.blocks = nn.ModuleList(Block(cfg, i, i < n_action) for i in range(cfg.num_layers))
        self.head = Head(d, cfg.in_dim * math.prod(p), cfg.eps)

    @property
    def has_action(self) -> bool:
        return any(b.action_model is not None for b in self.blocks)

    def embed_text(self, context: torch.Tensor) -> torch.Tensor:
        """Pad/cut text states to text_len with zeros (as Wan does) and project to dim."""
        L = self.cfg.text_len
        if context.shape[1] < L:
            context = F.pad(context, (0, 0, 0, L - context.shape[1]))
        return self.text_embedding(context[:, :L].to(self.text_embedding[0].weight.dtype))

    def embed_camera(self, plucker: torch.Tensor) -> torch.Tensor:
        """plucker [B, F, camera_in, h, w] -> [B, F*h'*w', dim] with 1x2x2 patches."""
        pt, ph, pw = self.cfg.patch
        b, f, c, h, w = plucker.shape
        x = plucker.reshape(b, f // pt, pt, c, h // ph, ph, w // pw, pw)
        x = x.permute(0, 1, 4, 6, 3, 2, 5, 7).reshape(b, -1, c * pt * ph * pw)
        x = self.patch_embedding_wancamctrl(x.to(self.patch_embedding_wancamctrl.weight.dtype))
        return x + self.c2ws_hidden_states_layer2(F.silu(self.c2ws_hidden_states_layer1(x)))

    def embed_previous(self, x: torch.Tensor, step: Step) -> torch.Tensor:
        """Each frame's embedding of the latent frame before it in time: the one beside it in x when
        their positions are consecutive, step.prev for the first, zeros where none is given or
        where the frames after memory begin (step.action_from), as at a stream's start."""
        first = step.prev.to(x) if step.prev is not None else torch.zeros_like(x[:, :, :1])
        prev = torch.cat([first, x[:, :, :-1]], 2)
        pos = step.frame_pos.to(x.device)
        pos = pos[None] if pos.dim() == 1 else pos
        keep = torch.cat([torch.full_like(pos[:, :1], step.prev is not None, dtype=torch.bool),
                          pos[:, 1:] == pos[:, :-1] + 1], 1)
        if step.action_from:
            keep[:, step.action_from] = False
        prev = prev * keep[:, None, :, None, None].to(x.dtype)
        return self.patch_embedding_prev(prev.to(self.patch_embedding_prev.weight.dtype)).flatten(2).transpose(1, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor, step: Step,
                plucker: torch.Tensor | None = None, kv_prefix: list[KV] | None = None,
                text_embedded: bool = False) -> tuple[torch.Tensor, list[KV] | None]:
        """x [B, C, F, h, w] latents; t [B, F] timesteps in [0, 1000]; context [B, Lt, text_dim].

        Returns the predicted velocity [B, C, F, h, w] and each block's (k, v) of these tokens
        (None unless step.keep_kv).
        """
        cfg = self.cfg
        b, _, f, h, w = x.shape
        pt, ph, pw = cfg.patch
        gh, gw = h // ph, w // pw
        # contiguous: every block then sees the same memory layout (one compiled graph serves all)
        tokens = self.patch_embedding(x.to(self.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        if cfg.prev_latent:
            tokens = tokens + self.embed_previous(x, step)
        tokens = tokens.float().contiguous()
        e = self.time_embedding(sinusoidal_embedding(cfg.freq_dim, t).to(self.time_embedding[0].weight.dtype)).float()
        e0 = self.time_projection(e.to(self.time_projection[1].weight.dtype)).float().unflatten(-1, (6, -1))
        ctx = context if text_embedded else self.embed_text(context)
        # callers may build these on the CPU
        for name in ("frame_pos", "mask", "action_mask", "keyboard", "mouse", "view"):
            val = getattr(step, name)
            if val is not None:
                setattr(step, name, val.to(x.device))
        if cfg.ray_rope:
            if step.view is None:
                raise ValueError("this DiT places tokens by where they look (ray_rope): give each frame's "
                                 "(yaw, pitch) as Step.view")
            view = step.view if step.view.dim() == 3 else step.view[None]
            cos, sin = rope_rays(step.frame_pos, view, gh, gw, cfg.head_dim, cfg.num_heads, cfg.rope_theta,
                                 cfg.rope_sigma, cfg.kinematics.fov)
        else:
            cos, sin = rope_3d(step.frame_pos, gh, gw, cfg.head_dim, cfg.num_heads, cfg.rope_theta, cfg.rope_sigma)
        step.camera = self.embed_camera(plucker) if (plucker is not None and cfg.camera) else None
        kvs = []
        for i, block in enumerate(self.blocks):
            step.kv_prefix = None if kv_prefix is None else kv_prefix[i]
            tokens, kv = block(tokens, e0, cos, sin, ctx, step)
            if step.keep_kv:
                kvs.append(kv)
            del kv
        out = self.head(tokens, e)  # [B, L, C*pt*ph*pw]
        # Wan's unpatchify: each token's outputs are laid out (pt, ph, pw, C)
        out = out.float().reshape(b, f // pt, gh, gw, pt, ph, pw, -1)
        out = torch.einsum("bfhwpqrc->bcfphqwr", out).reshape(b, -1, f, h, w)
        return out, (kvs if step.keep_kv else None)


class MoEDiT(nn.Module):
    """Wan2.2-A14B style: a high-noise and a low-noise expert, switched by timestep.

    The expert is chosen per call from the largest timestep among the frames being
    denoised; actions live in the high-noise expert only (Matrix-Game-3.0's 2x14B).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.high_noise_model = WanDiT(cfg, with_action=True)
        self.low_noise_model = WanDiT(cfg, with_action=False)

    def expert(self, t: torch.Tensor) -> WanDiT:
        return self.high_noise_model if float(t.max()) >= self.cfg.moe_boundary else self.low_noise_model

    def experts(self):
        return [("high", self.high_noise_model), ("low", self.low_noise_model)]

    def forward(self, x, t, context, step, plucker=None, kv_prefix=None, text_embedded=False):
        return self.expert(t)(x, t, context, step, plucker, kv_prefix, text_embedded)


def build_dit(cfg: ModelConfig) -> nn.Module:
    return MoEDiT(cfg) if cfg.num_experts == 2 else WanDiT(cfg)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

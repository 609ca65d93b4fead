"""The Matrix-Game action module: keyboard and mouse conditioning inside DiT blocks.

Each latent frame sees a window of the last `windows * temporal` (= 12) video frames'
actions. The mouse window is concatenated to every token's hidden state, mixed by a
small MLP and a temporal self-attention over latent frames (per spatial position); the
keyboard window is embedded and attended by the video tokens through a cross-attention.
Both outputs go through zero-initialised projections, so a fresh module is the identity.
Parameter names follow the official release (`action_model.keyboard_embed.0.weight`, ...).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interworld.config import ActionConfig
from interworld.models.norms import RMSNorm
from interworld.models.rope import apply_rope, rope_1d


def action_windows(values: torch.Tensor, latent_idx: torch.Tensor, temporal: int, windows: int) -> torch.Tensor:
    """Per-latent windows of per-video-frame actions.

    values [B, T, C] for video frames 0..T-1; latent i ends at video frame temporal*i.
    Returns [B, len(latent_idx), windows*temporal, C]; frames before 0 repeat frame 0's action.
    """
    n = windows * temporal
    ends = latent_idx.to(torch.long) * temporal  # inclusive last video frame of each latent
    idx = ends[:, None] + torch.arange(-n + 1, 1, device=ends.device)[None, :]
    idx = idx.clamp(min=0, max=values.shape[1] - 1)
    return values[:, idx]


class ActionModule(nn.Module):
    def __init__(self, cfg: ActionConfig, dim: int, temporal: int, eps: float = 1e-6):
        super().__init__()
        self.cfg, self.temporal = cfg, temporal
        win = cfg.windows * temporal
        h = cfg.heads
        self.keyboard_embed = nn.Sequential(nn.Linear(cfg.keyboard_dim, cfg.hidden), nn.SiLU(),
                                            nn.Linear(cfg.hidden, cfg.hidden))
        # mouse: window of deltas + the token's hidden state -> temporal self-attention
        self.mouse_mlp = nn.Sequential(nn.Linear(cfg.mouse_dim * win + dim, cfg.mouse_hidden),
                                       nn.GELU(approximate="tanh"),
                                       nn.Linear(cfg.mouse_hidden, cfg.mouse_hidden),
                                       nn.LayerNorm(cfg.mouse_hidden))
        self.t_qkv = nn.Linear(cfg.mouse_hidden, 3 * cfg.mouse_hidden, bias=False)
        self.img_attn_q_norm = RMSNorm(cfg.mouse_hidden // h, eps)
        self.img_attn_k_norm = RMSNorm(cfg.mouse_hidden // h, eps)
        self.proj_mouse = nn.Linear(cfg.mouse_hidden, dim, bias=False)
        # keyboard: video tokens query the embedded key windows
        self.mouse_attn_q = nn.Linear(dim, cfg.keyboard_hidden, bias=False)
        self.keyboard_attn_kv = nn.Linear(cfg.hidden * win, 2 * cfg.keyboard_hidden, bias=False)
        self.key_attn_q_norm = RMSNorm(cfg.keyboard_hidden // h, eps)
        self.key_attn_k_norm = RMSNorm(cfg.keyboard_hidden // h, eps)
        self.proj_keyboard = nn.Linear(cfg.keyboard_hidden, dim, bias=False)
        nn.init.zeros_(self.proj_mouse.weight)
        nn.init.zeros_(self.proj_keyboard.weight)

    def forward(self, x: torch.Tensor, keyboard: torch.Tensor, mouse: torch.Tensor, frame_pos: torch.Tensor,
                frame_mask: torch.Tensor | None) -> torch.Tensor:
        """x [B, F, S, dim]; keyboard [B, F, win, 6]; mouse [B, F, win, 2]; frame_pos [F];
        frame_mask [F, F] bool (query frame may see key frame) or None for all."""
        b, f, s, _ = x.shape
        h = self.cfg.heads
        rd = self.cfg.rope_dims or self.cfg.mouse_hidden // h
        cos, sin = rope_1d(frame_pos, rd, self.cfg.rope_theta)

        def rope(t, c, s_):  # the first rd channels of each head turn with the frame index
            return apply_rope(t, c, s_) if t.shape[-1] == rd else torch.cat([apply_rope(t[..., :rd], c, s_),
                                                                               t[..., rd:]], -1)

        # mouse: temporal self-attention per spatial position
        m = mouse.flatten(2)[:, :, None, :].expand(b, f, s, -1).to(x.dtype)
        hm = self.mouse_mlp(torch.cat([x, m], dim=-1))
        q, k, v = self.t_qkv(hm).unflatten(-1, (3, h, -1)).unbind(-3)  # each [B, F, S, h, d]
        q, k = self.img_attn_q_norm(q), self.img_attn_k_norm(k)

        def per_position(t):  # [B, F, S, h, d] -> [B*S, F, h, d]
            return t.permute(0, 2, 1, 3, 4).reshape(b * s, f, h, -1)

        q, k, v = per_position(q), per_position(k), per_position(v)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                           attn_mask=frame_mask)
        o = o.transpose(1, 2).reshape(b, s, f, -1).transpose(1, 2)  # [B, F, S, hidden]
        x = x + self.proj_mouse(o)

        # keyboard: cross-attention from every token to the key windows of visible frames
        kb = self.keyboard_embed(keyboard.to(x.dtype)).flatten(2)  # [B, F, win*hidden]
        kk, kv = self.keyboard_attn_kv(kb).unflatten(-1, (2, h, -1)).unbind(-3)  # [B, F, h, d]
        kq = self.mouse_attn_q(x).unflatten(-1, (h, -1))  # [B, F, S, h, d]
        kq, kk = self.key_attn_q_norm(kq), self.key_attn_k_norm(kk)
        kq = rope(kq.reshape(b, f * s, h, -1), cos.repeat_interleave(s, 0), sin.repeat_interleave(s, 0))
        kk = rope(kk, cos, sin)
        mask = None if frame_mask is None else frame_mask.repeat_interleave(s, dim=0)
        o = F.scaled_dot_product_attention(kq.transpose(1, 2), kk.transpose(1, 2), kv.transpose(1, 2),
                                           attn_mask=mask)
        o = o.transpose(1, 2).reshape(b, f, s, -1)
        return x + self.proj_keyboard(o)

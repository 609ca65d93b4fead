"""The causal 3D VAE, in the Wan2.2 style.

Video [B, 3, 1 + temporal*k, H, W] <-> latents [B, z, 1 + k, H/spatial, W/spatial].
Temporal convolutions are causal (padded on the left only), so frame t never sees
frames after it, and the first frame gets a latent of its own. Wan2.2 first folds
2x2 pixels into channels (patch), then downsamples 8x by convolutions.

Decoding streams: `stream_decoder()` keeps each causal convolution's last input
frames (the feature cache), so latents can be decoded chunk by chunk as they are
generated, with exactly the result of decoding the whole sequence at once.
`dec_width_scale` < 1 prunes the decoder's widths (MG-LightVAE: 50% or 75%).

Two layouts share these parts: `arch="interworld"` (tiny, small: a compact chain of
blocks) and `arch="wan2.2"` (the full presets: Wan2.2's exact structure, so its official
weights load; see `Wan22Encoder3d` / `Wan22Decoder3d`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interworld.config import VAEConfig

State = dict  # module -> cached tail of its input frames (streaming), or None for whole sequences


class CausalConv3d(nn.Conv3d):
    """Conv3d with zero 'same' padding in space and causal padding in time."""

    def __init__(self, cin: int, cout: int, k: int | tuple = 3, stride: int | tuple = 1):
        k = (k, k, k) if isinstance(k, int) else k
        super().__init__(cin, cout, k, stride=stride, padding=0)
        self.tpad = k[0] - 1
        self.spad = (k[2] // 2, k[2] // 2, k[1] // 2, k[1] // 2)

    def forward(self, x: torch.Tensor, state: State | None = None) -> torch.Tensor:
        if self.tpad:
            prev = None if state is None else state.get(self)
            if prev is None:
                prev = x.new_zeros(x.shape[0], x.shape[1], self.tpad, *x.shape[3:])
            x = torch.cat([prev, x], 2)
            if state is not None:
                state[self] = x[:, :, -self.tpad:].detach()
        x = F.pad(x, self.spad + (0, 0))
        if x.device.type == "cpu" and self.stride == (1, 1, 1) and self.dilation == (1, 1, 1) and self.groups == 1:
            return _conv3d_by_frames(x, self.weight, self.bias)
        return super().forward(x)


def _conv3d_by_frames(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.conv3d (no padding, stride 1) as a sum over the kernel's time taps of 2D convolutions of
    shifted frames. On the CPU PyTorch runs 3D convolutions by its slow im2col path, where 2D ones
    go to oneDNN: the small VAE's decode is 2.5-3 times faster (its widest layer 7.5 times), with
    the same result to float rounding (benchmarks/RESULTS.md, 2026-11-27)."""
    b, c, t, h, w = x.shape
    kt = weight.shape[2]
    n = t - kt + 1
    frames = x.transpose(1, 2).contiguous()  # [B, T, C, H, W]: each window of n frames is one view
    out = None
    for d in range(kt):
        y = F.conv2d(frames[:, d:d + n].reshape(b * n, c, h, w), weight[:, :, d], bias if d == 0 else None)
        out = y if out is None else out.add_(y)
    return out.reshape(b, n, *out.shape[1:]).transpose(1, 2)


class ChannelRMSNorm(nn.Module):
    """Wan's RMS_norm over channels (dim 1): unit RMS, then a learned gain."""

    def __init__(self, dim: int, eps: float = 1e-12):
        super().__init__()
        self.scale, self.eps = dim**0.5, eps
        self.gamma = nn.Parameter(torch.ones(dim, 1, 1, 1))

    def forward(self, x):
        return F.normalize(x, dim=1, eps=self.eps) * self.scale * self.gamma


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1, self.conv1 = ChannelRMSNorm(cin), CausalConv3d(cin, cout, 3)
        self.norm2, self.conv2 = ChannelRMSNorm(cout), CausalConv3d(cout, cout, 3)
        self.shortcut = CausalConv3d(cin, cout, 1) if cin != cout else None

    def forward(self, x, state=None):
        h = self.conv1(F.silu(self.norm1(x)), state)
        h = self.conv2(F.silu(self.norm2(h)), state)
        return h + (x if self.shortcut is None else self.shortcut(x))


class FrameAttention(nn.Module):
    """Single-head self-attention over the pixels of each frame (no temporal mixing)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = ChannelRMSNorm(dim)
        self.to_qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.proj.weight)

    def forward(self, x, state=None):
        b, c, t, h, w = x.shape
        y = self.norm(x).transpose(1, 2).reshape(b * t, c, h, w)
        q, k, v = self.to_qkv(y).reshape(b * t, 3, c, h * w).transpose(-1, -2).unbind(1)
        o = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        o = self.proj(o.transpose(-1, -2).reshape(b * t, c, h, w))
        return x + o.reshape(b, t, c, h, w).transpose(1, 2)


def _per_frame(fn, x):
    b, c, t = x.shape[:3]
    y = fn(x.transpose(1, 2).reshape(b * t, c, *x.shape[3:]))
    return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


class Downsample(nn.Module):
    """2x spatial down, optionally 2x temporal: latent frame j >= 1 sees input frames
    2j-2 .. 2j, and frame 0 passes alone (the causal VAE's first-frame rule)."""

    def __init__(self, dim: int, temporal: bool):
        super().__init__()
        self.resample = nn.Conv2d(dim, dim, 3, stride=2, padding=0)
        self.time_conv = nn.Conv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1)) if temporal else None

    def forward(self, x, state=None):
        x = _per_frame(lambda y: self.resample(F.pad(y, (0, 1, 0, 1))), x)
        if self.time_conv is not None and x.shape[2] > 1:
            x = torch.cat([x[:, :, :1], self.time_conv(x)], 2)
        return x


class Upsample(nn.Module):
    """2x spatial up, optionally 2x temporal: frame 0 of the stream stays one frame, every
    later frame becomes two, made by a causal conv (so streaming needs its cache).

    `first_alone` is Wan2.2's rule: the temporal conv never sees frame 0, so frame 1 is
    made from zero padding and itself (the official decoder skips the conv on the first
    latent and starts its cache from zeros). Without it frame 0 feeds frame 1's conv.
    """

    def __init__(self, dim: int, out: int, temporal: bool, first_alone: bool = False):
        super().__init__()
        self.time_conv = CausalConv3d(dim, 2 * dim, (3, 1, 1)) if temporal else None
        self.resample = nn.Conv2d(dim, out, 3, padding=1)
        self.first_alone = first_alone

    def _double(self, x, state):
        b, c, t, h, w = x.shape
        y = self.time_conv(x, state).reshape(b, 2, c, t, h, w)
        return torch.stack([y[:, 0], y[:, 1]], 3).reshape(b, c, 2 * t, h, w)  # frame i -> 2i, 2i+1

    def forward(self, x, state=None):
        if self.time_conv is not None:
            seen = 0 if state is None else state.get((self, "frames"), 0)
            t = x.shape[2]
            if seen == 0 and self.first_alone:
                y = x[:, :, :1] if t == 1 else torch.cat([x[:, :, :1], self._double(x[:, :, 1:], state)], 2)
            else:
                y = self._double(x, state)
                if seen == 0:
                    y = torch.cat([x[:, :, :1], y[:, :, 2:]], 2)
            if state is not None:
                state[(self, "frames")] = seen + t
            x = y
        return _per_frame(lambda y: self.resample(F.interpolate(y, scale_factor=2.0, mode="nearest")), x)


def _widths(base: int, mult, scale: float = 1.0) -> list[int]:
    return [max(8, int(round(base * m * scale / 8)) * 8) for m in mult]


def _encoder_middle_and_head(c: int, cfg: VAEConfig) -> tuple[nn.ModuleList, nn.ModuleList]:
    """What both encoder layouts end with: two residual blocks (attention between them) and the
    norm + convolution to the latent mean and log-variance."""
    mid = [ResidualBlock(c, c)] + ([FrameAttention(c)] if cfg.attn_mid else []) + [ResidualBlock(c, c)]
    return nn.ModuleList(mid), nn.ModuleList([ChannelRMSNorm(c), CausalConv3d(c, 2 * cfg.z_dim, 3)])


class Encoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        dims = _widths(cfg.dim, cfg.dim_mult)
        self.conv1 = CausalConv3d(3 * cfg.patch**2, dims[0], 3)
        layers, cin = [], dims[0]
        for i, d in enumerate(dims):
            for _ in range(cfg.num_res_blocks):
                layers.append(ResidualBlock(cin, d))
                cin = d
            if i < len(dims) - 1:
                layers.append(Downsample(d, cfg.temporal_down[i] if i < len(cfg.temporal_down) else False))
        self.downsamples = nn.ModuleList(layers)
        self.middle, self.head = _encoder_middle_and_head(cin, cfg)

    def forward(self, x):
        x = self.conv1(x)
        for m in list(self.downsamples) + list(self.middle):
            x = m(x)
        return self.head[1](F.silu(self.head[0](x)))


class Decoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        dims = _widths(cfg.dec_dim, cfg.dim_mult, cfg.dec_width_scale)[::-1]
        ups = list(cfg.temporal_down)[::-1] + [False] * (len(dims) - 1 - len(cfg.temporal_down))
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3)
        mid = [ResidualBlock(dims[0], dims[0])] + ([FrameAttention(dims[0])] if cfg.attn_mid else []) + \
              [ResidualBlock(dims[0], dims[0])]
        self.middle = nn.ModuleList(mid)
        layers, cin = [], dims[0]
        for i, d in enumerate(dims):
            for _ in range(cfg.num_res_blocks + 1):
                layers.append(ResidualBlock(cin, d))
                cin = d
            if i < len(dims) - 1:
                nxt = dims[i + 1]
                layers.append(Upsample(d, nxt, ups[i]))
                cin = nxt
        self.upsamples = nn.ModuleList(layers)
        self.head = nn.ModuleList([ChannelRMSNorm(cin), CausalConv3d(cin, 3 * cfg.patch**2, 3)])

    def forward(self, z, state: State | None = None):
        x = self.conv1(z, state)
        for m in list(self.middle) + list(self.upsamples):
            x = m(x, state)
        return self.head[1](F.silu(self.head[0](x)), state)


# ------------------------------------------------------------------ the Wan2.2 layout
class AvgDown(nn.Module):
    """Parameter-free shortcut of a Wan2.2 down group: fold ft x fs x fs neighbours into
    channels and average them in groups down to `cout` (time is zero-padded in front to
    a multiple of ft, which keeps frame 0 alone)."""

    def __init__(self, cin: int, cout: int, ft: int, fs: int):
        super().__init__()
        self.cout, self.ft, self.fs = cout, ft, fs
        if (cin * ft * fs * fs) % cout:
            raise ValueError(f"AvgDown cannot fold {cin} channels x {ft * fs * fs} into {cout}")

    def forward(self, x):
        ft, fs = self.ft, self.fs
        x = F.pad(x, (0, 0, 0, 0, (ft - x.shape[2] % ft) % ft, 0))
        b, c, t, h, w = x.shape
        x = x.reshape(b, c, t // ft, ft, h // fs, fs, w // fs, fs).permute(0, 1, 3, 5, 7, 2, 4, 6)
        return x.reshape(b, self.cout, -1, t // ft, h // fs, w // fs).mean(2)


class DupUp(nn.Module):
    """Parameter-free shortcut of a Wan2.2 up group: repeat channels and unfold them into
    ft x fs x fs neighbours; at the start of a stream the first ft-1 frames are dropped."""

    def __init__(self, cin: int, cout: int, ft: int, fs: int):
        super().__init__()
        self.cout, self.ft, self.fs = cout, ft, fs
        if (cout * ft * fs * fs) % cin:
            raise ValueError(f"DupUp cannot unfold {cin} channels into {cout} x {ft * fs * fs}")
        self.repeats = cout * ft * fs * fs // cin

    def forward(self, x, first: bool):
        ft, fs = self.ft, self.fs
        b, _, t, h, w = x.shape
        x = x.repeat_interleave(self.repeats, dim=1).reshape(b, self.cout, ft, fs, fs, t, h, w)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, self.cout, t * ft, h * fs, w * fs)
        return x[:, :, ft - 1:] if first else x


class DownGroup(nn.Module):
    """Wan2.2's residual down block: residual blocks, then a downsample, around an AvgDown."""

    def __init__(self, cin: int, cout: int, n_res: int, temporal: bool, down: bool):
        super().__init__()
        self.avg_shortcut = AvgDown(cin, cout, 2 if temporal else 1, 2 if down else 1)
        layers = [ResidualBlock(cin if j == 0 else cout, cout) for j in range(n_res)]
        if down:
            layers.append(Downsample(cout, temporal))
        self.downsamples = nn.ModuleList(layers)

    def forward(self, x):
        y = x
        for m in self.downsamples:
            y = m(y)
        return y + self.avg_shortcut(x)


class UpGroup(nn.Module):
    """Wan2.2's residual up block: residual blocks, then an upsample, around a DupUp."""

    def __init__(self, cin: int, cout: int, n_res: int, temporal: bool, up: bool):
        super().__init__()
        self.avg_shortcut = DupUp(cin, cout, 2 if temporal else 1, 2) if up else None
        layers = [ResidualBlock(cin if j == 0 else cout, cout) for j in range(n_res)]
        if up:
            layers.append(Upsample(cout, cout, temporal, first_alone=True))
        self.upsamples = nn.ModuleList(layers)

    def forward(self, x, state=None):
        seen = 0 if state is None else state.get((self, "frames"), 0)
        if state is not None:
            state[(self, "frames")] = seen + x.shape[2]
        y = x
        for m in self.upsamples:
            y = m(y, state)
        return y if self.avg_shortcut is None else y + self.avg_shortcut(x, first=seen == 0)


class Wan22Encoder3d(Encoder3d):
    """Widths dim x (1, *dim_mult); one DownGroup per step, the last without downsampling.
    Only the down path differs from Encoder3d: the forward pass is the same."""

    def __init__(self, cfg: VAEConfig):
        nn.Module.__init__(self)
        dims = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        n = len(cfg.dim_mult)
        self.conv1 = CausalConv3d(3 * cfg.patch**2, dims[0], 3)
        self.downsamples = nn.ModuleList(
            DownGroup(dims[i], dims[i + 1], cfg.num_res_blocks,
                      cfg.temporal_down[i] if i < len(cfg.temporal_down) else False, i < n - 1)
            for i in range(n))
        self.middle, self.head = _encoder_middle_and_head(dims[-1], cfg)


class Wan22Decoder3d(nn.Module):
    """Widths base x (m_last, *reversed(dim_mult)), base = dec_dim x dec_width_scale (MG-LightVAE
    prunes the base as round(256 (1 - rate)))."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        base = int(round(cfg.dec_dim * cfg.dec_width_scale))
        mult = list(cfg.dim_mult)
        dims = [base * m for m in [mult[-1]] + mult[::-1]]
        ups = list(cfg.temporal_down)[::-1]
        n = len(mult)
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3)
        c = dims[0]
        mid = [ResidualBlock(c, c)] + ([FrameAttention(c)] if cfg.attn_mid else []) + [ResidualBlock(c, c)]
        self.middle = nn.ModuleList(mid)
        self.upsamples = nn.ModuleList(
            UpGroup(dims[i], dims[i + 1], cfg.num_res_blocks + 1, ups[i] if i < len(ups) else False, i < n - 1)
            for i in range(n))
        self.head = nn.ModuleList([ChannelRMSNorm(dims[-1]), CausalConv3d(dims[-1], 3 * cfg.patch**2, 3)])

    def forward(self, z, state: State | None = None):
        x = self.conv1(z, state)
        for m in self.middle:
            x = m(x, state)
        for m in self.upsamples:
            x = m(x, state)
        return self.head[1](F.silu(self.head[0](x)), state)


def patchify(video: torch.Tensor, p: int, arch: str) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, C p p, T, H/p, W/p]. interworld orders the folded channels
    (c, row, column) as pixel_unshuffle does; Wan2.2 orders them (c, column, row)."""
    if p == 1:
        return video
    if arch != "wan2.2":
        return _per_frame(lambda y: F.pixel_unshuffle(y, p), video)
    b, c, t, h, w = video.shape
    x = video.reshape(b, c, t, h // p, p, w // p, p).permute(0, 1, 6, 4, 2, 3, 5)
    return x.reshape(b, c * p * p, t, h // p, w // p)


def unpatchify(x: torch.Tensor, p: int, arch: str) -> torch.Tensor:
    if p == 1:
        return x
    if arch != "wan2.2":
        return _per_frame(lambda y: F.pixel_shuffle(y, p), x)
    b, cpp, t, h, w = x.shape
    x = x.reshape(b, cpp // (p * p), p, p, t, h, w).permute(0, 1, 4, 5, 3, 6, 2)
    return x.reshape(b, cpp // (p * p), t, h * p, w * p)


class CausalVAE(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        if cfg.arch not in ("interworld", "wan2.2"):
            raise ValueError(f"unknown VAE arch {cfg.arch!r}: use 'interworld' or 'wan2.2'")
        self.cfg = cfg
        wan = cfg.arch == "wan2.2"
        self.encoder = Wan22Encoder3d(cfg) if wan else Encoder3d(cfg)
        self.conv1 = CausalConv3d(2 * cfg.z_dim, 2 * cfg.z_dim, 1)
        self.conv2 = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)
        self.decoder = Wan22Decoder3d(cfg) if wan else Decoder3d(cfg)
        # Wan normalises latents per channel with fixed statistics of its training data
        self.register_buffer("latents_mean", torch.zeros(cfg.z_dim))
        self.register_buffer("latents_std", torch.ones(cfg.z_dim))

    # ------------------------------------------------------------------ encode
    def _check(self, video):
        t, h, w = video.shape[2:]
        s, r = self.cfg.spatial, self.cfg.temporal
        if (t - 1) % r or h % s or w % s:
            raise ValueError(f"the VAE needs 1 + {r}k frames and sizes divisible by {s}, got {t}x{h}x{w}")

    def encode_dist(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """video [B, 3, T, H, W] in [-1, 1] -> (mean, logvar), each [B, z, 1 + (T-1)/temporal, h, w]."""
        self._check(video)
        x = patchify(video, self.cfg.patch, self.cfg.arch)
        mu, logvar = self.conv1(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def encode(self, video: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        mu, logvar = self.encode_dist(video)
        if not sample:
            return mu
        eps = torch.randn(mu.shape, generator=generator).to(mu) if generator is not None else torch.randn_like(mu)
        return mu + (0.5 * logvar).exp() * eps

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction from a sampled latent, mean, log-variance)."""
        mu, logvar = self.encode_dist(video)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        return self._decode(z, None), mu, logvar

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).mean()

    # ------------------------------------------------------------------ decode
    def _decode(self, z: torch.Tensor, state: State | None) -> torch.Tensor:
        x = unpatchify(self.decoder(self.conv2(z, state), state), self.cfg.patch, self.cfg.arch)
        return x.clamp(-1.0, 1.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Whole-sequence decode: latents [B, z, F, h, w] -> video [B, 3, 1 + temporal(F-1), H, W]."""
        return self._decode(z, None)

    def stream_decoder(self) -> "StreamDecoder":
        return StreamDecoder(self)

    # ------------------------------------------------------------------ normalisation
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.latents_mean.view(1, -1, 1, 1, 1)) / self.latents_std.view(1, -1, 1, 1, 1)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.latents_std.view(1, -1, 1, 1, 1) + self.latents_mean.view(1, -1, 1, 1, 1)


def decode_after(vae: CausalVAE, z: torch.Tensor, history: int) -> torch.Tensor:
    """Decode z [B, C, F, h, w] as one stream, returning only the video of latents `history` on:
    the first ones just build the decoder's causal state, without gradients."""
    state: dict = {}
    if history:
        with torch.no_grad():
            vae._decode(z[:, :, :history], state)
    return vae._decode(z[:, :, history:], state)


def frames_after(video: torch.Tensor, history: int, temporal: int) -> torch.Tensor:
    """The frames of `video` [B, 3, T, H, W] covered by its latents from `history` on."""
    return video[:, :, 1 + (history - 1) * temporal:] if history else video


class StreamDecoder:
    """Decodes latents chunk by chunk; the first latent frame gives 1 video frame, each later
    one `temporal` frames, and the result equals decoding everything at once."""

    def __init__(self, vae: CausalVAE):
        self.vae = vae
        self.state: State = {}

    def reset(self) -> None:
        self.state = {}

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """One latent frame at a time (as Wan does): memory stays that of a single frame."""
        dt = self.vae.conv2.weight.dtype
        return torch.cat([self.vae._decode(z[:, :, i:i + 1].to(dt), self.state) for i in range(z.shape[2])], 2).float()

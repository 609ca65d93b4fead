"""The Python API: `World.from_pretrained(...)`, `world.reset(image, prompt)`, `world.step(actions)`.

A World owns the three models (DiT, VAE, text encoder) and one stream's state; frames
come out as uint8 arrays [T, H, W, 3], decoded chunk by chunk through the VAE's
streaming decoder.
"""

from __future__ import annotations

import time
import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from interworld.config import ModelConfig, get_preset, PRESETS
from interworld.engine import actions as act
from interworld.engine.generator import Generator
from interworld.io.checkpoint import CheckpointError, load_into, load_tensors, read_config
from interworld.io.official import is_official, load_official
from interworld.models.dit import build_dit
from interworld.models.text import BuiltinTextEncoder, UMT5TextEncoder
from interworld.models.vae import CausalVAE


def shipped_model_dir(name: str = "small") -> Path | None:
    """The trained model inside the package, if this build ships one."""
    p = Path(str(resources.files("interworld"))) / "assets" / name
    return p if (p / "config.json").is_file() else None


def load_image(image, height: int, width: int) -> torch.Tensor:
    """Path / PIL / uint8 array -> [1, 3, 1, H, W] in [-1, 1], centre-cropped to the aspect."""
    if isinstance(image, (str, Path)):
        p = Path(image)
        if not p.is_file():
            raise FileNotFoundError(f"image {str(p)!r} does not exist")
        try:
            image = Image.open(p)
            image.load()
        except Exception:
            raise ValueError(f"{str(p)!r} is not an image PIL can read (use PNG or JPEG)") from None
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a path, PIL image or uint8 array, not {type(image).__name__}")
    image = image.convert("RGB")
    w0, h0 = image.size
    scale = max(width / w0, height / h0)
    image = image.resize((max(width, round(w0 * scale)), max(height, round(h0 * scale))), Image.BICUBIC)
    left, top = (image.size[0] - width) // 2, (image.size[1] - height) // 2
    image = image.crop((left, top, left + width, top + height))
    x = torch.from_numpy(np.asarray(image).copy()).float().div(127.5).sub(1.0)
    return x.permute(2, 0, 1)[None, :, None]


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """[B=1, 3, T, H, W] in [-1, 1] -> [T, H, W, 3] uint8."""
    v = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return v.permute(1, 2, 3, 0).cpu().numpy()


class World:
    def __init__(self, cfg: ModelConfig, dit, vae: CausalVAE, text_encoder, device="cpu", dtype=torch.float32,
                 scheme: str | None = None, steps: int | None = None, memory: bool | None = None, motion=None):
        self.cfg, self.dit, self.vae, self.text_encoder = cfg, dit, vae, text_encoder
        self.device, self.dtype = torch.device(device), dtype
        # memory retrieval: on by default only for weights trained to use it
        self.scheme, self.steps = scheme or cfg.scheme, steps
        self.memory = cfg.memory_trained if memory is None else memory
        self.gen: Generator | None = None
        self.motion = motion  # a learned action-to-motion model (models/motion.py), when the checkpoint has one
        self.decoder = None
        self.last_timings: dict[str, float] = {}
        self.attention = "auto"  # the SDPA backend the DiT runs under (engine/accel.py)
        self.offloader = None

    def accelerate(self, *, compile: str | None = None, quantize: str | None = None, offload: str | None = None,
                   attention: str = "auto") -> "World":
        """Speed-ups around the unchanged DiT (engine/accel.py). `offload`: a GPU to run on while
        the blocks' weights stay in host memory; the world must have been built on the CPU,
        and its VAE and text encoder move to that GPU."""
        from interworld.engine.accel import accelerate, attention_backend

        attention_backend(attention)  # refuses an unknown name now, not at the first step
        if offload:
            if self.device.type != "cpu":
                raise ValueError("offload needs the world built on the CPU (device='cpu'), where the weights stay")
            self.device = torch.device(offload)
            self.vae = self.vae.to(self.device, self.dtype if self.device.type == "cuda" else torch.float32)
            if isinstance(self.text_encoder, torch.nn.Module):  # umT5 stays on the CPU: it runs once per prompt
                self.text_encoder = self.text_encoder.to(self.device)
        self.offloader = accelerate(self.dit, compile=compile, quantize=quantize, offload=offload)
        self.attention = attention
        return self

    # ------------------------------------------------------------------ building
    @classmethod
    def from_pretrained(cls, path_or_preset: str = "small", *, device: str = "cpu", dtype: torch.dtype | None = None,
                        random_init: bool = False, text_encoder_path: str | None = None, seed: int = 0,
                        **kw) -> "World":
        """A checkpoint folder, or a preset name (the shipped weights for `small`).

        The folder may also be an official release as downloaded (Wan2.2-TI2V-5B, its diffusers
        variant, Wan2.2-A14B, Matrix-Game-3.0): it is detected and streamed in (`from_official`).

        `random_init=True` builds a preset with random weights, for smoke runs and benchmarks.
        """
        dtype = dtype or torch.float32
        path = Path(path_or_preset).expanduser()
        tensors = None
        if path.is_dir() and is_official(path):  # Wan2.2 / Matrix-Game-3.0 as released
            return cls.from_official(path, device=device, dtype=dtype, text_encoder_path=text_encoder_path, **kw)
        if path.is_dir():
            cfg, _ = read_config(path)
            tensors = load_tensors(path)
        elif path_or_preset in PRESETS:
            cfg = get_preset(path_or_preset)
            shipped = shipped_model_dir(path_or_preset)
            if not random_init:
                if shipped is None:
                    raise CheckpointError(
                        f"no trained weights for preset {path_or_preset!r} ship with this package; pass a checkpoint "
                        f"folder, or use random_init=True (--random-init) for a smoke run")
                cfg, _ = read_config(shipped)
                tensors = load_tensors(shipped)
        else:
            raise CheckpointError(f"{path_or_preset!r} is neither a checkpoint folder nor a preset "
                                  f"({', '.join(PRESETS)})")
        return cls.from_config(cfg, device=device, dtype=dtype, tensors=tensors, where=str(path),
                               text_encoder_path=text_encoder_path, seed=seed, **kw)

    @classmethod
    def from_official(cls, path, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
                      text_encoder_path: str | None = None, variant: str | None = None, vae: str = "auto",
                      **kw) -> "World":
        """An official Wan2.2 / Matrix-Game-3.0 folder, streamed onto `device` in `dtype`; its umT5
        encoder is used when its weights are there as safetensors (else empty text states)."""
        loaded = load_official(path, device=device, dtype=dtype, variant=variant, vae=vae)
        for note in loaded.report.notes:
            warnings.warn(f"{path}: {note}", stacklevel=2)
        text = None
        try:
            text = UMT5TextEncoder(text_encoder_path or str(loaded.layout.text_dir or path), loaded.cfg.text_len, device)
        except (CheckpointError, FileNotFoundError, RuntimeError) as e:
            if text_encoder_path:
                raise
            warnings.warn(f"{path}: no umT5 encoder loaded ({e}); prompts become empty text states", stacklevel=2)
        vae_mod = loaded.vae
        if vae_mod is None:  # no loadable VAE there: a fresh one, as a preset with random_init gets
            vae_mod = CausalVAE(loaded.cfg.vae).to(device, dtype if torch.device(device).type == "cuda" else torch.float32)
        return cls(loaded.cfg, loaded.dit, vae_mod.eval(), text, device, dtype, **kw)

    @classmethod
    def from_config(cls, cfg: ModelConfig, *, device: str = "cpu", dtype: torch.dtype = torch.float32,
                    tensors: dict | None = None, where: str = "checkpoint", text_encoder_path: str | None = None,
                    seed: int = 0, **kw) -> "World":
        """Build the models of `cfg` on `device` (random weights unless `tensors` are given)."""
        torch.manual_seed(seed)
        with torch.device(device):  # build in place: a 5B model initialises in seconds on a GPU
            vae = CausalVAE(cfg.vae)
            old = torch.get_default_dtype()
            torch.set_default_dtype(dtype)  # a 2x14B model must never exist in float32 on the GPU
            try:
                dit = build_dit(cfg)
            finally:
                torch.set_default_dtype(old)
            text = (BuiltinTextEncoder(cfg.text_dim, cfg.text_len, cfg.builtin_text_layers)
                    if cfg.text_encoder == "builtin" else None)
        motion = None
        if tensors is not None and any(k.startswith("motion.") for k in tensors):
            from interworld.models.motion import MotionModel

            motion = MotionModel(n_keys=tensors["motion.net.0.weight"].shape[1] - 2)
            load_into(motion, tensors, "motion", where)
            motion.eval()
        if tensors is not None:
            load_into(dit, tensors, "dit", where)
            load_into(vae, tensors, "vae", where)
            if text is not None:
                load_into(text, tensors, "text", where)
        if cfg.text_encoder != "builtin" and text_encoder_path:
            text = UMT5TextEncoder(text_encoder_path, cfg.text_len, device)
        dit = dit.to(device, dtype).eval()
        # on the CPU the VAE stays float32; on a GPU it runs in the DiT's precision for speed
        vae = vae.to(device, dtype if torch.device(device).type == "cuda" else torch.float32).eval()
        if isinstance(text, torch.nn.Module):
            text = text.to(device).eval()
        return cls(cfg, dit, vae, text, device, dtype, motion=motion, **kw)

    # ------------------------------------------------------------------ the stream
    @property
    def frames_per_step(self) -> int:
        if self.gen is None:
            raise RuntimeError("call reset() first")
        return self.gen.frames_for_next()

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> torch.Tensor:
        prompt = prompt or self.cfg.train_prompt or ""  # no prompt: the one the model was trained with
        if self.text_encoder is None:
            # full presets without a umT5 folder: zero text states, as an empty prompt pads to
            return torch.zeros(1, 1, self.cfg.text_dim, device=self.device)
        return self.text_encoder([prompt]).to(self.device)

    @torch.no_grad()
    def reset(self, image, prompt: str = "", *, seed: int = 0, pose=None, height: int | None = None,
              width: int | None = None) -> np.ndarray:
        """Start a new stream from `image`; returns the first frame [1, H, W, 3] uint8."""
        t0 = time.perf_counter()
        z0, ctx = self.encode_start(image, prompt, height, width)
        self.begin(z0, ctx, seed=seed, pose=pose)
        self.decoder = self.vae.stream_decoder()
        first = self.decoder.decode(self.vae.denormalize(z0.float()))
        self.last_timings = {"reset_s": time.perf_counter() - t0, "text_s": self.last_timings["text_s"]}
        return to_uint8(first)

    @torch.no_grad()
    def encode_start(self, image, prompt: str = "", height: int | None = None,
                     width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first half of `reset`: the clean latent of the start image [1, C, 1, h, w] (float32)
        and the text states. Split out so that several processes can share one encoding (engine/parallel.py)."""
        h, w = height or self.cfg.height, width or self.cfg.width
        s = self.cfg.vae.spatial * self.cfg.patch[1]
        if h % s or w % s:
            raise ValueError(f"height and width must be multiples of {s} for this model, got {h}x{w}")
        x = load_image(image, h, w).to(self.device)
        z0 = self.vae.normalize(self.vae.encode(x.to(next(self.vae.parameters()).dtype)).float())
        t1 = time.perf_counter()
        ctx = self.encode_prompt(prompt)
        self.last_timings = {"text_s": time.perf_counter() - t1}
        return z0, ctx

    @torch.no_grad()
    def begin(self, z0: torch.Tensor, ctx: torch.Tensor, *, seed: int | list[int] = 0, pose=None,
              per_item: bool = False) -> None:
        """The second half of `reset`: a new generator started from z0 (its size gives the frame size);
        per_item: z0 holds several streams, each under its own actions (eval/rollout.py's `rollouts`);
        seed: one for the batch, or one per stream, each drawing its own noise."""
        s = self.cfg.vae.spatial
        self.gen = Generator(self.dit, self.cfg, ctx, scheme=self.scheme, steps=self.steps, seed=seed,
                             height=z0.shape[-2] * s, width=z0.shape[-1] * s, memory=self.memory, motion=self.motion)
        pose = None if pose is None else torch.as_tensor(pose, dtype=torch.float32)
        self.gen.start(z0.to(self.device, self.dtype), pose, per_item=per_item)

    @torch.no_grad()
    def step(self, actions=None) -> np.ndarray:
        """Generate the next chunk. `actions`: a list of per-frame {"keys", "mouse"} entries,
        a (keys [T, 6], mouse [T, 2]) pair, or None (stand still). Fewer frames than
        `frames_per_step` hold the last keys. Returns [T, H, W, 3] uint8."""
        if self.gen is None:
            raise RuntimeError("call reset(image, prompt) before step()")
        n = self.gen.frames_for_next()
        if actions is None:
            keys, mouse = torch.zeros(0, 6), torch.zeros(0, 2)
        elif isinstance(actions, tuple):
            keys, mouse = actions
        else:
            keys, mouse = act.parse_entries(list(actions))
        if keys.shape[0] > n:
            raise ValueError(f"got actions for {keys.shape[0]} frames; this step makes {n}")
        keys, mouse = act.fit(keys, mouse, n)
        from interworld.engine.accel import attention_backend

        t0 = time.perf_counter()
        with attention_backend(self.attention):
            z = self.gen.next_chunk(keys, mouse)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        video = self.decoder.decode(self.vae.denormalize(z.float()))
        frames = to_uint8(video)
        t2 = time.perf_counter()
        self.last_timings = {"denoise_s": t1 - t0, "decode_s": t2 - t1, "frames": frames.shape[0]}
        return frames

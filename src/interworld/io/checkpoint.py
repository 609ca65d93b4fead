"""interworld's own checkpoint layout: a folder with `config.json` and `model.safetensors`.

Tensors are stored with a prefix per part (`dit.`, `vae.`, `text.`). Files are written
to a temporary name and renamed, so a crash never leaves a half-written checkpoint.
Loading names every missing, unexpected or misshapen key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from interworld.config import ModelConfig
from interworld.io.quant import dequantize, is_quantized, quantize

WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class CheckpointError(ValueError):
    pass


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: str | Path, cfg: ModelConfig, parts: dict[str, nn.Module | dict], extra: dict | None = None,
                    int8: bool = False) -> Path:
    """parts: {"dit": module, "vae": module, ...}; extra: JSON-able metadata (step, metrics...).
    int8: store weight matrices in 8 bits (io/quant.py), a quarter of float32's bytes."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for prefix, part in parts.items():
        sd = part.state_dict() if isinstance(part, nn.Module) else part
        for k, v in sd.items():
            tensors[f"{prefix}.{k}"] = v.detach().to("cpu").contiguous()
    if int8:
        tensors = quantize(tensors)
    tmp = path / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "interworld", "parts": ",".join(parts)})
    os.replace(tmp, path / WEIGHTS)
    meta = {"model": cfg.to_dict(), **(extra or {})}
    atomic_write_bytes(path / CONFIG, json.dumps(meta, indent=2).encode())
    return path


CARRIED = ("motion",)  # parts no training run changes: the learned action-to-motion model (train motion)


def carried_parts(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """The CARRIED parts a checkpoint has, as save_checkpoint takes them: a run started from it
    writes them into its own checkpoints unchanged. Without the motion model generate, play and
    eval integrate camera poses with the fixed kinematics instead (docs/TRAINING.md, run 30)."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name in CARRIED:
        part = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
        if part:
            out[name] = part
    return out


def carried_meta(carried: dict, meta: dict) -> dict:
    """What a checkpoint's metadata says of its CARRIED parts (e.g. the motion model's report), for
    the run that carries them."""
    return {name: meta[name] for name in carried if name in meta}


def read_config(path: str | Path) -> tuple[ModelConfig, dict]:
    path = Path(path)
    f = path / CONFIG
    meta = json.loads(f.read_text()) if f.is_file() else None
    if meta is None or "model" not in meta:
        from interworld.io.official import EXPECTED, detect, is_official

        if is_official(path):  # an official release: it must be read through the official loader
            raise CheckpointError(f"{str(path)!r} is a {detect(path).name} folder, not an interworld checkpoint: "
                                  f"convert it first with `interworld convert {path} OUT` and use OUT")
        if meta is None:
            raise CheckpointError(f"{str(path)!r} is not an interworld checkpoint: no {CONFIG} in it; "
                                  f"expected {EXPECTED}")
        raise CheckpointError(f"{f} has no 'model' section")
    return ModelConfig.from_dict(meta.pop("model")), meta


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    f = Path(path) / WEIGHTS
    if not f.is_file():
        raise CheckpointError(f"no {WEIGHTS} in {str(path)!r}")
    tensors = load_file(str(f), device=str(device))
    return dequantize(tensors) if is_quantized(tensors) else tensors  # 8-bit storage (io/quant.py)


def mismatch(missing, unexpected, misshapen, twice=()) -> str:
    """One line naming the keys that do not fit (the first 8 of each kind)."""
    def few(xs):
        xs = list(xs)
        return ", ".join(xs[:8]) + (f" (+{len(xs) - 8} more)" if len(xs) > 8 else "")
    parts = [f"{what} {len(xs)} keys: {few(xs)}" for what, xs in
             (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen)) if xs]
    if twice:
        parts.append(f"given twice: {few(twice)}")
    return "; ".join(parts)


def load_into(module: nn.Module, tensors: dict[str, torch.Tensor], prefix: str, where: str = "checkpoint") -> None:
    """Load `prefix.*` tensors into module; raise naming every key that does not fit."""
    sd = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(sd) & set(own) if sd[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        raise CheckpointError(f"{where} does not fit the '{prefix}' model: " + mismatch(missing, unexpected, shapes))
    module.load_state_dict(sd, strict=True)

"""8-bit storage of checkpoints: how the shipped model fits its size budget.

Each weight matrix and convolution kernel is stored as int8 with one float16 scale per
output channel (symmetric, absmax / 127); biases, norms and small tensors stay float16.
Loading turns them back into floats, so the model computes in float as before: this is
storage only, not int8 inference (that is torchao's job, on GPUs).
"""

from __future__ import annotations

import torch

SCALE = ".__int8_scale"  # suffix of the per-channel scale tensor stored beside each int8 weight
MIN_NUMEL = 4096  # smaller tensors gain nothing from 8 bits


def quantize(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in tensors.items():
        if v.is_floating_point() and v.dim() >= 2 and v.numel() >= MIN_NUMEL:
            w = v.float().reshape(v.shape[0], -1)
            scale = (w.abs().amax(1) / 127.0).clamp(min=1e-12)
            out[k] = (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8).reshape(v.shape)
            out[k + SCALE] = scale.half()
        else:
            out[k] = v.half() if v.is_floating_point() else v
    return out


def dequantize(tensors: dict[str, torch.Tensor], dtype=torch.float32) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in tensors.items():
        if k.endswith(SCALE):
            continue
        s = tensors.get(k + SCALE)
        if s is not None:
            out[k] = (v.float().reshape(v.shape[0], -1) * s.float()[:, None]).reshape(v.shape).to(dtype)
        else:
            out[k] = v.to(dtype) if v.is_floating_point() else v
    return out


def is_quantized(tensors: dict[str, torch.Tensor]) -> bool:
    return any(k.endswith(SCALE) for k in tensors)

"""Quantization applied as a wrapper around an unchanged model (torchao).

`int8` is torchao's INT8 weight-only quantization of the DiT's linear layers: weights are
stored in 8 bits with a scale per output channel and dequantized inside the matmul, halving
the weight memory of bf16 (a quarter of fp32). `fp8` is torchao's dynamic FP8 (e4m3)
activations and weights with a scale per row, run by the FP8 tensor cores of Hopper/Ada GPUs:
both halves of each matmul in 8 bits. The VAE and the small embedding layers stay as they are. The tolerance against the unquantized model is tested (tests/test_quantize.py);
the speed is measured by `interworld bench --quantize int8`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

MODES = ("int8", "fp8")


def quantize(model: nn.Module, mode: str = "int8", min_features: int = 32) -> nn.Module:
    """Quantize `model`'s nn.Linear layers in place (those with at least `min_features` inputs)."""
    if mode not in MODES:
        raise ValueError(f"unknown quantization {mode!r}; choose one of {', '.join(MODES)}")
    try:
        from torchao.quantization import quantize_
    except ImportError:
        raise RuntimeError("quantization needs torchao: pip install torchao") from None
    if mode == "fp8":
        dev = next(model.parameters()).device
        if dev.type != "cuda" or torch.cuda.get_device_capability(dev) < (8, 9):
            raise RuntimeError("fp8 needs the model on an NVIDIA GPU with FP8 tensor cores (compute capability 8.9 "
                               "or more: H100, H200, L4, RTX 4090); use int8 elsewhere")
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow

        config = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
        # FP8 GEMMs need both sizes a multiple of 16
        ok = lambda m: m.in_features >= min_features and m.in_features % 16 == 0 and m.out_features % 16 == 0  # noqa: E731
    else:
        from torchao.quantization import Int8WeightOnlyConfig

        config, ok = Int8WeightOnlyConfig(), (lambda m: m.in_features >= min_features)
    quantize_(model, config, filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and ok(m))
    return model

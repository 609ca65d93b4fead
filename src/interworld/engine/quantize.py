"""Quantization applied as a wrapper around an unchanged model (torchao).

`int8` is torchao's INT8 weight-only quantization of the DiT's linear layers: weights are
stored in 8 bits with a scale per output channel and dequantized inside the matmul, halving
the weight memory of bf16 (a quarter of fp32). The VAE and the small embedding layers stay as
they are. The tolerance against the unquantized model is tested (tests/test_quantize.py);
the speed is measured by `interworld bench --quantize int8`.
"""

from __future__ import annotations

import torch.nn as nn

MODES = ("int8",)


def quantize(model: nn.Module, mode: str = "int8", min_features: int = 32) -> nn.Module:
    """Quantize `model`'s nn.Linear layers in place (those with at least `min_features` inputs)."""
    if mode not in MODES:
        raise ValueError(f"unknown quantization {mode!r}; choose one of {', '.join(MODES)}")
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    except ImportError:
        raise RuntimeError("quantization needs torchao: pip install torchao") from None
    quantize_(model, Int8WeightOnlyConfig(),
              filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and m.in_features >= min_features)
    return model

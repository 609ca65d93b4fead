"""Weights of the perceptual backbones (eval/lpips.py, eval/fvd.py), from safetensors files only.

The user passes the files (`interworld eval --lpips-weights ... --fvd-weights ...`); nothing is
downloaded and nothing is unpickled. The official releases are .pth pickles: converted once,
by the user, with scripts/pth_to_safetensors.py, which keeps their key names, and those names
are the modules' own state-dict names here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from interworld.io.checkpoint import CheckpointError, mismatch

OPTIONAL = ("num_batches_tracked",)  # batch-norm counters: unused at eval, absent from older files


def load_weights(module: nn.Module, paths: list[str | Path], *, ignore: tuple[str, ...] = (),
                 what: str = "weights", device: str | torch.device = "cpu") -> nn.Module:
    """Fill `module` from one or more safetensors files whose keys together are its state dict;
    keys starting with an `ignore` prefix (layers not used, e.g. a classifier) are skipped unread.
    Returns the module on `device` in eval mode; raises CheckpointError naming each file and the
    keys that are missing, unexpected or misshapen."""
    own = module.state_dict()
    found: dict[str, torch.Tensor] = {}
    problems, twice = [], []
    for p in map(Path, paths):
        if not p.is_file():
            raise FileNotFoundError(f"{what}: no file {str(p)!r}")
        try:
            with safe_open(str(p), framework="pt", device="cpu") as h:
                unexpected, misshapen = [], []
                for k in h.keys():
                    if k.startswith(ignore):
                        continue
                    if k not in own:
                        unexpected.append(k)
                    elif k in found:
                        twice.append(k)
                    elif tuple(h.get_slice(k).get_shape()) != tuple(own[k].shape):
                        misshapen.append(f"{k}: file {tuple(h.get_slice(k).get_shape())} vs "
                                         f"expected {tuple(own[k].shape)}")
                    else:
                        found[k] = h.get_tensor(k)
        except SafetensorError as e:
            raise CheckpointError(f"{what}: {p} is not a safetensors file ({e}); convert a .pth once with "
                                  f"scripts/pth_to_safetensors.py") from None
        if unexpected or misshapen:
            problems.append(f"{p}: " + mismatch((), sorted(unexpected), misshapen))
    missing = sorted(k for k in own if k not in found and not k.endswith(OPTIONAL))
    if missing or twice:
        problems.append(f"{', '.join(map(str, paths))}: " + mismatch(missing, (), (), twice=sorted(twice)))
    if problems:
        raise CheckpointError(f"{what} do not fit: " + "; ".join(problems))
    module.load_state_dict(found, strict=False)  # every key checked above; only OPTIONAL ones may be absent
    return module.to(device).eval().requires_grad_(False)

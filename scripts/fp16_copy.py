"""Copy a checkpoint folder compactly: float tensors in fp16 (half the bytes to bring back
from a lease), or with --int8 the weights in 8 bits (io/quant.py; how the shipped model is
stored, e.g. DST = src/interworld/assets/small)."""

import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from interworld.io.quant import quantize

args = [a for a in sys.argv[1:] if a != "--int8"]
src, dst = Path(args[0]), Path(args[1])
dst.mkdir(parents=True, exist_ok=True)
t = load_file(str(src / "model.safetensors"))
t = quantize(t) if "--int8" in sys.argv else {k: (v.half() if v.is_floating_point() else v) for k, v in t.items()}
tmp = dst / "model.safetensors.tmp"
save_file(t, str(tmp))
tmp.replace(dst / "model.safetensors")
shutil.copy(src / "config.json", dst / "config.json")
print(f"{dst}: {sum(v.numel() for v in t.values()) / 1e6:.2f}M values, "
      f"{(dst / 'model.safetensors').stat().st_size / 1e6:.1f} MB")

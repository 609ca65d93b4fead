"""Copy a checkpoint folder with its float tensors in fp16 (half the bytes to bring back from a lease)."""

import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
t = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(src / "model.safetensors")).items()}
save_file(t, str(dst / "model.safetensors"))
shutil.copy(src / "config.json", dst / "config.json")
print(f"{dst}: {sum(v.numel() for v in t.values()) / 1e6:.2f}M tensors in fp16")

"""Copy a checkpoint folder compactly: float tensors in fp16 (half the bytes to bring back
from a lease), or with --int8 the weights in 8 bits (io/quant.py; how the shipped model is
stored, e.g. DST = src/interworld/assets/small).

    python scripts/fp16_copy.py SRC DST [--int8] [--only PREFIX,...] [--base CKPT]

--only keeps the tensors whose names start with one of the prefixes (e.g. `dit.` brings back
a student without the VAE and text encoder it shares with its teacher: under the 16 MiB a file
may have); --base completes such a part into a whole checkpoint from CKPT's other tensors:
only those of modules SRC has nothing of (two name levels: `dit.blocks`, `vae.decoder`), so
a DiT of another depth or width takes none of CKPT's blocks. The config is SRC's."""

import argparse
import shutil
from pathlib import Path

from safetensors.torch import save_file

from interworld.io.checkpoint import load_tensors
from interworld.io.quant import quantize


def module(name: str) -> str:
    """The two-level module a tensor belongs to, e.g. `dit.blocks`."""
    return ".".join(name.split(".")[:2])


p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("src")
p.add_argument("dst")
p.add_argument("--int8", action="store_true", help="8-bit weights (default: fp16)")
p.add_argument("--only", help="comma-separated name prefixes to keep")
p.add_argument("--base", help="checkpoint whose tensors fill in what SRC lacks")
a = p.parse_args()
src, dst = Path(a.src), Path(a.dst)
dst.mkdir(parents=True, exist_ok=True)
t = load_tensors(src)  # 8-bit sources come back as floats
if a.only:
    t = {k: v for k, v in t.items() if k.startswith(tuple(a.only.split(",")))}
if a.base:
    have = {module(k) for k in t}
    t = {**{k: v for k, v in load_tensors(a.base).items() if module(k) not in have}, **t}
t = quantize(t) if a.int8 else {k: (v.half() if v.is_floating_point() else v) for k, v in t.items()}
tmp = dst / "model.safetensors.tmp"
save_file(t, str(tmp))
tmp.replace(dst / "model.safetensors")
if src.resolve() != dst.resolve():
    shutil.copy(src / "config.json", dst / "config.json")
print(f"{dst}: {sum(v.numel() for v in t.values()) / 1e6:.2f}M values, "
      f"{(dst / 'model.safetensors').stat().st_size / 1e6:.1f} MB")

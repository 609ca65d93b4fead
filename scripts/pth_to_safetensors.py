"""Convert one pickled .pth weight file of the official releases to safetensors, once.

interworld never unpickles weights. The official Wan2.2 / Matrix-Game-3.0 releases ship
Wan2.2_VAE.pth, MG-LightVAE[_v2].pth and models_t5_umt5-xxl-enc-bf16.pth as pickles; run this
yourself on files you trust, and interworld reads the .safetensors written next to them.

    python scripts/pth_to_safetensors.py Wan2.2_VAE.pth Wan2.2_VAE.safetensors

torch.load runs with weights_only=True (tensors and plain containers only). A state dict
nested under "state_dict", "gen_model" or "generator" (as some MG-LightVAE files are) is
unwrapped; the tensors keep their names and dtypes.
"""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file


def main(src: str, dst: str) -> None:
    state = torch.load(src, map_location="cpu", weights_only=True)
    for key in ("state_dict", "gen_model", "generator"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    tensors = {k: v.contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    skipped = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not tensors:
        sys.exit(f"{src}: no tensors found")
    out = Path(dst)
    tmp = out.with_name(out.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"converted_from": Path(src).name})
    tmp.replace(out)
    print(f"{dst}: {len(tensors)} tensors" + (f" (skipped non-tensors: {', '.join(skipped)})" if skipped else ""))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/pth_to_safetensors.py IN.pth OUT.safetensors")
    main(sys.argv[1], sys.argv[2])

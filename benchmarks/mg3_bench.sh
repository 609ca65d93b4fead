#!/usr/bin/env bash
# interworld bench at Matrix-Game-3.0 size (mg3-5b, 704x1280, 3 steps, 10 new latents per
# iteration), both attention schemes, on one GPU. Writes JSON next to the printed tables.
# Usage: benchmarks/mg3_bench.sh OUT_DIR [extra bench flags]
set -euo pipefail
out=${1:-.}; shift || true
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(cd "$(dirname "$0")/.." && pwd)/src"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
for scheme in segment causal; do
  python3 -m interworld.cli.main bench --preset mg3-5b --device cuda --height 704 --width 1280 --steps 3 \
    --scheme "$scheme" --new-latents 10 --warmup 2 --iters 5 --json "$out/mg3_${scheme}.json" "$@"
done

#!/usr/bin/env bash
# interworld bench on 1, 2, 4 and 8 GPUs of one host (as many as it has): first one GPU with
# the plain bench (the baseline JSON), then each count under torchrun with --parallel (and
# --compare once the baseline exists), once per decode placement (separate: the last GPU
# decodes, overlapped; inline: every GPU runs the DiT). Writes one JSON per run next to the
# printed tables; benchmarks/bench_table.py OUT_DIR/*.json puts them in one table.
# Usage: benchmarks/multi_gpu_bench.sh OUT_DIR PRESET SCHEME [extra bench flags]
#   e.g. benchmarks/multi_gpu_bench.sh out a14b-moe segment
# Env: GPUS="1 2" picks the counts (a command of the device tool may run 10 minutes at most),
#      DECODES="inline" the placements, MASTER_PORT a free port when two of these share a host
#      (each on its own CUDA_VISIBLE_DEVICES).
set -euo pipefail
out=${1:?OUT_DIR}; preset=${2:?PRESET}; scheme=${3:?SCHEME}; shift 3
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(cd "$(dirname "$0")/.." && pwd)/src"
# a14b-moe on one H200 (58 GB of weights, 70 GB of activations) fits only without fragmentation
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
have=$(python3 -c "import torch; print(torch.cuda.device_count())")  # honours CUDA_VISIBLE_DEVICES
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch; print('torch', torch.__version__)"
common=(--preset "$preset" --device cuda --height 704 --width 1280 --steps 3 --scheme "$scheme" --new-latents 10
        --warmup 2 --iters 5 "$@")
base="$out/${preset}_${scheme}_1gpu.json"
for n in ${GPUS:-1 2 4 8}; do
  if (( n > have )); then echo "skip $n GPUs: this host has $have"; continue; fi
  if (( n == 1 )); then
    python3 -m interworld.cli.main bench "${common[@]}" --json "$base"
    continue
  fi
  compare=(); [ -f "$base" ] && compare=(--compare "$base")
  for decode in ${DECODES:-separate inline}; do
    torchrun --nproc-per-node "$n" --master-port "${MASTER_PORT:-29500}" -m interworld.cli.main bench --parallel \
      --decode "$decode" "${common[@]}" "${compare[@]}" --json "$out/${preset}_${scheme}_${n}gpu_${decode}.json"
  done
done

#!/usr/bin/env bash
# What one 10-minute command on a 4-GPU host measures for issues 8 and 10 besides the scaling
# runs (benchmarks/scaling_x4.sh): the small model's training throughput on 1 and 4 GPUs
# (benchmarks/train_scaling.sh), the one-GPU speed rows not yet measured (torch.compile, CUDA
# graphs, cuDNN attention, offload; mg3-5b causal), and mg3-5b on one and two GPUs in both
# schemes. Lanes on disjoint GPUs run side by side (benchmarks/lanes.sh).
# Usage: benchmarks/speed_x4.sh OUT_DIR [DEADLINE] [TRAIN_SECONDS]
set -uo pipefail
out=${1:?OUT_DIR}; t0=$(date +%s); deadline=$(( t0 + ${2:-560} )); train_s=${3:-150}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
source "$here/lanes.sh"
sm=("$here/speed_matrix.sh" "$out")
mgb=("$here/multi_gpu_bench.sh" "$out")
end=$deadline
deadline=$(( t0 + train_s + 80 ))  # phase 1: training on one GPU beside three one-GPU speed rows
lane 0 train-1 "$here/train_scaling.sh" "$out" "$train_s" 1 &
lane 1 compile "${sm[@]}" causal compile &
lane 2 graphs "${sm[@]}" causal graphs &
lane 3 cudnn-offload "${sm[@]}" causal cudnn offload &
wait
deadline=$end
lane 0,1,2,3 train-4 "$here/train_scaling.sh" "$out" "$train_s" 4
lane 0 segment-1 env GPUS=1 "${mgb[@]}" mg3-5b segment &
lane 2,3 segment-2 env GPUS=2 "${mgb[@]}" mg3-5b segment &
wait
lane 0 causal-1 env GPUS=1 "${mgb[@]}" mg3-5b causal &
lane 2,3 causal-2 env GPUS=2 "${mgb[@]}" mg3-5b causal &
wait
python3 "$here/bench_table.py" "$out"/*.json > "$out/table.md"; cat "$out/table.md"
python3 "$here/train_table.py" "$out" > "$out/train_table.md"; cat "$out/train_table.md"

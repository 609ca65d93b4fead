#!/usr/bin/env bash
# Issue 10 on one 4-GPU host inside one 10-minute command: ti2v-5b and a14b-moe (segment,
# 704x1280, 3 steps, 10 new latents) on 1, 2 and 4 GPUs. To fit, runs that need disjoint GPUs go
# side by side (benchmarks/lanes.sh; they share only the host's CPUs, and every DiT pass is
# GPU-bound at these sizes), and a14b-moe takes 3 measured iterations after its first segment (one
# takes about 45 s on one GPU). Every run gets the time left before DEADLINE seconds from now.
# Usage: benchmarks/scaling_x4.sh OUT_DIR [DEADLINE]
set -uo pipefail
out=${1:?OUT_DIR}; deadline=$(( $(date +%s) + ${2:-560} ))
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
source "$here/lanes.sh"
mgb=("$here/multi_gpu_bench.sh" "$out")
big=(--warmup 0 --iters 3)  # segment warms up on its first segment (15 latents) anyway
# phase 1: the one-GPU baselines beside the two-GPU runs
lane 0 a14b-1 env GPUS=1 "${mgb[@]}" a14b-moe segment "${big[@]}" &
lane 1 ti2v-1 env GPUS=1 "${mgb[@]}" ti2v-5b segment &
{ lane 2,3 a14b-2-inline env GPUS=2 DECODES=inline "${mgb[@]}" a14b-moe segment "${big[@]}"
  lane 2,3 ti2v-2 env GPUS=2 "${mgb[@]}" ti2v-5b segment; } &
wait
# phase 2: all four GPUs, the issue's case (decode on its own GPU) first
lane 0,1,2,3 a14b-4-separate env GPUS=4 DECODES=separate "${mgb[@]}" a14b-moe segment "${big[@]}"
lane 0,1,2,3 a14b-4-inline env GPUS=4 DECODES=inline "${mgb[@]}" a14b-moe segment "${big[@]}"
lane 0,1,2,3 ti2v-4 env GPUS=4 "${mgb[@]}" ti2v-5b segment
# last, if time is left: two GPUs with the DiT on one (the decode overlap alone)
lane 0,1 a14b-2-separate env GPUS=2 DECODES=separate "${mgb[@]}" a14b-moe segment "${big[@]}"
python3 "$here/bench_table.py" "$out"/*.json > "$out/table.md"; cat "$out/table.md"

#!/usr/bin/env bash
# Training throughput of the small world model on N GPUs of one host (torchrun, DDP, the same
# clips per GPU at every N), from the shipped model, for SECONDS of wall clock each: its log
# (JSON lines with steps/s, clips/s and peak GPU memory) lands in OUT_DIR/train_NGPU.jsonl, and
# benchmarks/train_table.py OUT_DIR turns the logs into a table with the speed-up over one GPU.
# Records ViZDoom data into DATA first if it holds none.
# Usage: benchmarks/train_scaling.sh OUT_DIR SECONDS NGPU
# Env: DATA (default /tmp/doom), BATCH (clips per GPU, default 48), DEVICE (default cuda)
set -euo pipefail
out=${1:?OUT_DIR}; secs=${2:?SECONDS}; n=${3:?NGPU}
root=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root/src" OMP_NUM_THREADS=${OMP_NUM_THREADS:-4}
data=${DATA:-/tmp/doom}; run=/tmp/train_scaling_${n}gpu
mkdir -p "$out"
if ! ls "$data"/*.npz > /dev/null 2>&1 && ! ls "$data"/*/*.npz > /dev/null 2>&1; then
  python3 -m interworld.cli.main record --out "$data" --maps $(printf 'MAP%02d ' $(seq 1 18)) --frames 120000 \
    --workers "$(nproc)" --quiet
fi
rm -rf "$run"
torchrun --standalone --nproc-per-node "$n" -m interworld.cli.main train world --data "$data" --out "$run" \
  --init "$root/src/interworld/assets/small" --device "${DEVICE:-cuda}" --batch "${BATCH:-48}" --latents 8 \
  --steps 1000000 --lr 3e-4 --warmup 50 --memory 0.5 --time-limit "$secs" --val-every 1000000000 \
  --ckpt-every 1000000000 --log-every 20 --quiet
cp "$run/log.jsonl" "$out/train_${n}gpu.jsonl"

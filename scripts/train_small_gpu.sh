#!/usr/bin/env bash
# One GPU lease, start to finish: record ViZDoom data on all cores, train the VAE, train the
# world model, write a compact copy of the checkpoint and the logs to OUT_DIR.
# Usage: scripts/train_small_gpu.sh OUT_DIR [VAE_SECONDS] [WORLD_SECONDS] [TRAIN_FRAMES]
set -euo pipefail
out=${1:?OUT_DIR}; vae_s=${2:-150}; world_s=${3:-300}; frames=${4:-240000}
root=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root/src" PYTHONUNBUFFERED=1
iw() { python3 -m interworld.cli.main "$@"; }
data=/tmp/doom; runs=/tmp/runs
workers=$(nproc)
t0=$(date +%s)
iw record --out $data --maps train --frames "$frames" --workers "$workers" --quiet
iw record --out $data/val --maps val --frames 8000 --workers 8 --seed 1 --quiet
echo "recorded in $(( $(date +%s) - t0 )) s"; du -sh $data
iw train vae --data $data --out $runs/vae --steps 100000 --batch 16 --latents 3 --lr 3e-4 \
   --time-limit "$vae_s" --val-every 500 --ckpt-every 100000 --quiet
iw train world --data $data --out $runs/world --init $runs/vae --steps 100000 --batch 32 --latents 8 \
   --lr 3e-4 --time-limit "$world_s" --val-every 1000 --ckpt-every 100000 --quiet
echo "trained in $(( $(date +%s) - t0 )) s"
cp $runs/vae/log.jsonl "$out/vae_log.jsonl"; cp $runs/world/log.jsonl "$out/world_log.jsonl"
python3 - "$runs/world" "$out" <<'PY'
import sys, json
from pathlib import Path
from safetensors.torch import load_file, save_file
src, out = Path(sys.argv[1]), Path(sys.argv[2])
t = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(src / "model.safetensors")).items()}
save_file(t, str(out / "model_fp16.safetensors"))
(out / "config.json").write_text((src / "config.json").read_text())
print(json.loads((src / "config.json").read_text()))
PY
cd "$out" && split -b 15M -d model_fp16.safetensors model_fp16.part && rm model_fp16.safetensors && ls -la

#!/usr/bin/env bash
# One GPU lease, start to finish, on every GPU of the machine (torchrun, one process each):
# record ViZDoom data on all cores, train the VAE (unless a world run is carried in to
# resume), train the world model, and write a compact copy of the run to OUT_DIR: the
# checkpoint in fp16 cut into 15 MB parts (each file that comes back must be < 16 MiB),
# config.json, state.json and the logs. A later lease resumes from that copy:
#   cat model_fp16.part* > RUN/model.safetensors (plus config.json, state.json, log.jsonl)
#
# Usage: scripts/train_small_gpu.sh OUT_DIR [VAE_SECONDS] [WORLD_SECONDS] [RESUME_DIR]
# Env: FRAMES (training frames to record), MAPS, PRESET, RECORD_ARGS (e.g. a smaller size), WORLD_STEPS / VAE_STEPS (schedule length),
#      WORLD_BATCH / VAE_BATCH (per GPU), WORLD_LR / VAE_LR.
set -euo pipefail
out=${1:?OUT_DIR}; vae_s=${2:-200}; world_s=${3:-280}; resume=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root/src" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
ngpu=$(python3 -c "import torch; print(max(1, torch.cuda.device_count()))")
iw() { python3 -m interworld.cli.main "$@"; }
iwrun() { torchrun --standalone --nproc_per_node "$ngpu" -m interworld.cli.main "$@"; }
data=/tmp/doom; runs=/tmp/runs
maps=${MAPS:-"$(printf 'MAP%02d ' $(seq 1 18))"}
t0=$(date +%s)
iw record --out $data --maps $maps --frames "${FRAMES:-200000}" --workers "$(nproc)" ${RECORD_ARGS:-} --quiet
iw record --out $data/val --maps MAP19 MAP20 --frames 8000 --workers 8 --seed 1 ${RECORD_ARGS:-} --quiet
echo "recorded in $(( $(date +%s) - t0 )) s on $ngpu GPU(s)"; du -sh $data
mkdir -p $runs
if [ -n "$resume" ]; then
  cp -r "$resume" $runs/world
  if ls $runs/world/model_fp16.part* >/dev/null 2>&1; then
    cat $runs/world/model_fp16.part* > $runs/world/model.safetensors && rm $runs/world/model_fp16.part*
  fi
  [ -f $runs/world/world_log.jsonl ] && mv $runs/world/world_log.jsonl $runs/world/log.jsonl
else
  iwrun train vae --data $data --out $runs/vae --preset "${PRESET:-small}" --steps "${VAE_STEPS:-3000}" --batch "${VAE_BATCH:-16}" --latents 3 \
     --lr "${VAE_LR:-5e-4}" --time-limit "$vae_s" --val-every 500 --ckpt-every 100000 --quiet
  cp $runs/vae/log.jsonl "$out/vae_log.jsonl"
fi
iwrun train world --data $data --out $runs/world $( [ -z "$resume" ] && echo --init $runs/vae ) \
   --steps "${WORLD_STEPS:-12000}" --batch "${WORLD_BATCH:-48}" --latents 8 --lr "${WORLD_LR:-6e-4}" --warmup 200 \
   --time-limit "$world_s" --val-every 1000 --ckpt-every 100000 --quiet
echo "trained in $(( $(date +%s) - t0 )) s"
cp $runs/world/log.jsonl "$out/world_log.jsonl"; cp $runs/world/state.json $runs/world/config.json "$out/"
python3 "$root/scripts/fp16_copy.py" $runs/world /tmp/fp16 && mv /tmp/fp16/model.safetensors "$out/model_fp16.safetensors"
cd "$out" && split -b 15M -d model_fp16.safetensors model_fp16.part && rm model_fp16.safetensors && ls -la

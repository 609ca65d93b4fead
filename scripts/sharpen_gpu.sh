#!/usr/bin/env bash
# Issue 3's sharpness run on a 4-GPU machine: adversarial fine-tunes of the VAE decoder beside
# more training of the world model, from a world checkpoint in the tree (nothing to carry but the
# ViZDoom wheel). The decoder, not the DiT, was what blurred every frame (docs/TRAINING.md, run 9).
#   GPU 0, 1: `train decoder --width 1 --history 12 --adversarial W`, W from $ADV (default "0.5 1")
#   GPU 2, 3: `train world` continued (torchrun, 2 processes), resumable in /tmp/runs/world
# Everything stops SECONDS after the script starts (minus time to pack), then OUT_DIR gets:
#   dec_W.tgz          each decoder in fp16 (fp16_copy.py --only vae.decoder.) with its log
#   world_fp16.partNN  the world model's DiT and text encoder in fp16, 15 MB parts
#   world_meta.tgz     its config, state and log
# Run it again at once on the warm machine (same OUT_DIR names): the data is there, and each
# decoder and the world model resume with their optimizer state. (Run 9's second call predates
# decoder resumption: it restarted the decoders from their first call's weights.)
#
# Usage: scripts/sharpen_gpu.sh OUT_DIR SECONDS
# Env: FRAMES (training frames to record, default 150000), WORLD_STEPS / DEC_STEPS (cosine schedule
#      lengths, default 8000 / 6000), ADV, BASE (the world checkpoint to start from; since run 23
#      the shipped model is a distilled student, its teacher is in git history: docs/TRAINING.md)
set -euo pipefail
out=${1:?OUT_DIR}; secs=${2:?SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lease_data.sh
source "$root/scripts/lease_data.sh"
base=${BASE:?BASE: a world checkpoint to start from}
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root/src" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
iw() { python3 -m interworld.cli.main "$@"; }
data=/tmp/doom; runs=/tmp/runs
t0=$(date +%s); stop=$(( t0 + secs - 45 ))  # 45 s to write checkpoints and pack
record_lease_data "${FRAMES:-150000}"
mkdir -p $runs "$out"
left=$(( stop - $(date +%s) ))
gpu=0
for w in ${ADV:-0.5 1}; do
  name=dec_$w  # a second call resumes it (weights, optimizer, discriminator)
  CUDA_VISIBLE_DEVICES=$gpu iw train decoder --data $data --init "$base" --out $runs/$name --width 1 --history 12 \
     --batch 16 --latents 3 --lr 1e-4 --steps "${DEC_STEPS:-6000}" --adversarial "$w" --time-limit "$left" --quiet \
     > $runs/$name.out 2>&1 &
  gpu=$(( gpu + 1 ))
done
world_init=$( [ -f $runs/world/config.json ] || echo "--init $base" )
# shellcheck disable=SC2086
CUDA_VISIBLE_DEVICES=2,3 torchrun --standalone --nproc_per_node 2 -m interworld.cli.main train world --data $data \
   --out $runs/world $world_init --steps "${WORLD_STEPS:-8000}" --batch 48 --latents 8 --lr 3e-4 --warmup 200 \
   --error-buffer 1024 --memory 0.5 --time-limit "$left" --val-every 1000 --ckpt-every 100000 --compile --quiet \
   > $runs/world.out 2>&1 &
fail=0; for job in $(jobs -p); do wait "$job" || fail=1; done
echo "trained at $(( $(date +%s) - t0 )) s (failures: $fail)"
mkdir -p /tmp/pack
for w in ${ADV:-0.5 1}; do
  name=dec_$w
  [ -f $runs/$name/model.safetensors ] || { tail -5 $runs/$name.out; continue; }
  python3 "$root/scripts/fp16_copy.py" $runs/$name /tmp/pack/$name --only vae.decoder.
  cp $runs/$name/log.jsonl $runs/$name.out /tmp/pack/$name/
  tar czf "$out/$name.tgz" -C /tmp/pack $name
done
if [ -f $runs/world/model.safetensors ]; then
  python3 "$root/scripts/fp16_copy.py" $runs/world /tmp/pack/world --only dit.,text.
  split -b 15M -d /tmp/pack/world/model.safetensors "$out/world_fp16.part"
  (cd $runs && tar czf "$out/world_meta.tgz" --exclude='*.safetensors' --exclude=tb world world.out)
else
  tail -20 $runs/world.out
fi
ls -la "$out"

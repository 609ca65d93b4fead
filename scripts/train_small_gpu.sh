#!/usr/bin/env bash
# One GPU lease, start to finish, on every GPU of the machine (torchrun, one process each):
# record ViZDoom data on all cores, train the VAE (unless a world run is carried in to
# resume), train the world model (the teacher), optionally distil the few-step student,
# and write a compact copy to OUT_DIR (each file that comes back must be < 16 MiB, 8 at most):
#   world_fp16.partNN    the teacher in fp16, cut into 15 MB parts
#   student_int8.partNN  the student in 8-bit storage (when distilled)
#   meta.tgz             configs, state.json and logs of every run
# A later lease resumes the teacher from RESUME_DIR = a folder holding world_fp16.part* and
# the world/ configs from meta.tgz (see docs/TRAINING.md).
#
# Usage: scripts/train_small_gpu.sh OUT_DIR [VAE_SECONDS] [WORLD_SECONDS] [RESUME_DIR] [DISTILL_SECONDS]
# VAE_SECONDS 0 with a VAE already in /tmp/runs/vae (scripts/vae_sweep_gpu.sh's winner): train the
#   world on it.
# INIT: a world checkpoint to continue with a schedule of its own (e.g. the shipped model's teacher,
#   whose 8-bit weights load as floats; docs/TRAINING.md, run 23): no VAE is trained.
# WORLD_SECONDS 0: a VAE-only lease; OUT_DIR gets the VAE as vae_fp16.partNN, report.tgz
#   (scripts/vae_report.py: PSNR, sharpness and strips deep in a stream) and vae_meta.tgz.
# Env: FRAMES (training frames to record), MAPS, DATA (train on this recorded folder instead, e.g. one
#      map's; default /tmp/doom), PRESET, RECORD_ARGS (e.g. a smaller size),
#      WORLD_STEPS / VAE_STEPS / DISTILL_STEPS (schedule length), WORLD_BATCH / VAE_BATCH (per GPU),
#      WORLD_LR / VAE_LR, FIT_TIME (1: the world's cosine ends with WORLD_SECONDS, WORLD_STEPS its cap;
#      for a run not resumed in a later call, e.g. one detached across calls, run 27),
#      VAE_DIM / VAE_Z (width and latent channels of a new VAE; default: the preset's),
#      VAE_INIT (a VAE or world checkpoint the VAE
#      is fine-tuned from, e.g. src/interworld/assets/small), VAE_TEMPORAL_DOWN (e.g. 1,0: latents of 2
#      frames, `train vae --temporal-down`), VAE_LATENTS (latents per
#      VAE clip, default 3; 7 or more trains the middle of a stream too), VAE_PRECISION (bf16, the
#      default, or fp32), ERROR_BUFFER (latent frames; 0 = off), COMPILE (1: torch.compile the DiT
#      blocks of the teacher, the default; 0: eager),
#      MEMORY (share of batches with memory frames, default 0.5; 0: a teacher without memory),
#      DIT_DIM / DIT_LAYERS / DIT_PATCH (a new DiT of that width, depth and patch, e.g. 384, 12 and 1,
#      on the VAE; default: the preset's), NO_CAMERA (1: that new DiT without camera poses, `--no-camera`),
#      RAY_ROPE (1: that new DiT with RoPE by ray direction, `--ray-rope`),
#      RUNS (the runs folder, default /tmp/runs: two runs side by side on
#      one machine each take their own, with CUDA_VISIBLE_DEVICES splitting the GPUs),
#      PREV_LATENT (1: give the DiT the previous-frame path, `train world --prev-latent`),
#      SELF_CONTEXT (share of batches whose context is the model's own rollout, `train world --self-context`),
#      SELF_CONTEXT_SINK (other: those batches see another clip's start frame as the sink, `--self-context-sink`),
#      EMA (decay of a moving average of the DiT's weights, `train world --ema`, kept in RUNS/world/ema),
#      DISTILL_ARGS (more `distill` arguments, e.g. "--chunks 6 --regress 3 --seed 1", r3a's recipe; the
#      student is distilled from the teacher's EMA where the run kept one),
#      PACK_ONLY (name prefixes of the teacher to bring back, e.g. dit.,text. when its VAE is
#      already at home; rebuild with scripts/fp16_copy.py --base).
set -euo pipefail
out=${1:?OUT_DIR}; vae_s=${2:-200}; world_s=${3:-280}; resume=${4:-}; distill_s=${5:-0}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lease_data.sh
source "$root/scripts/lease_data.sh"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root/src" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
ngpu=$(python3 -c "import torch; print(max(1, torch.cuda.device_count()))")
iw() { python3 -m interworld.cli.main "$@"; }
iwrun() { torchrun --standalone --nproc_per_node "$ngpu" -m interworld.cli.main "$@"; }
data=${DATA:-/tmp/doom}; runs=${RUNS:-/tmp/runs}; mkdir -p "$out"
t0=$(date +%s)
# shellcheck disable=SC2086
record_lease_data "${FRAMES:-200000}" ${RECORD_ARGS:-}
mkdir -p $runs
if [ -n "$resume" ]; then
  mkdir -p $runs/world && cp -r "$resume"/world/* $runs/world/  # -r: an EMA run's meta holds world/ema/
  cat "$resume"/world_fp16.part* > $runs/world/model.safetensors
elif [ -n "${INIT:-}" ]; then
  echo "world model from $INIT"
elif [ "$vae_s" = 0 ] && [ -f $runs/vae/config.json ]; then
  echo "world model on the VAE in $runs/vae (scripts/vae_sweep_gpu.sh)"
else
  iwrun train vae --data $data --out $runs/vae --preset "${PRESET:-small}" --steps "${VAE_STEPS:-3000}" \
     ${VAE_DIM:+--vae-dim $VAE_DIM} ${VAE_Z:+--vae-z $VAE_Z} ${VAE_INIT:+--init $VAE_INIT} \
     ${VAE_TEMPORAL_DOWN:+--temporal-down $VAE_TEMPORAL_DOWN} --batch "${VAE_BATCH:-16}" --latents "${VAE_LATENTS:-3}" --lr "${VAE_LR:-5e-4}" \
     ${VAE_PRECISION:+--precision $VAE_PRECISION} --time-limit "$vae_s" --val-every 500 --ckpt-every 100000 --quiet
fi
if [ "$world_s" = 0 ]; then
  report_vae "$out" $runs/vae
  pack_vae "$out" $runs
  ls -la "$out"; check_return "$out" || true; exit 0
fi
# DIT_DIM / DIT_LAYERS / DIT_PATCH shape a new DiT only (a follow-up call resumes the one it made)
new_dit=""
# plain ifs: a failed `[ ] && echo` inside the assignment made it fail, and set -e then ended the
# script without a word for a run without these switches (run 29)
if [ -z "$resume" ] && [ ! -f $runs/world/config.json ]; then
  new_dit="${DIT_DIM:+--dit-dim $DIT_DIM} ${DIT_LAYERS:+--dit-layers $DIT_LAYERS} ${DIT_PATCH:+--dit-patch $DIT_PATCH}"
  if [ "${NO_CAMERA:-0}" = 1 ]; then new_dit="$new_dit --no-camera"; fi
  if [ "${RAY_ROPE:-0}" = 1 ]; then new_dit="$new_dit --ray-rope"; fi
fi
# shellcheck disable=SC2086
iwrun train world --data $data --out $runs/world $( [ -z "$resume" ] && echo --init "${INIT:-$runs/vae}" ) $new_dit \
   --steps "${WORLD_STEPS:-12000}" --batch "${WORLD_BATCH:-48}" --latents 8 --lr "${WORLD_LR:-6e-4}" --warmup 200 \
   --error-buffer "${ERROR_BUFFER:-0}" --memory "${MEMORY:-0.5}" --time-limit "$world_s" --val-every 1000 --ckpt-every 100000 \
   $( [ "${COMPILE:-1}" = 1 ] && echo --compile ) $( [ "${FIT_TIME:-0}" = 1 ] && echo --fit-time ) \
   $( [ "${PREV_LATENT:-0}" = 1 ] && echo --prev-latent ) \
   --self-context "${SELF_CONTEXT:-0}" --self-context-sink "${SELF_CONTEXT_SINK:-own}" --ema "${EMA:-0}" --quiet
echo "teacher trained at $(( $(date +%s) - t0 )) s"
if [ "$distill_s" -gt 0 ]; then
  teacher=$runs/world
  if [ -f $runs/world/ema/model.safetensors ]; then teacher=$runs/world/ema; fi  # EMA: its average (run 30)
  # shellcheck disable=SC2086
  iwrun distill --teacher $teacher --data $data --out $runs/student --steps "${DISTILL_STEPS:-5000}" \
     --error-buffer "${ERROR_BUFFER:-0}" --time-limit "$distill_s" ${DISTILL_ARGS:-} --quiet
  python3 "$root/scripts/fp16_copy.py" $runs/student $runs.pack/student8 --int8
  split -b 15M -d $runs.pack/student8/model.safetensors "$out/student_int8.part"
  echo "student distilled at $(( $(date +%s) - t0 )) s"
fi
python3 "$root/scripts/fp16_copy.py" $runs/world $runs.pack/world16 ${PACK_ONLY:+--only $PACK_ONLY}
split -b 15M -d $runs.pack/world16/model.safetensors "$out/world_fp16.part"
(cd $runs && tar czf "$out/meta.tgz" --exclude='*.safetensors' --exclude=tb */)
ls -la "$out"
check_return "$out" || true

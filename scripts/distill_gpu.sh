#!/usr/bin/env bash
# Issue 6's ablations in one GPU call: every distillation variant at once, spread over the
# machine's GPUs in turn, with the decoder fine-tune beside them. At the small model's size each
# process is bound by kernel launches (one CPU core), so several share a card at little cost to each.
#
# Usage: scripts/distill_gpu.sh OUT_DIR SECONDS TEACHER
#   TEACHER is a world model (train world): since run 23 the shipped model is a student, and its
#   teacher is in git history (docs/TRAINING.md, "Plan for the next leases").
#   records start images and actions (MAP01-18), runs the variants of $VARIANTS for SECONDS
#   each (in parallel), then writes to OUT_DIR, each file < 16 MiB:
#     NAME.tgz         each student's DiT in 8 bits (fp16_copy.py --only dit.) with config and log;
#                      over 15 MB (the run-12 shape) as NAME.tgz.partNN: 2 files per student, so
#                      set RETURN to 3 of them with the decoder (8 files come back at most)
#     decoder.tgz      the fine-tuned VAE decoder in fp16 (--only vae.decoder.)
#     logs.tgz         every variant's log.jsonl and output
# A follow-up call made at once finds everything under /tmp/runs (full checkpoints, fake scores,
# optimizer states): run it again with the same OUT_DIR names to continue every variant.
# Rebuild a student here: see docs/TRAINING.md, "Moving checkpoints".
#
# Env: VARIANTS  "name:distill args;name:args;..."  (default: issue 6's table, as run 24 ran it)
#      RETURN    names of the students to bring back (default: every variant)
#      FRAMES (training frames to record, default 60000), DECODER (0: no decoder fine-tune),
#      COMPILE (1: torch.compile the blocks; default eager: compiling costs about 400 s of the first
#      call for 0.53 updates per second against 0.41, which pays back after about 23 minutes; run 21)
set -euo pipefail
out=${1:?OUT_DIR}; secs=${2:?SECONDS}; teacher=${3:?TEACHER}
root=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root/src" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
iw() { python3 -m interworld.cli.main "$@"; }
# shellcheck source=scripts/lease_data.sh
source "$root/scripts/lease_data.sh"
data=/tmp/doom; runs=/tmp/runs
# issue 6's table on the shipped recipe (run 24): the base, each part switched, 4 steps, segment
# (runs 13-16 ran an older default on DMD alone: causal3, causal4, no_rollout, no_buffer, segment3/4)
b="--chunks 6 --regress 3"
default="base:$b;buffer:$b --error-buffer 1024;no_rollout:$b --no-self-rollout;steps4:$b --student-steps 4"
default+=";segment:--regress 3 --scheme segment"
t0=$(date +%s)
if [ ! -d $data ]; then
  iw record --out $data --maps $(printf 'MAP%02d ' $(seq 1 18)) --frames "${FRAMES:-60000}" --workers "$(nproc)" --quiet
  iw record --out $data/val --maps MAP19 MAP20 --frames 4000 --workers 4 --seed 1 --quiet
  echo "recorded in $(( $(date +%s) - t0 )) s"
fi
mkdir -p $runs "$out"
compile=""; [ "${COMPILE:-0}" = 1 ] && compile=--compile
IFS=';' read -ra variants <<< "${VARIANTS:-$default}"
ngpu=$(python3 -c "import torch; print(max(1, torch.cuda.device_count()))"); i=0
for v in "${variants[@]}"; do
  name=${v%%:*}
  # one variant per GPU in turn: on one GPU they share it
  # shellcheck disable=SC2086
  CUDA_VISIBLE_DEVICES=$(( i % ngpu )) iw distill --teacher "$teacher" --data $data --out $runs/$name ${v#*:} \
     --batch 16 $compile --time-limit "$secs" --log-every 20 --quiet >> $runs/$name.out 2>&1 &
  i=$(( i + 1 ))
done
if [ "${DECODER:-1}" = 1 ]; then
  iw train decoder --data $data --init "$teacher" --out $runs/decoder --width 1 --history 12 --batch 16 \
     --latents 3 --lr 1e-4 --steps 100000 --time-limit "$secs" --val-every 1000 --quiet > $runs/decoder.out 2>&1 &
fi
fail=0; for job in $(jobs -p); do wait "$job" || fail=1; done
echo "trained at $(( $(date +%s) - t0 )) s (failures: $fail)"
pack() {  # pack NAME FP16_COPY_ARGS...: the run's tensors as fp16_copy.py selects them, its log, in one tgz
  local name=$1; shift
  [ -f $runs/$name/model.safetensors ] || { tail -5 $runs/$name.out; return; }
  python3 "$root/scripts/fp16_copy.py" $runs/$name /tmp/pack/$name "$@"
  cp $runs/$name/log.jsonl $runs/$name.out /tmp/pack/$name/
  tar czf /tmp/pack/$name.tgz -C /tmp/pack $name
  ship /tmp/pack/$name.tgz "$out"  # a 21.9M DiT is 22 MB in 8 bits: parts (cat NAME.tgz.part* | tar xz)
}
# every variant's log and output in one small file; the students of $RETURN (default: all)
mkdir -p /tmp/pack/logs
for v in "${variants[@]}"; do
  name=${v%%:*}; cp $runs/$name.out /tmp/pack/logs/ 2>/dev/null || true
  cp $runs/$name/log.jsonl /tmp/pack/logs/$name.jsonl 2>/dev/null || true
done
tar czf "$out/logs.tgz" -C /tmp/pack logs
for name in ${RETURN:-$(for v in "${variants[@]}"; do echo "${v%%:*}"; done)}; do pack "$name" --int8 --only dit.; done
[ "${DECODER:-1}" = 1 ] && pack decoder --only vae.decoder.
ls -la "$out"
check_return "$out" || echo "(set RETURN to fewer students)" >&2

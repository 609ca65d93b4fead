#!/usr/bin/env bash
# `interworld eval` of several checkpoints at once, spread over the machine's GPUs in turn (each
# eval is one process, bound by ViZDoom replays and kernel launches), the results packed into
# OUT_DIR/eval.tgz (in 15 MB parts, eval.tgz.partNN, when larger).
#
# Usage: scripts/eval_gpu.sh OUT_DIR POSE_MODEL NAME=CHECKPOINT[@EVAL ARGS] ...
#   e.g. shipped=src/interworld/assets/small  shipped10=src/interworld/assets/small@--steps 10
# A student folder from scripts/distill_gpu.sh (/tmp/runs/NAME) is evaluated with the
# fine-tuned decoder of /tmp/runs/decoder where there is one.
# Env: EVAL_ARGS (for every eval; default: the validation maps, 60 s, 2 cases each), EVAL_DEVICE,
#      EVAL_LIMIT (seconds per eval; then it stops, keeping its finished cases in metrics.json; default: none)
set -euo pipefail
out=${1:?OUT_DIR}; pose=${2:?POSE_MODEL}; shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root/src" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
pose=$(realpath "$pose"); ev=/tmp/ev; mkdir -p $ev "$out"
ngpu=$(python3 -c "import torch; print(max(1, torch.cuda.device_count()))"); i=0
# shellcheck source=scripts/lease_data.sh
source "$root/scripts/lease_data.sh"
for spec in "$@"; do
  name=${spec%%=*}; rest=${spec#*=}; ckpt=$(realpath "${rest%%@*}"); args=""
  [[ $rest == *@* ]] && args=${rest#*@}
  if [ -f /tmp/runs/decoder/model.safetensors ] && [[ $ckpt == /tmp/runs/* ]]; then
    python3 "$root/scripts/fp16_copy.py" "$ckpt" /tmp/full/$name --only dit.,text. --base /tmp/runs/decoder > /dev/null
    ckpt=/tmp/full/$name
  fi
  # each in its own folder: ViZDoom writes ./_vizdoom*
  mkdir -p $ev/$name.wd; cd $ev/$name.wd
  gpu=$(( i % ngpu )); i=$(( i + 1 ))
  # shellcheck disable=SC2086
  CUDA_VISIBLE_DEVICES=$gpu timeout "${EVAL_LIMIT:-0}" python3 -m interworld.cli.main eval --checkpoint "$ckpt" \
     --pose-model "$pose" --device "${EVAL_DEVICE:-cuda}" --out $ev/$name \
     ${EVAL_ARGS:---cases 2} $args --quiet > $ev/$name.out 2>&1 &
  cd - > /dev/null
done
fail=0; for job in $(jobs -p); do wait "$job" || fail=1; done
echo "evaluated (failures: $fail)"
for f in $ev/*.out; do echo "== $f"; tail -3 "$f"; done
tar czf /tmp/eval.tgz -C $ev --exclude="*.wd" .
ship /tmp/eval.tgz "$out"  # the strips of 8 evals are 21 MB: parts, `cat eval.tgz.part* | tar xz`
ls -la "$out"
check_return "$out" || true

#!/usr/bin/env bash
# Issue 3's next step: which VAE makes frames worth generating. The shipped VAE decodes deep
# into a stream at 3% of the real frames' sharpness, and fine-tuning its decoder against a
# discriminator raised that only to 5-20% (docs/TRAINING.md, run 9): the latents lack the detail.
# So new VAEs, trained with the discriminator from --adv-start on, one per GPU, side by side:
#   VARIANTS "DIM:ADV[:Z] ..." (default "32:0.5 48:0.5 64:0.5 64:0": width and discriminator apart;
#   Z, latent channels, default the preset's 16)
# then scripts/vae_report.py compares them deep into a stream (PSNR, sharpness, PNG strips) and
# the winner is copied to /tmp/runs/vae, where `scripts/train_small_gpu.sh OUT 0 SECONDS` (a follow-up
# call on the warm machine) trains a world model on it. OUT_DIR gets report.tgz (report.json and
# the strips) and the winner in fp16 as vae_fp16.partNN (15 MB parts) with vae_meta.tgz.
#
# Usage: scripts/vae_sweep_gpu.sh OUT_DIR SECONDS
# Env: VARIANTS, FRAMES (default 150000), VAE_STEPS (cosine schedule length, default 8000)
set -euo pipefail
out=${1:?OUT_DIR}; secs=${2:?SECONDS}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lease_data.sh
source "$root/scripts/lease_data.sh"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$root/src" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4
iw() { python3 -m interworld.cli.main "$@"; }
data=/tmp/doom; runs=/tmp/runs
t0=$(date +%s); stop=$(( t0 + secs - 75 ))  # 75 s to report and pack
record_lease_data "${FRAMES:-150000}"
mkdir -p $runs "$out"
gpu=0; names=()
for v in ${VARIANTS:-32:0.5 48:0.5 64:0.5 64:0}; do
  IFS=: read -r dim adv z <<< "$v"; name=vae_${dim}_$adv${z:+_z$z}; names+=($runs/$name)
  CUDA_VISIBLE_DEVICES=$gpu iw train vae --data $data --out $runs/$name --preset small --vae-dim "$dim" \
     ${z:+--vae-z $z} --adversarial "$adv" --adv-start 1500 --steps "${VAE_STEPS:-8000}" --batch 16 --latents 3 \
     --lr 5e-4 --time-limit $(( stop - $(date +%s) )) --val-every 1000 --ckpt-every 100000 --quiet \
     > $runs/$name.out 2>&1 &
  gpu=$(( gpu + 1 ))
done
fail=0; for job in $(jobs -p); do wait "$job" || fail=1; done
echo "trained at $(( $(date +%s) - t0 )) s (failures: $fail)"
ok=(); for r in "${names[@]}"; do [ -f $r/model.safetensors ] && ok+=($r) || tail -5 $r.out; done
report_vae "$out" "${ok[@]}"
win=$(python3 -c "import json; print(json.load(open('/tmp/report/report.json'))['winner'])")
rm -rf $runs/vae && cp -r $runs/$win $runs/vae
pack_vae "$out"
ls -la "$out"

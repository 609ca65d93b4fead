# Sourced by the lease scripts (train_small_gpu.sh, sharpen_gpu.sh, vae_sweep_gpu.sh).
# record_lease_data FRAMES [record args...]: FRAMES of the training maps ($MAPS, default freedoom2
# MAP01-MAP18) into /tmp/doom on all cores, and 8000 of the validation maps into /tmp/doom/val,
# unless they are there: a follow-up call on the warm machine finds them.
record_lease_data() {
  local frames=$1 t0
  shift
  [ -d /tmp/doom/val ] && return 0
  t0=$(date +%s)
  # shellcheck disable=SC2046
  python3 -m interworld.cli.main record --out /tmp/doom --maps ${MAPS:-$(printf 'MAP%02d ' $(seq 1 18))} \
     --frames "$frames" --workers "$(nproc)" "$@" --quiet
  python3 -m interworld.cli.main record --out /tmp/doom/val --maps MAP19 MAP20 --frames 8000 --workers 8 --seed 1 \
     "$@" --quiet
  echo "recorded in $(( $(date +%s) - t0 )) s"; du -sh /tmp/doom
}

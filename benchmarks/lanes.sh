# Sourced by the lease scripts: `lane GPUS NAME CMD...` runs CMD on the GPUs listed (its own
# CUDA_VISIBLE_DEVICES and torchrun MASTER_PORT, so lanes on disjoint GPUs can run side by side
# with `&` and `wait`), logs to $out/NAME.log and cuts it at $deadline (seconds since the
# epoch): a run that cannot finish is noted in $out/skipped.txt, and what it wrote stays.
lane() {
  local gpus=$1 name=$2; shift 2
  local left=$(( deadline - $(date +%s) ))
  local port=$(( 29500 + ${gpus%%,*} ))  # lanes side by side never share their first GPU
  if (( left < 30 )); then echo "skipped $name: ${left}s left" | tee -a "$out/skipped.txt"; return; fi
  echo "== $name on GPUs $gpus ($left s left)"
  CUDA_VISIBLE_DEVICES=$gpus MASTER_PORT=$port timeout "$left" "$@" > "$out/$name.log" 2>&1 \
    || echo "$name ended with $?" | tee -a "$out/skipped.txt"
}

# Sourced by the lease scripts (train_small_gpu.sh, sharpen_gpu.sh, vae_sweep_gpu.sh, distill_gpu.sh,
# eval_gpu.sh): what they share.
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

# report_vae OUT_DIR RUN...: scripts/vae_report.py on the VAE runs (PSNR and sharpness deep in a
# stream, strips, the winner) with each run's log, as OUT_DIR/report.tgz; report.json stays in /tmp/report.
report_vae() {
  local out=$1 r
  shift
  rm -rf /tmp/report && mkdir -p /tmp/report
  python3 "$(dirname "${BASH_SOURCE[0]}")/vae_report.py" --data /tmp/doom --out /tmp/report "$@" | tee /tmp/report/report.txt
  for r in "$@"; do cp "$r/log.jsonl" "/tmp/report/$(basename "$r").log.jsonl"; done
  tar czf "$out/report.tgz" -C /tmp report
}

# pack_vae OUT_DIR [RUNS]: RUNS/vae (default /tmp/runs/vae) in fp16 as OUT_DIR/vae_fp16.partNN (15 MB
# parts), and its config, state and log as OUT_DIR/vae_meta.tgz.
pack_vae() {
  local out=$1 runs=${2:-/tmp/runs}
  rm -rf /tmp/pack/vae && python3 "$(dirname "${BASH_SOURCE[0]}")/fp16_copy.py" "$runs/vae" /tmp/pack/vae
  split -b 15M -d /tmp/pack/vae/model.safetensors "$out/vae_fp16.part"
  (cd "$runs" && tar czf "$out/vae_meta.tgz" --exclude='*.safetensors' --exclude=tb vae)
}

# ship FILE OUT_DIR: FILE moved into OUT_DIR, as FILE's name + .partNN in 15 MB parts when it is over
# 15 MB (a returned file may have 16 MiB at most); `cat NAME.part* > NAME` joins them.
ship() {
  if [ "$(stat -c %s "$1")" -gt 15000000 ]; then
    split -b 15M -d "$1" "$2/$(basename "$1").part" && rm "$1"
  else
    mv "$1" "$2/"
  fi
}

# check_return OUT_DIR: warn when OUT_DIR holds more than one call brings back (8 files of at most
# 16 MiB, 64 MiB together): the device tool leaves the rest out without failing the call (run 26
# lost two of a teacher's seven parts that way, and cut them again in a second call).
check_return() {
  local n bytes big
  # one listing of the sizes: the file count, the bytes together, the files over 16 MiB
  read -r n bytes big < <(find "$1" -type f -printf '%s\n' |
    awk '{n++; s += $1; if ($1 > 16 * 1048576) b++} END {printf "%d %.0f %d\n", n, s, b}')
  if [ "$n" -gt 8 ] || [ "$bytes" -gt $(( 64 * 1048576 )) ] || [ "$big" -gt 0 ]; then
    echo "WARNING: $1 holds $n files, $(( bytes / 1048576 )) MiB ($big over 16 MiB); a call brings back" \
         "8 files of up to 16 MiB, 64 MiB together: the rest stays on the machine, for a follow-up call" >&2
    return 1
  fi
}

# A run that spans several calls on a warm machine (docs/TRAINING.md, run 27): a call's processes
# are killed when it returns, except those in a process session of their own, which run on until
# the machine goes back (the device tool's README). One detached run loads its data and compiles
# once, where a run resumed in each call does both again every call (160 s of compiling on 4 GPUs).
# detach_start NAME CMD...: CMD in its own session; its output in $DETACH_DIR/NAME.log (default
#   /tmp), and NAME.rc with its exit status once it has ended.
detach_start() {
  local name=$1 dir=${DETACH_DIR:-/tmp}
  shift
  rm -f "$dir/$name.rc"
  setsid bash -c '"$@" > "$0.log" 2>&1 < /dev/null; echo $? > "$0.rc.tmp" && mv "$0.rc.tmp" "$0.rc"' \
    "$dir/$name" "$@" > /dev/null 2>&1 < /dev/null &  # holding the call's output open would hold the call
}

# detach_wait NAME SECONDS [RESULTS [DEST]]: wait up to SECONDS for the run NAME, print its log's
# tail, and once it has ended copy the files in RESULTS into DEST (default $OUT), to come back with
# this call. Returns the run's exit status, or 3 while it is still running: call it again from the
# next call, made at once (a machine left idle 30 s goes back, and the run with it).
detach_wait() {
  local name=$1 end=$(( $(date +%s) + $2 )) res=${3:-} dest=${4:-${OUT:-}} dir=${DETACH_DIR:-/tmp}
  while [ ! -f "$dir/$name.rc" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 2; done
  tail -n 15 "$dir/$name.log" 2>/dev/null
  [ -f "$dir/$name.rc" ] || { echo "$name: still running"; return 3; }
  if [ -n "$res" ] && [ -n "$dest" ]; then cp -r "$res"/. "$dest"/ && check_return "$dest"; fi
  return "$(cat "$dir/$name.rc")"
}

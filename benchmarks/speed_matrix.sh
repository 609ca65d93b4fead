#!/usr/bin/env bash
# Issue 8's one-GPU table: each speed-up of engine/accel.py alone, then together, against the
# bf16 eager baseline, at Matrix-Game-3.0 size (mg3-5b, 704x1280, 3 steps). One JSON per run
# and a markdown table of them (benchmarks/bench_table.py) in OUT_DIR.
# Usage: benchmarks/speed_matrix.sh OUT_DIR SCHEME [ROWS...]
#   ROWS (default: all): eager cudnn compile graphs int8 fp8 light overlap small-chunk offload offload-int8 best
#   best: the speed-ups that each paid alone on an H100/H200 (compile, the light decoder); 8-bit
#   weights, cuDNN attention and one-GPU overlap did not (benchmarks/RESULTS.md)
# A command of the device tool may run 10 minutes: pass a few ROWS per call. The int8, fp8 and
# best rows need torchao, which the GPU image lacks: carry its wheel (torchao 0.18.0, cp310-abi3,
# for torch >= 2.11) in .whl/ and install it as the device README says before calling this.
set -euo pipefail
out=${1:?OUT_DIR}; scheme=${2:?SCHEME}; shift 2
rows=${*:-eager cudnn compile graphs int8 fp8 light overlap small-chunk offload offload-int8 best}
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(cd "$(dirname "$0")/.." && pwd)/src"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
common=(--preset mg3-5b --device cuda --height 704 --width 1280 --steps 3 --scheme "$scheme" --warmup 2 --iters 5)
for row in $rows; do
  case $row in
    eager) extra=(--new-latents 10) ;;
    cudnn) extra=(--new-latents 10 --attention cudnn) ;;
    compile) extra=(--new-latents 10 --compile) ;;
    graphs) extra=(--new-latents 10 --compile reduce-overhead) ;;
    int8) extra=(--new-latents 10 --quantize int8) ;;
    fp8) extra=(--new-latents 10 --quantize fp8) ;;
    light) extra=(--new-latents 10 --light-decoder 0.5) ;;
    overlap) extra=(--new-latents 10 --decode overlap) ;;
    small-chunk) extra=(--new-latents 1) ;;
    offload) extra=(--new-latents 10 --offload) ;;
    offload-int8) extra=(--new-latents 10 --offload --quantize int8) ;;
    best) extra=(--new-latents 10 --compile --light-decoder 0.5) ;;
    *) echo "unknown row $row"; exit 2 ;;
  esac
  echo "== $row: ${extra[*]}"
  python3 -m interworld.cli.main bench "${common[@]}" "${extra[@]}" --json "$out/${scheme}_${row}.json" \
    || echo "row $row failed"
done
python3 "$(dirname "$0")/bench_table.py" "$out"/*.json > "$out/table_${scheme}.md" && cat "$out/table_${scheme}.md"

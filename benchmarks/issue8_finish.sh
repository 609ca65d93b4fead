#!/usr/bin/env bash
# What issue 8 still lacks, in one call of the device tool on one H100 (about 8 minutes):
# the GPU tests (first: they were last run before the offload changes), then mg3-5b's `best`
# one-GPU row (compile + light decoder) against eager in both schemes, and the offload rows with
# and without 8-bit weights. torchao must be installed (its wheel carried, see speed_matrix.sh).
# Usage: benchmarks/issue8_finish.sh OUT_DIR
set -uo pipefail
out=${1:?OUT_DIR}; here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$here/../src" PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
(cd "$here/.." && python3 -m pytest -x -vv -k gpu tests 2>&1 | tail -40) > "$out/gpu_tests.txt"
tail -5 "$out/gpu_tests.txt"
"$here/speed_matrix.sh" "$out" causal eager best offload offload-int8
"$here/speed_matrix.sh" "$out" segment eager best

#!/usr/bin/env bash
# The ViZDoom wheel a GPU lease carries (the machine has no network), slimmed from 39 MB to about 18:
# freedoom1.wad is left out (the leases record freedoom2 maps), and ICU's 27 MB data library is
# replaced by a stub: the python module links boost_regex, which links ICU, but recording never calls
# it (frames, actions and poses recorded with the stub are identical; tests/test_lease_scripts.py).
# Every megabyte saved is room for a checkpoint in the 64 MiB a call carries.
# Usage: scripts/lease_wheel.sh [OUT_DIR (default .whl)] [PYTHON_VERSION (default 3.12, the machine's)]
# Needs pip and a C compiler here. Install there: see docs/TRAINING.md, "Moving checkpoints".
set -euo pipefail
out=${1:-.whl}; py=${2:-3.12}; tag=cp${py/./}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python3 -m pip download -q vizdoom==1.3.2 --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
  --platform manylinux_2_28_x86_64 -d "$work/dl"
whl=$(ls "$work"/dl/vizdoom-*-"$tag"-*.whl)
python3 - "$whl" "$work/x" <<'PY'
import os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
z.extractall(sys.argv[2])
for i in z.infolist():  # extractall drops the modes: the engine's binary must stay executable
    if i.external_attr >> 16:
        os.chmod(os.path.join(sys.argv[2], i.filename), (i.external_attr >> 16) & 0o777)
PY
rm "$work"/x/vizdoom/freedoom1.wad
data=$(ls "$work"/x/vizdoom.libs/libicudata-*.so*)
soname=$(readelf -d "$data" | sed -n 's/.*SONAME.*\[\(.*\)\].*/\1/p')
sym=$(nm -D --defined-only "$data" | awk '$2 == "R" {print $3}')  # icudtNN_dat: the one symbol it exports
echo "const char $sym[64] = {0};" > "$work/stub.c"
cc -shared -fPIC -Wl,-soname,"$soname" -o "$data" "$work/stub.c"
mkdir -p "$out"
python3 - "$work/x" "$out/$(basename "$whl")" <<'PY'
# rezip with a RECORD that lists the files as they now are (pip checks the hashes)
import base64, hashlib, os, sys, zipfile
root, dst = sys.argv[1], sys.argv[2]
files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
record = next(f for f in files if f.endswith(".dist-info/RECORD"))
lines = []
for f in files:
    if f == record:
        continue
    data = open(os.path.join(root, f), "rb").read()
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    lines.append(f"{f},sha256={h},{len(data)}")
lines.append(f"{record},,")
with open(os.path.join(root, record), "w") as fh:
    fh.write("\n".join(lines) + "\n")
with zipfile.ZipFile(dst + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
    for f in files:
        z.write(os.path.join(root, f), f)
os.replace(dst + ".tmp", dst)
PY
ls -la "$out/$(basename "$whl")"

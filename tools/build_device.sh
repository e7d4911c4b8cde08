#!/usr/bin/env bash
# Builds everything a GPU machine needs, on this machine, into .device/ (ignored by git):
# the xlt binary, the GPU test executables (tests/cuda_*.rs; not the cuda_emu* ones, which run
# on the host emulator in CI) and the kernel benches, kernels compiled by nvcc (spills are
# errors), stripped. What travels to the GPU machine, the working tree with .device/, is
# limited to 64 MiB: the build fails, listing the sizes, when .device/ alone or with the tree
# exceeds it (XLT_DEVICE_LIMIT_MIB changes the limit). The GPU machine needs no Rust toolchain:
# only .device/ and the scripts in tools/.
# Then, on the GPU machine: bash tools/gpu_check.sh OUTDIR (or tools/profile_gpu.sh OUTDIR).
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC="$(bash tools/install-nvcc.sh | tail -n1)"
export NVCC XLT_REQUIRE_NVCC=1 XLT_DENY_SPILLS=1
cargo build --release
rm -rf .device && mkdir -p .device/tests
cp target/release/xlt .device/
cargo test --release --no-run --message-format=json 2>/dev/null \
    | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        name = m["target"]["name"]
        # cuda_emu* run kernels on the host emulator from this checkout: CI covers them
        if name.startswith("cuda_") and not name.startswith("cuda_emu"):
            shutil.copy(m["executable"], ".device/tests/" + name)
            print(".device/tests/" + name)
'
cargo bench --no-run --message-format=json --bench cuda_kernels 2>/dev/null \
    | python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda_kernels":
        shutil.copy(m["executable"], ".device/cuda_kernels")
        print(".device/cuda_kernels")
'
ptxas=$(find target/release/build -path '*/xlt-*/out/ptxas.log' -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2-)
cp "$ptxas" .device/ptxas.log
# Debug info is most of each binary; what travels to the GPU machine is limited in size.
strip .device/xlt .device/cuda_kernels .device/tests/*

# The size check: .device/ alone, and with the working tree (tracked and untracked files that
# git does not ignore) that travels with it.
limit_mib="${XLT_DEVICE_LIMIT_MIB:-64}"
limit=$((limit_mib * 1024 * 1024))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
dev_bytes=$(du -sb .device | cut -f1)
tree_bytes=$(python3 -c '
import os, subprocess
r = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], capture_output=True)
print(sum(os.path.getsize(p) for p in r.stdout.decode().split("\0") if p and os.path.isfile(p)))')
echo ".device/: $(mib "$dev_bytes"); working tree: $(mib "$tree_bytes"); together $(mib $((dev_bytes + tree_bytes))) of $limit_mib MiB"
if [ "$dev_bytes" -gt "$limit" ] || [ $((dev_bytes + tree_bytes)) -gt "$limit" ]; then
    echo "error: what travels to the GPU machine exceeds $limit_mib MiB; the largest files in .device/:" >&2
    find .device -type f -printf '%s %p\n' | sort -rn | while read -r bytes path; do
        printf '  %10s  %s\n' "$(mib "$bytes")" "$path" >&2
    done
    exit 1
fi

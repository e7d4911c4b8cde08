#!/usr/bin/env bash
# Builds everything a GPU machine needs, on this machine, into .device/ (ignored by git):
# the xlt binary, the GPU test executables and the kernel benches, kernels compiled by nvcc (spills are errors).
# Then, on the GPU machine: bash tools/gpu_check.sh OUTDIR
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
        # cuda_emu runs kernels on the host emulator from this checkout: CI covers it
        if name.startswith("cuda_") and name != "cuda_emu":
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
cp "$(ls -t target/release/build/xlt-*/out/ptxas.log | head -n1)" .device/ptxas.log
# Debug info is most of each binary; what travels to the GPU machine is limited in size.
strip .device/xlt .device/cuda_kernels .device/tests/*
du -sh .device

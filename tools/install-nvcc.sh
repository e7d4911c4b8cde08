#!/usr/bin/env bash
# Installs the pinned CUDA 13.0 compiler (nvcc, ptxas, cicc, headers) and NVRTC from PyPI wheels
# into a virtual environment, with no GPU and no system CUDA needed, and prints the nvcc path as
# its last line (NVRTC's library is in ../lib next to it). Re-running is cheap: an existing
# install is reused.
#
#   NVCC=$(bash tools/install-nvcc.sh | tail -n1)
#
# XLT_NVCC_VENV picks the folder (default: ~/.cache/xlt/nvcc-13.0).
set -euo pipefail

venv="${XLT_NVCC_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/xlt/nvcc-13.0}"
find_nvcc() { find "$venv" -path '*/nvidia/cu13/bin/nvcc' -type f 2>/dev/null | head -n1 || true; }

nvcc="$(find_nvcc)"
if [ -z "$nvcc" ] || [ ! -e "$(dirname "$nvcc")/../lib/libnvrtc.so.13" ]; then
    echo "installing the CUDA 13.0 compiler wheels into $venv" >&2
    python3 -m venv "$venv"
    # All five are needed: without -cccl, cuda_fp16.h fails on <nv/target>; nvvm is pinned so
    # pip does not pull a cicc newer than this nvcc.
    # NVRTC lets the tests compile the run-time fallback path too.
    "$venv/bin/pip" install -q --disable-pip-version-check \
        "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-cuda-runtime==13.0.*" \
        "nvidia-cuda-cccl==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-nvrtc==13.0.*" >&2
    nvcc="$(find_nvcc)"
fi
if [ -z "$nvcc" ] || ! "$nvcc" --version >/dev/null 2>&1; then
    echo "error: nvcc was not found or does not run after installing into $venv" >&2
    exit 1
fi
"$nvcc" --version | tail -n2 >&2
echo "$nvcc"

#!/usr/bin/env bash
# Everything a GPU must show, in one go, on a GPU machine (binaries from tools/build_device.sh
# in .device/): the GPU parity tests (every kernel against its CPU twin, the whole model,
# training, determinism) with a missing GPU counted as a failure, the per-kernel criterion
# benches (GB/s, FLOP/s), then `xlt bench --device cuda`
# next to PyTorch + transformers on the same shapes, in the same run. Logs go to OUTDIR
# (gpu_check.log, tests.log, kernels.log, bench.jsonl); a summary table is printed last.
#
#   bash tools/gpu_check.sh OUTDIR            # tests + benches (PyTorch eager)
#   XLT_BENCH_COMPILE=1 bash tools/gpu_check.sh OUTDIR   # also torch.compile (slower)
#   XLT_SKIP_BENCH=1 bash tools/gpu_check.sh OUTDIR      # tests only
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: gpu_check.sh OUTDIR}"
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
# cuBLAS may live only inside a Python wheel there: add every folder holding it.
libdirs=$(find /usr /opt /root /home /lib /lib64 \( -name 'libcublas.so*' -o -name 'libcublasLt.so*' \
    -o -name 'libnvrtc.so*' \) -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:-}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldconfig -p | grep -E 'libcuda\.so|libcublas|libnvrtc' | head || true
[ -x .device/xlt ] || { echo "no .device/xlt: run tools/build_device.sh first and carry .device"; exit 1; }

echo "== tests (XLT_REQUIRE_GPU=1: a skip is a failure)"
export XLT_REQUIRE_GPU=1
declare -a rows
: > "$out/tests.log"
for t in .device/tests/*; do
    name=$(basename "$t")
    echo "--- $name" >> "$out/tests.log"
    start=$SECONDS
    "$t" --test-threads=1 >> "$out/tests.log" 2>&1
    rc=$?
    secs=$((SECONDS - start))
    result=$(grep -E '^test result:' "$out/tests.log" | tail -n1)
    rows+=("$(printf '%-22s %-5s %4ss  %s' "$name" "$([ $rc = 0 ] && echo ok || echo FAIL)" "$secs" "$result")")
    grep -E '^test .* FAILED|panicked|assert' "$out/tests.log" | tail -n 20 || true
done

kernel_rows=()
if [ -z "${XLT_SKIP_BENCH:-}" ] && [ -x .device/cuda_kernels ]; then
    echo "== kernel benches (bf16, XLM-R Base shapes)"
    .device/cuda_kernels --bench > "$out/kernels.log" 2>&1
    # criterion prints the name, then "time: [...]" and "thrpt: [lo mid hi]"
    while IFS= read -r row; do kernel_rows+=("$row"); done < <(python3 - "$out/kernels.log" <<'PY'
import re, sys
name = None
for line in open(sys.argv[1]):
    m = re.match(r"^(cuda_\S+)", line)
    if m:
        name = m.group(1).split("/")[-1]
    t = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+)", line)
    if t and name:
        time = t.group(1) + " " + t.group(2)
    h = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\S+)", line)
    if h and name:
        print(f"{name:<42} {time:>12}  {h.group(1)} {h.group(2)}")
        name = None
PY
)
fi

echo "== device selection"
.device/xlt bench --device auto --steps 1 --warmup 0 --batch 2 --seq 16 2>&1 | tail -n2

bench_rows=()
if [ -z "${XLT_SKIP_BENCH:-}" ]; then
    echo "== benches (random weights; median step; same GPU, same run)"
    : > "$out/bench.jsonl"
    for preset in xlmr-base xlmr-large; do
        for shape in "32 128" "8 512"; do
            set -- $shape
            b=$1; s=$2
            x=$(.device/xlt bench --device cuda --precision bf16 --preset $preset --batch $b --seq $s \
                --steps 20 --warmup 5 --json 2>>"$out/gpu_check.log" | tail -n1)
            echo "$x" >> "$out/bench.jsonl"
            # the same step on the unfused attention path (permute + cuBLAS + row softmax)
            u=$(XLT_ATTENTION=unfused .device/xlt bench --device cuda --precision bf16 --preset $preset --batch $b \
                --seq $s --steps 20 --warmup 5 --json 2>>"$out/gpu_check.log" | tail -n1)
            echo "$u" >> "$out/bench.jsonl"
            p=$(python3 tools/bench_torch_gpu.py --preset $preset --batch $b --seq $s --steps 20 --warmup 10 \
                2>>"$out/gpu_check.log" | tail -n1)
            echo "$p" >> "$out/bench.jsonl"
            c=""
            if [ -n "${XLT_BENCH_COMPILE:-}" ]; then
                c=$(python3 tools/bench_torch_gpu.py --preset $preset --batch $b --seq $s --steps 20 --warmup 10 \
                    --compile 2>>"$out/gpu_check.log" | tail -n1)
                echo "$c" >> "$out/bench.jsonl"
            fi
            bench_rows+=("$(python3 - "$x" "$p" "$c" "$preset" "$b" "$s" "$u" <<'PY'
import json, sys
def tps(s):
    try:
        return json.loads(s)["tokens_per_s"]
    except Exception:
        return None
x, p, c = (tps(a) for a in sys.argv[1:4])
preset, b, s = sys.argv[4:7]
u = tps(sys.argv[7])
f = lambda v: f"{v:>10.0f}" if v else "       n/a"
ratio = f"{x / p:5.2f}x" if x and p else "  n/a"
rc = f"{x / c:5.2f}x" if x and c else "  n/a"
print(f"{preset:<11} B={b:<3} T={s:<4} xlt {f(x)} tok/s (unfused attention {f(u)})  torch {f(p)}  ({ratio})  "
      f"compile {f(c)}  ({rc})")
PY
)")
        done
    done
fi

echo
echo "== summary"
printf '%s\n' "${rows[@]}"
[ ${#kernel_rows[@]} -gt 0 ] && printf '%s\n' "${kernel_rows[@]}"
[ ${#bench_rows[@]} -gt 0 ] && printf '%s\n' "${bench_rows[@]}"
grep -q FAIL <<<"${rows[*]}" && exit 1 || exit 0

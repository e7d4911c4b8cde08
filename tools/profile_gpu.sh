#!/usr/bin/env bash
# Profiles one training step of `xlt bench --device cuda` (binaries from tools/build_device.sh in
# .device/) with XLT_NVTX=1, so that every kernel launch and GEMM, each encoder layer, the head
# and the optimizer step sit in named NVTX ranges, then writes to OUTDIR:
#   nsys (Nsight Systems: a timeline of the warm-up step(s) and the profiled step)
#     nsys.nsys-rep     open in Nsight Systems; the NVTX rows read as the encoder's op list
#     nsys_kernels.txt  GPU time per kernel (nsys stats cuda_gpu_kern_sum, kernels named by
#                       their innermost NVTX range where this nsys can)
#     nsys_nvtx.txt     time per NVTX range (nvtx_sum, and kernels per range: nvtx_kern_sum)
#     nsys_trace.txt    every kernel in launch order with its NVTX range (cuda_gpu_trace)
#   ncu (Nsight Compute: each kernel of the one step after the warm-up, replayed with counters)
#     ncu_kernels.md    per kernel: launches, time, share of the step, DRAM bandwidth, FLOP/s,
#                       SM and memory throughput (% of peak), then every launch in order
#     ncu.csv           the raw counters (ncu --page raw --csv), ncu_nvtx.csv the same named
#                       by NVTX range; ncu.ncu-rep the report (open in Nsight Compute)
# A missing tool is a line saying so, not a failure; the exit status is non-zero only when a
# profiler that was found failed.
#
#   bash tools/profile_gpu.sh OUTDIR [xlt bench args...]
#       default args: --preset xlmr-base --batch 32 --seq 128 --precision bf16 --warmup 1
#       (--device, --json and --steps are set here: one step is profiled, after --warmup ones)
#   bash tools/profile_gpu.sh --ncu-table NCU.csv [NCU_NVTX.csv]   # the table of a raw CSV
#
#   XLT_PROFILE=nsys|ncu|both   which profilers (default both)
#   XLT_DEVICE_DIR=DIR          the binaries (default .device)
#   XLT_NCU_SKIP=N              kernel launches before the profiled step (default: counted by
#                               a cheap ncu pass over the set-up and warm-up steps alone)
#   XLT_NCU_MAX=N               at most N kernels profiled (default 4000)
#   XLT_NCU_METRICS=a,b,...     the counters to collect (default: time, DRAM bytes, SM and
#                               memory throughput, FP32 and tensor-core op counts, those this
#                               ncu knows on this GPU)
#   XLT_PROFILE_REP=0           do not keep ncu.ncu-rep (tools/gpu_check.sh: fewer files)
#   XLT_PROFILE_DEADLINE=EPOCH  finish by then (seconds since 1970; tools/gpu_check.sh sets it)
set -uo pipefail
script="$0"
say() { echo "profile_gpu: $*"; }

# ---- ncu CSV -> Markdown table (also runnable alone: --ncu-table) --------------------------
ncu_table() {
    python3 - "$@" <<'PY'
"""Reads ncu CSV (the wide --page raw form: one row per launch, one column per metric, a units
row; or the long --page details form: one row per metric) and prints Markdown tables."""
import csv
import os
import sys
from collections import OrderedDict

SCALE = {"": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}


def num(s):
    s = (s or "").strip().replace(",", "")
    try:
        return float(s)
    except ValueError:
        return None


def to_base(value, unit):
    """ncu's unit to base units: seconds, bytes, bytes/second; counts and % unchanged."""
    if value is None:
        return None
    unit = (unit or "").strip()
    for base in ("byte/second", "second", "byte"):
        if unit.endswith(base) and unit[: -len(base)] in SCALE:
            return value * SCALE[unit[: -len(base)]]
    return value * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}.get(unit, 1.0)


def read(path):
    """Launches in order: {id: {"kernel": name, metric: value in base units}}."""
    lines = open(path, newline="", errors="replace").read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        return OrderedDict()
    rows = list(csv.reader(lines[start:]))
    head = rows[0]
    col = {h: i for i, h in enumerate(head)}
    launches = OrderedDict()
    if "Metric Name" in col:  # long form
        for r in rows[1:]:
            if len(r) < len(head):
                continue
            k = launches.setdefault(r[col["ID"]], {"kernel": r[col["Kernel Name"]]})
            k[r[col["Metric Name"]]] = to_base(num(r[col["Metric Value"]]), r[col["Metric Unit"]])
        return launches
    units = {}
    for r in rows[1:]:
        if len(r) < len(head):
            continue
        if num(r[col["ID"]]) is None:  # the units row
            units = dict(zip(head, r))
            continue
        k = {"kernel": r[col.get("Kernel Name", 0)]}
        for h, v in zip(head, r):
            if "__" in h:
                k[h] = to_base(num(v), units.get(h, ""))
        launches[r[col["ID"]]] = k
    return launches


def get(k, *names):
    for n in names:
        if k.get(n) is not None:
            return k[n]
    return None


def flops(k):
    """FP32 FLOPs from the SASS counters (an FMA is 2) plus the tensor-core ops ncu counts."""
    parts = [
        (get(k, "sm__sass_thread_inst_executed_op_ffma_pred_on.sum"), 2),
        (get(k, "sm__sass_thread_inst_executed_op_fadd_pred_on.sum"), 1),
        (get(k, "sm__sass_thread_inst_executed_op_fmul_pred_on.sum"), 1),
        (get(k, "sm__ops_path_tensor_src_bf16_dst_fp32.sum"), 1),
        (get(k, "sm__ops_path_tensor_src_fp16_dst_fp32.sum"), 1),
    ]
    if all(v is None for v, _ in parts):
        return None
    return sum((v or 0) * w for v, w in parts)


def fmt(v, f="{:.1f}"):
    return "" if v is None else f.format(v)


def short(name, n=90):
    name = name.replace("|", "\\|")
    return name if len(name) <= n else name[: n - 1] + "…"


def main():
    launches = read(sys.argv[1])
    names = read(sys.argv[2]) if len(sys.argv) > 2 and os.path.exists(sys.argv[2]) else {}
    if not launches:
        print("no kernels in", sys.argv[1])
        return 1
    total = sum(get(k, "gpu__time_duration.sum") or 0 for k in launches.values())
    groups = OrderedDict()
    for k in launches.values():
        g = groups.setdefault(k["kernel"], {"n": 0, "t": 0.0, "bytes": None, "flop": None,
                                            "sm": 0.0, "sm_t": 0.0, "mem": 0.0, "mem_t": 0.0})
        t = get(k, "gpu__time_duration.sum") or 0.0
        g["n"] += 1
        g["t"] += t
        b = get(k, "dram__bytes.sum")
        if b is None and get(k, "dram__bytes.sum.per_second") is not None:
            b = k["dram__bytes.sum.per_second"] * t
        if b is not None:
            g["bytes"] = (g["bytes"] or 0) + b
        f = flops(k)
        if f is not None:
            g["flop"] = (g["flop"] or 0) + f
        # the throughputs (% of peak): averages weighted by time
        for key, metric in (("sm", "sm__throughput.avg.pct_of_peak_sustained_elapsed"),
                            ("mem", "gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed")):
            if get(k, metric) is not None:
                g[key] += k[metric] * t
                g[key + "_t"] += t
    print(f"{len(launches)} kernel launches, {total * 1e3:.3f} ms of kernel time (the sum of each "
          "kernel's replayed time: no overlap, caches flushed before each, so more than the step's wall time).\n")
    print("| kernel | launches | total µs | share | mean µs | DRAM GB/s | TFLOP/s | SM % | memory % |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ranked = sorted(groups.items(), key=lambda kv: -kv[1]["t"])
    for name, g in ranked:
        t = g["t"]
        bw = g["bytes"] / t / 1e9 if g["bytes"] is not None and t else None
        tf = g["flop"] / t / 1e12 if g["flop"] is not None and t else None
        sm = g["sm"] / g["sm_t"] if g["sm_t"] else None
        mem = g["mem"] / g["mem_t"] if g["mem_t"] else None
        share = 100 * t / total if total else None
        print(f"| `{short(name)}` | {g['n']} | {t * 1e6:.1f} | {fmt(share)}% | {t / g['n'] * 1e6:.1f} | "
              f"{fmt(bw, '{:.0f}')} | {fmt(tf, '{:.2f}')} | {fmt(sm)} | {fmt(mem)} |")
    print("\nEvery launch in order (the op list; `op` is the innermost NVTX range, with XLT_NVTX=1):\n")
    print("| # | op | kernel | µs | DRAM GB/s | TFLOP/s | SM % | memory % |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for i, (lid, k) in enumerate(launches.items()):
        t = get(k, "gpu__time_duration.sum")
        b = get(k, "dram__bytes.sum")
        bw = b / t / 1e9 if b is not None and t else get(k, "dram__bytes.sum.per_second")
        if bw is not None and b is None:
            bw /= 1e9
        f = flops(k)
        tf = f / t / 1e12 if f is not None and t else None
        op = names.get(lid, {}).get("kernel", "")
        op = "" if op == k["kernel"] else op
        print(f"| {i} | {short(op, 60)} | `{short(k['kernel'], 70)}` | {fmt(t * 1e6 if t else None)} | "
              f"{fmt(bw, '{:.0f}')} | {fmt(tf, '{:.2f}')} | "
              f"{fmt(get(k, 'sm__throughput.avg.pct_of_peak_sustained_elapsed'))} | "
              f"{fmt(get(k, 'gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed'))} |")
    return 0


sys.exit(main())
PY
}

if [ "${1:-}" = --ncu-table ]; then
    shift
    [ $# -ge 1 ] || { echo "usage: $script --ncu-table NCU.csv [NCU_NVTX.csv]" >&2; exit 2; }
    ncu_table "$@"
    exit
fi

usage="usage: bash tools/profile_gpu.sh OUTDIR [xlt bench args...]  (default: --preset xlmr-base --batch 32 --seq 128 --precision bf16 --warmup 1)"
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then echo "$usage" >&2; exit 2; fi
mkdir -p "$1" && out=$(cd "$1" && pwd) || exit 2
shift
cd "$(dirname "$0")/.." || exit 2
dev="${XLT_DEVICE_DIR:-.device}"
[ -x "$dev/xlt" ] || { say "no $dev/xlt: run tools/build_device.sh first and carry .device"; exit 1; }
which="${XLT_PROFILE:-both}"
case "$which" in nsys|ncu|both) ;; *) say "XLT_PROFILE=$which: expected nsys, ncu or both"; exit 2 ;; esac

# ---- the xlt bench command: the researcher's args, then defaults for what they left out ------
args=()
seen=" "
warmup=1
while [ $# -gt 0 ]; do
    flag=$1
    shift
    [ "$flag" = --json ] && continue
    case "$flag" in
        --*=*) val=${flag#*=}; flag=${flag%%=*} ;;
        --*) [ $# -gt 0 ] || { echo "$flag needs a value; $usage" >&2; exit 2; }; val=$1; shift ;;
        *) echo "unexpected argument $flag; $usage" >&2; exit 2 ;;
    esac
    case "$flag" in
        --device|--steps) say "$flag $val ignored: one step is profiled on --device cuda" ;;
        --warmup) warmup=$val ;;
        *) args+=("$flag" "$val"); seen+="$flag " ;;
    esac
done
has() { [[ "$seen" == *" $1 "* ]]; }
if ! has --preset && ! has --hidden && ! has --layers && ! has --heads && ! has --ffn && ! has --vocab; then
    args+=(--preset xlmr-base)
fi
has --batch || args+=(--batch 32)
has --seq || args+=(--seq 128)
has --precision || args+=(--precision bf16)
bench=("$dev/xlt" bench --device cuda --json "${args[@]}")
say "profiling one step of: ${bench[*]} --warmup $warmup --steps 1"

# ---- time left (XLT_PROFILE_DEADLINE) ---------------------------------------------------------
deadline="${XLT_PROFILE_DEADLINE:-0}"
left() { # seconds until the deadline, or a large number when there is none
    if [ "$deadline" -gt 0 ]; then echo $((deadline - $(date +%s))); else echo 86400; fi
}
limit() { # run "$@" with at most $1 seconds (SIGINT first: the profilers write what they have)
    local s=$1
    shift
    [ "$s" -ge 5 ] || { say "no time left for: $1"; return 124; }
    timeout -s INT -k 15 "$s" "$@"
}

# ---- CUDA libraries and tools that may not be on the paths --------------------------------
if [ -z "${XLT_LIBS_READY:-}" ]; then
    # cuBLAS, NVRTC and NVTX may live only inside Python wheels there: add every folder with one.
    libdirs=$(timeout 60 find /usr /opt /root /home /lib /lib64 \( -name 'libcublas.so*' -o -name 'libcublasLt.so*' \
        -o -name 'libnvrtc.so*' -o -name 'libnvToolsExt.so*' \) -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
    export LD_LIBRARY_PATH="${libdirs%:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
find_tool() { # NAME GLOB...: on PATH, else the newest match of the globs
    command -v "$1" 2>/dev/null && return 0
    shift
    local g f best=""
    for g in "$@"; do
        # shellcheck disable=SC2086 # the globs are meant to expand
        for f in $g; do [ -x "$f" ] && [ -f "$f" ] && best=$f; done
    done
    [ -n "$best" ] && echo "$best"
}
export XLT_NVTX=1
# xlt names its ranges through libnvToolsExt; without it XLT_NVTX=1 does nothing (no error).
nvtx_lib=$(ldconfig -p 2>/dev/null | grep -o '/[^ ]*libnvToolsExt\.so[^ ]*' | head -n1)
if [ -z "$nvtx_lib" ]; then
    IFS=: read -r -a libpath <<< "${LD_LIBRARY_PATH:-}"
    for d in "${libpath[@]}"; do
        for f in "$d"/libnvToolsExt.so*; do [ -e "$f" ] && [ -z "$nvtx_lib" ] && nvtx_lib=$f; done
    done
fi
if [ -n "$nvtx_lib" ]; then
    say "NVTX ranges through $nvtx_lib"
else
    say "WARNING: no libnvToolsExt.so* (ldconfig, LD_LIBRARY_PATH): XLT_NVTX=1 names nothing, kernels keep their own names"
fi
status=0

# ---- nsys: the timeline and its text summaries ------------------------------------------------
run_nsys() {
    local nsys rep imp r t
    if ! nsys=$(find_tool nsys '/opt/nvidia/nsight-systems/*/bin/nsys' '/usr/local/cuda*/bin/nsys' \
        '/usr/local/cuda*/nsight-systems*/bin/nsys' '/opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys'); then
        say "nsys: not found (PATH, /opt/nvidia/nsight-systems, /usr/local/cuda*): no timeline"
        return 0
    fi
    say "nsys: $nsys ($("$nsys" --version 2>/dev/null | head -n1))"
    rm -f "$out/nsys.nsys-rep" "$out/nsys.qdstrm" "$out/nsys.sqlite"
    t=$(left)
    limit "$((t > 300 ? 300 : t))" "$nsys" profile --trace cuda,nvtx --sample none --cpuctxsw none \
        --force-overwrite true --output "$out/nsys" "${bench[@]}" --warmup "$warmup" --steps 1 2>&1 | tail -n 20
    rep="$out/nsys.nsys-rep"
    if [ ! -f "$rep" ] && [ -f "$out/nsys.qdstrm" ]; then
        # Some installs leave the raw stream: its importer sits next to nsys in the same package.
        imp=$(find "$(dirname "$nsys")/.." -name QdstrmImporter -type f 2>/dev/null | head -n1)
        if [ -n "$imp" ]; then
            say "nsys left nsys.qdstrm only: importing it with $imp"
            "$imp" -i "$out/nsys.qdstrm" 2>&1 | tail -n 5
        fi
    fi
    if [ ! -f "$rep" ]; then
        say "nsys: FAILED, no $rep (see the lines above)"
        status=1
        return 0
    fi
    # Report names changed across nsys versions: try the new, then the old.
    stats() { # FILE REPORT...: the first report this nsys knows, as text
        local file=$1 r
        shift
        for r in "$@"; do
            if "$nsys" stats --force-export=true --report "$r" "$rep" > "$file.tmp" 2>&1 \
                && ! grep -qE "could not be found|[Uu]nknown report|ERROR" "$file.tmp"; then
                { echo "# nsys stats --report $r $rep"; cat "$file.tmp"; echo; } >> "$file"
                rm -f "$file.tmp"
                return 0
            fi
        done
        { echo "# none of these reports ran: $*"; cat "$file.tmp"; } >> "$file"
        rm -f "$file.tmp"
    }
    : > "$out/nsys_kernels.txt"; : > "$out/nsys_nvtx.txt"; : > "$out/nsys_trace.txt"
    stats "$out/nsys_kernels.txt" cuda_gpu_kern_sum:nvtx-name cuda_gpu_kern_sum gpukernsum
    stats "$out/nsys_nvtx.txt" nvtx_sum nvtxsum
    stats "$out/nsys_nvtx.txt" nvtx_kern_sum nvtx_gpu_proj_sum
    stats "$out/nsys_trace.txt" cuda_gpu_trace:nvtx-name cuda_gpu_trace gputrace
    rm -f "$out/nsys.sqlite"
    say "nsys: $rep, nsys_kernels.txt, nsys_nvtx.txt, nsys_trace.txt (warm-up step(s) and the profiled step)"
    head -n 25 "$out/nsys_kernels.txt"
}

# ---- ncu: each kernel of one step, replayed with hardware counters ---------------------------
run_ncu() {
    local ncu tmp rep skip max want m avail t csv gpu
    if ! ncu=$(find_tool ncu '/usr/local/cuda*/bin/ncu' '/opt/nvidia/nsight-compute/*/ncu'); then
        say "ncu: not found (PATH, /usr/local/cuda*/bin, /opt/nvidia/nsight-compute): no per-kernel table"
        return 0
    fi
    say "ncu: $ncu ($("$ncu" --version 2>/dev/null | tail -n1))"
    tmp=$(mktemp -d)
    # The counters: those this ncu knows on this GPU (a name it does not know fails the run).
    want="${XLT_NCU_METRICS:-gpu__time_duration.sum,dram__bytes.sum,dram__bytes.sum.per_second,\
sm__throughput.avg.pct_of_peak_sustained_elapsed,gpu__compute_memory_throughput.avg.pct_of_peak_sustained_elapsed,\
sm__sass_thread_inst_executed_op_ffma_pred_on.sum,sm__sass_thread_inst_executed_op_fadd_pred_on.sum,\
sm__sass_thread_inst_executed_op_fmul_pred_on.sum,sm__ops_path_tensor_src_bf16_dst_fp32.sum,\
sm__ops_path_tensor_src_fp16_dst_fp32.sum}"
    metrics=""
    if [ -z "${XLT_NCU_METRICS:-}" ] && timeout 60 "$ncu" --query-metrics > "$tmp/known" 2>&1 \
        && grep -qE '^[[:space:]]*gpu__time_duration' "$tmp/known"; then
        for m in ${want//,/ }; do
            if grep -qE "^[[:space:]]*${m%%.*}([[:space:]]|$)" "$tmp/known"; then metrics+="${metrics:+,}$m"; else avail+=" $m"; fi
        done
        [ -n "${avail:-}" ] && say "ncu: this GPU has no:$avail"
    elif [ -z "${XLT_NCU_METRICS:-}" ]; then
        say "ncu --query-metrics failed ($(tail -n1 "$tmp/known")): the basic counters only"
        metrics="gpu__time_duration.sum,dram__bytes.sum,sm__throughput.avg.pct_of_peak_sustained_elapsed"
    else
        metrics=$want
    fi
    common=(--clock-control none --nvtx --target-processes all)
    # Launches before the profiled step: set-up and warm-up, counted by profiling a run of only
    # those (same kernels, same order) with one launch attribute (no counter replay: cheap).
    skip="${XLT_NCU_SKIP:-}"
    if [ -z "$skip" ] && [ "$warmup" -gt 0 ]; then
        t=$(left)
        say "ncu: counting the launches of set-up + $warmup step(s)"
        limit "$((t / 3))" "$ncu" "${common[@]}" --metrics launch__grid_size --force-overwrite -o "$tmp/count" \
            "${bench[@]}" --warmup 0 --steps "$warmup" > "$tmp/count.log" 2>&1
        if [ -f "$tmp/count.ncu-rep" ]; then
            "$ncu" --import "$tmp/count.ncu-rep" --csv --page raw > "$tmp/count.csv" 2>/dev/null
            skip=$(python3 -c '
import csv, sys
rows = list(csv.reader(l for l in open(sys.argv[1]) if not l.startswith("==")))
print(sum(1 for r in rows[1:] if r and r[0].strip().isdigit()))' "$tmp/count.csv")
        fi
        if [ -z "$skip" ] || [ "$skip" = 0 ]; then
            say "ncu: could not count the warm-up launches ($(tail -n 2 "$tmp/count.log" | tr '\n' ' ')):"\
                "profiling from the first launch, set-up and warm-up included"
            skip=0
            warmup=0
        fi
    fi
    skip=${skip:-0}
    max="${XLT_NCU_MAX:-4000}"
    rep="$out/ncu"
    [ "${XLT_PROFILE_REP:-1}" = 0 ] && rep="$tmp/ncu"
    t=$(left)
    say "ncu: profiling launches $skip.. (at most $max) with $metrics"
    limit "$((t - 20))" "$ncu" "${common[@]}" --launch-skip "$skip" --launch-count "$max" --metrics "$metrics" \
        --force-overwrite -o "$rep" "${bench[@]}" --warmup "$warmup" --steps 1 > "$tmp/ncu.log" 2>&1
    local rc=$?
    grep -E '^==(ERROR|WARNING)==' "$tmp/ncu.log" | sort | uniq -c | head -n 10
    if [ ! -f "$rep.ncu-rep" ]; then
        say "ncu: FAILED (rc=$rc), no report: $(grep -v '^==PROF==' "$tmp/ncu.log" | tail -n 3 | tr '\n' ' ')"
        status=1
        rm -rf "$tmp"
        return 0
    fi
    [ $rc = 0 ] || say "ncu: rc=$rc (cut short?): the table has the kernels profiled until then"
    csv="$out/ncu.csv"
    "$ncu" --import "$rep.ncu-rep" --csv --page raw --print-units base > "$csv" 2> "$tmp/import.err" \
        || "$ncu" --import "$rep.ncu-rep" --csv --page raw > "$csv" 2>> "$tmp/import.err"
    "$ncu" --import "$rep.ncu-rep" --csv --page raw --print-units base --print-nvtx-rename kernel \
        > "$out/ncu_nvtx.csv" 2>> "$tmp/import.err" || rm -f "$out/ncu_nvtx.csv"
    gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
    [ -n "$gpu" ] || gpu=$(grep -o '"gpu":"[^"]*"' "$tmp/ncu.log" | head -n1 | cut -d'"' -f4)
    {
        echo "# ncu: one training step, per kernel"
        echo
        echo "\`XLT_NVTX=1 ncu ${common[*]} --launch-skip $skip --launch-count $max --metrics ...\`"
        echo "\`${bench[*]} --warmup $warmup --steps 1\` on ${gpu:-the GPU}, $(date -u +%Y-%m-%d)."
        echo "Counters: $metrics. TFLOP/s = (2·FFMA + FADD + FMUL FP32 instructions + tensor-core ops as ncu counts them) / time."
        echo
        ncu_table "$csv" "$out/ncu_nvtx.csv"
    } > "$out/ncu_kernels.md"
    [ "${XLT_PROFILE_REP:-1}" = 0 ] && rm -f "$out/ncu_nvtx.csv"
    say "ncu: $out/ncu_kernels.md, $csv$([ "${XLT_PROFILE_REP:-1}" = 0 ] || echo ", $rep.ncu-rep")"
    awk '/^\| kernel/ { p = 1 } p && /^$/ { exit } p' "$out/ncu_kernels.md" | head -n 22
    rm -rf "$tmp"
}

case "$which" in
    nsys) run_nsys ;;
    ncu) run_ncu ;;
    both) run_nsys; run_ncu ;;
esac
exit $status

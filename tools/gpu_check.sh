#!/usr/bin/env bash
# Everything a GPU must show, in one call on a GPU machine, with the binaries that
# tools/build_device.sh put in .device/, in stages that fit a 9-minute window (540 s from the
# start on an H100/H200; XLT_CHECK_BUDGET_S changes it). Every command runs under `timeout`;
# each result is written to OUTDIR as it comes and each finished step adds a line to
# OUTDIR/summary.txt, so a call cut short still brings its evidence back. A stage that finds
# too little time left says so in summary.txt and is skipped.
#
#   stage 1 (at most 180 s): correctness
#     smoke      nvidia-smi, the CUDA libraries found, `xlt bench --device auto` (one tiny step
#                must land on the GPU; with no GPU at all the check stops here)
#     tests      every GPU test (.device/tests/cuda_*, `--ignored --test-threads=1`, with
#                XLT_REQUIRE_GPU=1 so a missing GPU fails), one line per test binary
#     memcheck   compute-sanitizer --tool memcheck over a 2-step tiny training run
#     racecheck  compute-sanitizer --tool racecheck over the flash-attention tests
#   stage 2 (at most 240 s): XLM-R Large, B=32 T=128 and B=8 T=512, xlt next to PyTorch eager
#     (tools/bench_torch_gpu.py: bf16 autocast, SDPA) in the same run: tokens/s, their ratio,
#     MFU of both against the bf16 peak measured here (tools/peak_gemm.py: an 8192³ bf16 GEMM),
#     device memory of both
#   stage 3 (what time remains), in the order of XLT_STAGE3 (default "base unfused ncu kernels
#     compile"): base = XLM-R Base at the same shapes (xlt and torch); unfused = xlt with
#     XLT_ATTENTION=unfused at the Large shapes; ncu = tools/profile_gpu.sh: one training step
#     per kernel under Nsight Compute (XLM-R Base shapes, 2 layers: every per-layer kernel once
#     or twice; XLT_PROFILE_ARGS changes the xlt bench args); kernels = the criterion kernel
#     benches (benches/cuda_kernels.rs, about 2.5 s each); compile = torch.compile at
#     Large B=32 T=128
#
# OUTDIR (at most 8 files): summary.txt (the verdicts, one line each), gpu_check.log (all the
# console output), tests.log (test and sanitizer output), bench.jsonl (every raw result, one JSON
# object a line, tagged with its stage), stage2.md (the Large table, ready for BENCHMARKS.md),
# stage3.md (the stage-3 tables), profile/ncu_kernels.md and profile/ncu.csv (the per-kernel
# profile). The exit status is non-zero when a stage-1 test or sanitizer failed.
#
#   bash tools/gpu_check.sh OUTDIR
#   XLT_STAGES="1" bash tools/gpu_check.sh OUTDIR        # only some stages (default "1 2 3")
#   XLT_STAGE3="ncu" bash tools/gpu_check.sh OUTDIR      # choose and order the stage-3 items
#   XLT_DEVICE_DIR=DIR  the binaries (default .device); XLT_TORCH_PYTHON  the Python with torch
# (torch.compile is a stage-3 item now: XLT_BENCH_COMPILE=1, which asked for it, changes nothing.)
set -uo pipefail
if [ $# -ne 1 ]; then echo "usage: bash tools/gpu_check.sh OUTDIR" >&2; exit 2; fi
mkdir -p "$1" && out=$(cd "$1" && pwd) || exit 2
cd "$(dirname "$0")/.." || exit 2
repo=$(pwd)

t0=$(date +%s)
budget="${XLT_CHECK_BUDGET_S:-540}"
end=$((t0 + budget - 20)) # 20 s kept for timeouts' kill grace and the final summary
dev="${XLT_DEVICE_DIR:-.device}"
py="${XLT_TORCH_PYTHON:-python3}"
stages=" ${XLT_STAGES:-1 2 3} "
[ -n "${XLT_SKIP_BENCH:-}" ] && stages=" 1 " # the old switch: tests only
stage3="${XLT_STAGE3:-base unfused ncu kernels compile}"
for f in summary.txt gpu_check.log tests.log bench.jsonl stage2.md stage3.md; do : > "$out/$f"; done
rm -rf "$out/profile"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
exec > >(tee -a "$out/gpu_check.log") 2>&1
teepid=$!

# ---- helpers ---------------------------------------------------------------------------------
now() { date +%s; }
elapsed() { echo $(($(now) - t0)); }
until_() { echo $(($1 - $(now))); }             # seconds until a deadline
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }
note() { # one summary line: in summary.txt at once, and on the console
    printf '%s\n' "$*" >> "$out/summary.txt"
    printf '== %s\n' "$*"
}
bounded() { # SECONDS CMD...: the command under timeout (rc 124 or 137: it ran out of time)
    local s=$1 rc
    shift
    [ "$s" -ge 1 ] || return 124
    # In the background and waited for, so that a signal to this script stops it at once.
    timeout -k 10 "$s" "$@" &
    cur=$!
    wait "$cur"
    rc=$?
    cur=""
    return $rc
}
fail=0
cur=""
trap '[ -n "$cur" ] && kill -TERM "$cur" 2> /dev/null; note "interrupted after $(elapsed) s"; exit 130' INT TERM
finish() { # the summary, last, then the exit status
    echo
    echo "== summary ($(elapsed) s; files in $out)"
    cat "$out/summary.txt"
    exec >&- 2>&-
    wait "$teepid" 2>/dev/null
    exit "$1"
}

# The bookkeeping in Python (JSON, tables, log parsing), written once, called by subcommand.
gc="$tmp/gc.py"
cat > "$gc" <<'PY'
import datetime
import json
import os
import re
import sys

GIB = float(1 << 30)


def records(path):
    out = []
    for line in open(path):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def last_json(path):
    """The last stdout line that is a JSON object (xlt and the torch scripts print one)."""
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def mem_bytes(r):
    """Device memory in use after the last step: xlt's device_mem_bytes (from memory_in_use),
    or any integer field naming memory, should the name change."""
    for k in ("device_mem_bytes", "memory_in_use", "mem_bytes"):
        if isinstance(r.get(k), (int, float)):
            return r[k]
    for k, v in r.items():
        if "mem" in k and "peak" not in k and isinstance(v, (int, float)):
            return v
    return None


def nonembedding_params(r):
    """The encoder layers' weights and biases: Q, K, V, O (4C² + 4C), the FFN (2CF + F + C) and
    two LayerNorms (4C). Embeddings and the classification head are left out."""
    c, f, layers = r["hidden"], r["ffn"], r["layers"]
    return layers * (4 * c * c + 2 * c * f + 9 * c + f)


def step_flops(r):
    """Model FLOPs of one training step: 6 · N · B·T (forward and backward of every matmul)
    + 12 · L · B · T² · C (attention scores and their weighted sum, forward and backward)."""
    b, t = r["batch"], r["seq"]
    return 6 * nonembedding_params(r) * b * t + 12 * r["layers"] * b * t * t * r["hidden"]


def peak(recs):
    g = [r for r in recs if r.get("impl") == "torch-gemm" and "tflops_median" in r]
    return g[-1]["tflops_median"] * 1e12 if g else None


def mfu(r, pk):
    if not pk or not r.get("ms_per_step") or "hidden" not in r:
        return None
    return step_flops(r) / (r["ms_per_step"] / 1e3) / pk


def err(r, n=120):
    """A failed run's error with the last line it printed."""
    e = r["error"] + (f": {r['last_line']}" if r.get("last_line") else "")
    return e[:n].replace("|", "/")


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else ""


def pct(v):
    return "n/a" if v is None else f"{100 * v:.1f}%"


def gib(v):
    return "n/a" if v is None else f"{v / GIB:.1f}"


def tok(v):
    return "n/a" if v is None else f"{v:,.0f}"


def find(recs, stage, preset, impl, b, t, attention=None):
    for r in reversed(recs):
        if (r.get("stage") == stage and r.get("preset") == preset and r.get("impl") == impl
                and r.get("batch") == b and r.get("seq") == t and r.get("xlt_attention") == attention):
            return r
    return None


def cmd_record(jsonl, stage, preset, b, t, impl, attention, stdout, rc, secs):
    """Appends the run's JSON line, tagged, or an error record; prints one short line."""
    r = last_json(stdout)
    tags = {"stage": int(stage), "secs": int(secs)}
    if preset:
        tags.update(preset=preset, batch=int(b), seq=int(t))
    if attention:
        tags["xlt_attention"] = attention
    if r is None or "error" in r or int(rc) != 0:
        why = (r or {}).get("error") or ("timed out" if int(rc) in (124, 137) else f"exit status {rc}")
        tail = ""
        try:
            tail = open(stdout, errors="replace").read().strip().splitlines()[-1][:200]
        except (OSError, IndexError):
            pass
        r = dict(r or {}, impl=impl, error=why, **({"last_line": tail} if tail and not r else {}))
    r.update(tags)
    with open(jsonl, "a") as f:
        f.write(json.dumps(r) + "\n")
    if "error" in r:
        print(f"{impl}: ERROR {r['error']}")
    elif impl == "torch-gemm":
        print(f"{impl}: {r.get('tflops_median')} TFLOP/s")
    else:
        print(f"{impl}: {tok(r.get('tokens_per_s'))} tokens/s, {r.get('ms_per_step', 0):.2f} ms/step")


def pair_line(recs, stage, preset, b, t, label):
    pk = peak(recs)
    x, p = find(recs, stage, preset, "xlt", b, t), find(recs, stage, preset, "pytorch", b, t)

    def one(r):
        if r is None:
            return "not run"
        if "error" in r:
            return f"ERROR ({err(r, 100)})"
        return f"{tok(r['tokens_per_s'])} tok/s, MFU {pct(mfu(r, pk))}, {gib(mem_bytes(r))} GiB"

    ratio = (f"{x['tokens_per_s'] / p['tokens_per_s']:.2f}x" if x and p and "error" not in x
             and "error" not in p else "n/a")
    return f"{label} {preset} B={b} T={t}: xlt {one(x)} | torch {one(p)} | xlt/torch {ratio}"


def cmd_pair(jsonl, stage, preset, b, t, label):
    print(pair_line(records(jsonl), int(stage), preset, int(b), int(t), label))


def table(recs, stage, preset, shapes):
    pk = peak(recs)
    rows = ["| B×T | | tokens/s | ms/step (median) | MFU | device memory, GiB | xlt / torch |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for b, t in shapes:
        x, p = find(recs, stage, preset, "xlt", b, t), find(recs, stage, preset, "pytorch", b, t)
        for name, r in (("xlt", x), ("torch", p)):
            if r is None:
                rows.append(f"| {b}×{t} | {name} | not run | | | | |")
                continue
            if "error" in r:
                rows.append(f"| {b}×{t} | {name} | error: {err(r)} | | | | |")
                continue
            if name == "xlt":
                what = f"xlt ({r.get('precision', 'bf16')}, {r.get('attention') or '?'} attention)"
                ratio = (f"{r['tokens_per_s'] / p['tokens_per_s']:.2f}×" if p and "error" not in p else "")
                memory = gib(mem_bytes(r))
            else:
                what = f"PyTorch {r.get('torch', '')} eager, SDPA ({r.get('precision', 'bf16')} autocast)"
                ratio = ""
                memory = f"{gib(mem_bytes(r))} (peak allocated {gib(r.get('peak_mem_bytes'))})"
            rows.append(f"| {b}×{t} | {what} | {tok(r['tokens_per_s'])} | {r['ms_per_step']:.2f} | "
                        f"{pct(mfu(r, pk))} | {memory} | {ratio} |")
    return rows


def gpu_name(recs):
    for r in reversed(recs):
        if r.get("gpu"):
            return r["gpu"]
    return "GPU"


def formula(recs, preset):
    r = next((r for r in recs if r.get("preset") == preset and "hidden" in r), None)
    n = f": {nonembedding_params(r) / 1e6:.1f} M for {preset}" if r else ""
    g = [r for r in recs if r.get("impl") == "torch-gemm" and "tflops_median" in r]
    pk = (f"{g[-1]['tflops_median']:.0f} TFLOP/s, torch bf16 GEMM {g[-1]['n']}×{g[-1]['n']}×{g[-1]['n']} "
          f"(FLOPs 2·N³; median of {g[-1]['runs']}, CUDA events)" if g else "not measured (no MFU)")
    return [
        f"Peak (the MFU denominator, measured in the same run): {pk}.",
        "MFU = model FLOPs per step / median step time / peak; model FLOPs per step = "
        "6·N·B·T + 12·L·B·T²·C, with N = L·(4C² + 2CF + 9C + F) the encoder layers' parameters "
        f"(embeddings and the classification head left out){n}.",
        "Device memory: total − free after the last step (the CUDA context included), the same "
        "measure for both; torch's own peak allocated in parentheses.",
    ]


def cmd_stage2(jsonl, md, warm_x, warm_t, steps):
    recs = records(jsonl)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    lines = [f"### XLM-R Large training step, bf16, {gpu_name(recs)} ({date})", ""]
    lines += table(recs, 2, "xlmr-large", [(32, 128), (8, 512)])
    lines += [""] + formula(recs, "xlmr-large") + [
        "",
        "Commands (one `bash tools/gpu_check.sh OUTDIR` call, random weights and tokens):",
        "```sh",
        f".device/xlt bench --device cuda --precision bf16 --preset xlmr-large --batch B --seq T "
        f"--steps {steps} --warmup {warm_x} --json",
        f"python3 tools/bench_torch_gpu.py --preset xlmr-large --batch B --seq T --steps {steps} --warmup {warm_t}",
        "python3 tools/peak_gemm.py",
        "```",
    ]
    open(md, "w").write("\n".join(lines) + "\n")


def cmd_stage3(jsonl, md, ncu_md):
    recs = records(jsonl)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    lines = [f"## Stage 3, {gpu_name(recs)} ({date})", ""]
    if any(r.get("stage") == 3 and r.get("preset") == "xlmr-base" for r in recs):
        lines += ["### XLM-R Base training step, bf16", ""]
        lines += table(recs, 3, "xlmr-base", [(32, 128), (8, 512)]) + [""] + formula(recs, "xlmr-base") + [""]
    un = [r for r in recs if r.get("xlt_attention") == "unfused"]
    if un:
        lines += ["### xlt with XLT_ATTENTION=unfused (permute + cuBLAS + row softmax), XLM-R Large", "",
                  "| B×T | default attention, tokens/s | unfused, tokens/s | default / unfused |",
                  "| --- | ---: | ---: | ---: |"]
        for u in un:
            f = find(recs, 2, "xlmr-large", "xlt", u["batch"], u["seq"]) or {}
            lines.append(f"| {u['batch']}×{u['seq']} | {tok(f.get('tokens_per_s')) if f else 'not run'} | "
                         f"{'error: ' + err(u) if 'error' in u else tok(u['tokens_per_s'])} | "
                         f"{ratio(f.get('tokens_per_s'), u.get('tokens_per_s'))} |")
        lines.append("")
    comp = [r for r in recs if r.get("impl") == "pytorch-compile"]
    if comp:
        pk = peak(recs)
        lines += ["### torch.compile (tools/bench_torch_gpu.py --compile), XLM-R Large", "",
                  "| B×T | compiled, tokens/s | MFU | eager, tokens/s | xlt, tokens/s | xlt / compiled |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for c in comp:
            e = find(recs, 2, "xlmr-large", "pytorch", c["batch"], c["seq"])
            x = find(recs, 2, "xlmr-large", "xlt", c["batch"], c["seq"])
            if "error" in c:
                lines.append(f"| {c['batch']}×{c['seq']} | error: {err(c)} | | | | |")
                continue
            xt = x.get("tokens_per_s") if x else None
            lines.append(f"| {c['batch']}×{c['seq']} | {tok(c['tokens_per_s'])} | {pct(mfu(c, pk))} | "
                         f"{tok(e.get('tokens_per_s') if e else None)} | {tok(xt)} | "
                         f"{ratio(xt, c['tokens_per_s'])} |")
        lines.append("")
    crit = [r for r in recs if r.get("impl") == "criterion"]
    if crit:
        lines += ["### Kernel benches (benches/cuda_kernels.rs, criterion)", "",
                  "| bench | time (median) | throughput |", "| --- | ---: | ---: |"]
        lines += [f"| {r['bench']} | {r['time']} | {r.get('thrpt', '')} |" for r in crit]
        lines.append("")
    if os.path.exists(ncu_md):
        text = open(ncu_md).read().splitlines()
        cut = next((i for i, l in enumerate(text) if l.startswith("Every launch in order")), len(text))
        lines += ["#" + l if l.startswith("# ") else l for l in text[:cut]]
        lines += ["(Every launch in order: profile/ncu_kernels.md; raw counters: profile/ncu.csv.)", ""]
    open(md, "w").write("\n".join(lines) + "\n")


def cmd_criterion(log, jsonl):
    """criterion prints the bench name, then `time: [lo median hi]` and `thrpt: [lo median hi]`
    (on the name's line when it is short). Appends one record per bench; prints the count."""
    name, recs = None, []
    for line in open(log, errors="replace"):
        m = re.match(r"^(\S+/\S+)", line)
        if m:
            name = m.group(1)
        tm = re.search(r"time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", line)
        if tm and name:
            recs.append({"stage": 3, "impl": "criterion", "bench": name, "time": tm.group(1)})
            name = None
        th = re.search(r"thrpt:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", line)
        if th and recs:
            recs[-1]["thrpt"] = th.group(1)
    with open(jsonl, "a") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    print(len(recs))


def cmd_line(kind, jsonl, *args):
    """The summary.txt line of a finished step."""
    recs = records(jsonl)
    if kind == "peak":
        g = [r for r in recs if r.get("impl") == "torch-gemm"]
        if not g or "error" in g[-1]:
            print("bf16 peak not measured" + (f" ({g[-1]['error'][:80]})" if g else "") + ": no MFU")
        else:
            print(f"bf16 peak {g[-1]['tflops_median']:.0f} TFLOP/s (8192³ GEMM)")
    elif kind == "unfused":
        b, t = int(args[0]), int(args[1])
        u = find(recs, 3, "xlmr-large", "xlt", b, t, "unfused")
        f = find(recs, 2, "xlmr-large", "xlt", b, t)
        if u is None or "error" in u:
            print(f"stage 3 unfused xlmr-large B={b} T={t}: ERROR {err(u) if u else 'not run'}")
            return
        ratio = (f" (default / unfused {f['tokens_per_s'] / u['tokens_per_s']:.2f}x)"
                 if f and "error" not in f else "")
        print(f"stage 3 unfused xlmr-large B={b} T={t}: {tok(u['tokens_per_s'])} tok/s{ratio}")
    elif kind == "compile":
        c = [r for r in recs if r.get("impl") == "pytorch-compile"]
        if not c or "error" in c[-1]:
            print("stage 3 compile: ERROR " + (err(c[-1]) if c else "not run"))
        else:
            x = find(recs, 2, "xlmr-large", "xlt", c[-1]["batch"], c[-1]["seq"])
            ratio = (f", xlt/compiled {x['tokens_per_s'] / c[-1]['tokens_per_s']:.2f}x"
                     if x and "error" not in x else "")
            print(f"stage 3 compile xlmr-large B={c[-1]['batch']} T={c[-1]['seq']}: torch.compile "
                  f"{tok(c[-1]['tokens_per_s'])} tok/s, MFU {pct(mfu(c[-1], peak(recs)))}{ratio}")
    elif kind == "ncu":
        md = args[0]
        if not os.path.exists(md):
            print("stage 3 ncu: no per-kernel table (see gpu_check.log)")
            return
        text = open(md).read().splitlines()
        head = next((l for l in text if "kernel launches" in l), "").split(" (")[0]
        rows = [l for l in text if l.startswith("| `")]
        top = ""
        if rows:
            cells = [c.strip() for c in rows[0].strip("|").split("|")]
            top = f"; top: {cells[0].strip('`')[:60]} {cells[3]} of kernel time"
        print(f"stage 3 ncu: {head}{top}; profile/ncu_kernels.md")


def cmd_testrow(name, rc, secs, log):
    """One line per test binary: pass/fail counts and the failed tests' names."""
    text = open(log, errors="replace").read()
    rc = int(rc)
    failed = re.findall(r"^test (\S+) \.\.\. FAILED", text, re.M)
    res = re.findall(r"^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", text, re.M)
    passed = sum(int(p) for p, _, _ in res)
    nfail = sum(int(f) for _, f, _ in res)
    counts = f"{passed} passed, {nfail} failed"
    if rc in (124, 137):
        running = re.findall(r"^test (\S+) \.\.\. ?$", text, re.M)
        verdict, extra = "TIMEOUT", f"cut at {secs} s" + (f" in {running[-1]}" if running else "")
    elif rc == 0 and res and not nfail:
        verdict, extra = "ok", ""
    elif res:
        verdict, extra = "FAIL", ""
    else:
        # bash's own "Segmentation fault ... timeout" line is not the program's
        lines = [l for l in text.strip().splitlines() if "timeout -k" not in l]
        last = lines[-1][:120] if lines else ""
        how = f"killed by signal {rc - 128}" if rc > 128 else f"exit status {rc}"
        verdict, extra = "FAIL", f"no test result ({how}): {last}"
    if failed:
        extra = (extra + "; " if extra else "") + "failed: " + ", ".join(failed)
    print(f"tests {name:<18} {verdict:<7} {secs:>4}s  {counts}" + (f"; {extra}" if extra else ""))
    sys.exit(0 if verdict == "ok" else 1)


def cmd_sanrow(tool, what, rc, secs, log):
    """A sanitizer's verdict: exit 0 clean, 1 errors found or the program failed, 2 no verdict
    (the tool could not run here, or ran out of time)."""
    text = open(log, errors="replace").read()
    rc = int(rc)
    errs = [int(e) for e in re.findall(r"ERROR SUMMARY: (\d+) errors?", text)]
    races = re.findall(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, (\d+) warnings?\)", text)
    tests = re.findall(r"^test result: \w+\. (\d+) passed; (\d+) failed", text, re.M)
    found = sum(errs) + sum(int(e) for _, e, _ in races)
    warnings = sum(int(w) for _, _, w in races)
    counts = f"{found} errors" + (f", {warnings} warnings" if races else "")
    if tests:
        counts += f"; tests {sum(int(p) for p, _ in tests)} passed, {sum(int(f) for _, f in tests)} failed"
    if errs or races:
        code = 0 if found == 0 and rc == 0 else 1
        verdict = "clean" if code == 0 else ("ERRORS" if found else f"FAIL (exit status {rc})")
    elif rc in (124, 137):
        code, verdict = 2, f"NO VERDICT (timed out after {secs} s)"
    elif re.search(r"not supported|Device not supported|Unable to|could not|permission", text, re.I):
        line = next((l for l in text.splitlines() if re.search(r"not supported|Unable|could not|permission", l, re.I)), "")
        code, verdict = 2, f"NOT RUN here ({line.strip('= ')[:100]})"
    else:
        last = text.strip().splitlines()[-1][:100] if text.strip() else ""
        code, verdict = 1, f"FAIL (no summary, exit status {rc}: {last})"
    print(f"{tool} {verdict}" + (f": {counts}" if errs or races else "") + f" [{what}, {secs} s]")
    sys.exit(code)


if __name__ == "__main__":
    globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
PY

# A fresh bench result to bench.jsonl, tagged; prints one line.
#   bench_run STAGE PRESET B T IMPL ATTENTION CAP CMD...
bench_run() {
    local stage=$1 preset=$2 b=$3 t=$4 impl=$5 attention=$6 cap=$7 s rc start
    shift 7
    s=$(min "$cap" "$(until_ "$deadline")")
    if [ "$s" -lt 15 ]; then
        note "stage $stage $impl $preset B=$b T=$t: skipped, ${s} s left"
        return 1
    fi
    echo "\$ ${attention:+XLT_ATTENTION=$attention }$* (at most ${s} s)"
    start=$(now)
    bounded "$s" env ${attention:+"XLT_ATTENTION=$attention"} "$@" > "$tmp/stdout" 2> "$tmp/stderr"
    rc=$?
    tail -n 5 "$tmp/stderr"
    tail -n 1 "$tmp/stdout"
    python3 "$gc" record "$out/bench.jsonl" "$stage" "$preset" "$b" "$t" "$impl" "$attention" "$tmp/stdout" \
        "$rc" "$(($(now) - start))"
}
xlt_bench() { # STAGE PRESET B T [ATTENTION]
    bench_run "$1" "$2" "$3" "$4" xlt "${5:-}" 90 "$dev/xlt" bench --device cuda --precision bf16 --preset "$2" \
        --batch "$3" --seq "$4" --steps 20 --warmup 5 --json
}
torch_bench() { # STAGE PRESET B T [--compile]
    local impl=pytorch cap=150
    [ -n "${5:-}" ] && { impl=pytorch-compile; cap=400; }
    bench_run "$1" "$2" "$3" "$4" "$impl" "" "$cap" "$py" tools/bench_torch_gpu.py --preset "$2" --batch "$3" \
        --seq "$4" --steps 20 --warmup 10 ${5:+"$5"}
}

echo "gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname), $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no git'), budget ${budget} s, OUTDIR $out"

# ---- preflight: the binaries ------------------------------------------------------------------
if [ ! -x "$dev/xlt" ]; then
    note "preflight: FAIL no $dev/xlt: run tools/build_device.sh on the build machine and carry .device"
    finish 2
fi

# cuBLAS, NVRTC and NVTX may live only inside Python wheels there: add every folder holding one.
libdirs=$(timeout 60 find /usr /opt /root /home /lib /lib64 \( -name 'libcublas.so*' -o -name 'libcublasLt.so*' \
    -o -name 'libnvrtc.so*' -o -name 'libnvToolsExt.so*' \) -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libdirs%:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" XLT_LIBS_READY=1
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

# ---- stage 1: device and libraries, every GPU test, the sanitizers ----------------------------
stage1() {
    local s1_end gpu gpu_seen dirs libs missing lib smoke dname t name off rc start secs cs f san_s line s
    local rows=0 bad=0 verdicts=""
    s1_end=$(min $((t0 + 180)) "$end")
    deadline=$s1_end
    echo "== stage 1: smoke, GPU tests, sanitizers (until +$((s1_end - t0)) s)"

    # The GPU as the driver sees it.
    gpu_seen=""
    if command -v nvidia-smi > /dev/null; then
        gpu=$(bounded 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1) \
            && [ -n "$gpu" ] && gpu_seen=1
        gpu=$(head -n1 <<< "${gpu:-nvidia-smi printed nothing}")
    else
        gpu="unknown (no nvidia-smi)"
    fi
    libs=""
    missing=""
    IFS=: read -r -a dirs <<< "$libdirs"
    for lib in libcuda.so libcublas.so libcublasLt.so libnvrtc.so libnvToolsExt.so; do
        if ldconfig -p 2>/dev/null | grep -q "$lib" \
            || { [ ${#dirs[@]} -gt 0 ] && find "${dirs[@]}" -maxdepth 1 -name "$lib*" 2>/dev/null | grep -q .; }; then
            libs+=" ${lib%.so}"
        else
            missing+=" ${lib%.so}"
        fi
    done
    # One tiny step with --device auto must land on the GPU.
    bounded 60 "$dev/xlt" bench --device auto --steps 1 --warmup 0 --batch 2 --seq 16 --json > "$tmp/smoke" 2> "$tmp/smoke.err"
    rc=$?
    cat "$tmp/smoke.err" "$tmp/smoke"
    smoke=$(python3 -c '
import json, sys
try:
    r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
except Exception:
    r = {}
print(r.get("device", "none"), r.get("precision", "?"), r.get("attention") or "?", sep=" ")' "$tmp/smoke")
    dname=${smoke%% *}
    note "stage 1 smoke: GPU $gpu; libraries found:${libs:- none}${missing:+; MISSING:$missing}; xlt --device auto -> ${smoke} (exit status $rc)"
    if [ "$dname" != cuda ]; then
        fail=1
        if [ -z "$gpu_seen" ]; then
            note "stage 1: FAIL no usable GPU (xlt bench --device auto: $(tail -n1 "$tmp/smoke.err")): nothing else can run"
            return 1
        fi
        note "stage 1 smoke: FAIL xlt did not run on the GPU nvidia-smi shows ($(tail -n1 "$tmp/smoke.err")); going on"
    fi

    # Every GPU test: the executables carry them as ignored tests; XLT_REQUIRE_GPU=1 makes a
    # missing GPU a failure instead of a skip. The sanitizers keep the last 75 s of the stage.
    export XLT_REQUIRE_GPU=1
    for t in "$dev"/tests/*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        case "$name" in cuda_emu*) continue ;; esac
        rows=$((rows + 1))
        s=$(until_ $((s1_end - 75)))
        [ "$s" -ge 10 ] || s=$(min 10 "$(until_ "$s1_end")")
        echo "--- $name --ignored --test-threads=1 (at most ${s} s)" >> "$out/tests.log"
        off=$(stat -c %s "$out/tests.log")
        start=$(now)
        bounded "$s" "$t" --ignored --test-threads=1 >> "$out/tests.log" 2>&1
        rc=$?
        secs=$(($(now) - start))
        tail -c +$((off + 1)) "$out/tests.log" > "$tmp/test.log"
        line=$(python3 "$gc" testrow "$name" "$rc" "$secs" "$tmp/test.log") || { bad=$((bad + 1)); fail=1; }
        note "stage 1 $line"
    done
    [ "$rows" -gt 0 ] || { note "stage 1 tests: FAIL no test executables in $dev/tests"; fail=1; }

    # compute-sanitizer: memcheck over a short tiny training run, racecheck over the flash tests.
    cs=$(command -v compute-sanitizer)
    for f in /usr/local/cuda*/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer \
        /opt/nvidia/*/compute-sanitizer; do
        [ -z "$cs" ] && [ -x "$f" ] && cs=$f
    done
    if [ -z "$cs" ]; then
        note "stage 1 sanitizers: NOT RUN, compute-sanitizer not found (PATH, /usr/local/cuda*, /opt/nvidia)"
        verdicts="sanitizers not found"
    else
        san() { # TOOL WHAT SECONDS CMD...: one verdict line; a found error fails the check
            local tool=$1 what=$2 s=$3 line rc start
            shift 3
            if [ "$s" -lt 10 ]; then
                note "stage 1 $tool: NOT RUN, ${s} s left in stage 1"
                verdicts+="${verdicts:+; }$tool not run"
                return
            fi
            echo "--- compute-sanitizer --tool $tool $* (at most ${s} s)" >> "$out/tests.log"
            off=$(stat -c %s "$out/tests.log")
            start=$(now)
            bounded "$s" "$cs" --tool "$tool" --error-exitcode 1 --print-limit 20 "$@" >> "$out/tests.log" 2>&1
            rc=$?
            tail -c +$((off + 1)) "$out/tests.log" > "$tmp/san.log"
            line=$(python3 "$gc" sanrow "$tool" "$what" "$rc" "$(($(now) - start))" "$tmp/san.log")
            [ $? = 1 ] && fail=1
            note "stage 1 $line"
            verdicts+="${verdicts:+; }${line%% \[*}"
        }
        san_s=$(until_ "$s1_end")
        san memcheck "xlt bench tiny, 2 steps" "$(min 60 $((san_s - 30)))" "$dev/xlt" bench --device cuda \
            --precision bf16 --hidden 128 --layers 2 --heads 2 --ffn 256 --vocab 1000 --batch 2 --seq 64 \
            --steps 2 --warmup 0
        if [ -x "$dev/tests/cuda_attention" ]; then
            san racecheck "cuda_attention --ignored flash" "$(until_ "$s1_end")" "$dev/tests/cuda_attention" \
                --ignored flash --test-threads=1
        else
            note "stage 1 racecheck: NOT RUN, no $dev/tests/cuda_attention"
        fi
    fi
    note "stage 1: $([ $fail = 0 ] && echo ok || echo FAIL) — test binaries $((rows - bad))/$rows ok; ${verdicts:-no sanitizer verdicts} ($(elapsed) s)"
}

# ---- stage 2: XLM-R Large against PyTorch, MFU against the measured peak ----------------------
stage2() {
    local b t
    deadline=$(min $(($(now) + 240)) "$end")
    echo "== stage 2: XLM-R Large, xlt vs PyTorch eager + SDPA, bf16 (until +$((deadline - t0)) s)"
    bench_run 2 "" 0 0 torch-gemm "" 60 "$py" tools/peak_gemm.py
    note "stage 2 $(python3 "$gc" line peak "$out/bench.jsonl")"
    for shape in "32 128" "8 512"; do
        read -r b t <<< "$shape"
        xlt_bench 2 xlmr-large "$b" "$t"
        torch_bench 2 xlmr-large "$b" "$t"
        note "$(python3 "$gc" pair "$out/bench.jsonl" 2 xlmr-large "$b" "$t" "stage 2")"
        python3 "$gc" stage2 "$out/bench.jsonl" "$out/stage2.md" 5 10 20
    done
    note "stage 2: done, $(python3 "$gc" line peak "$out/bench.jsonl"); table in stage2.md ($(elapsed) s)"
}

# ---- stage 3: what time remains --------------------------------------------------------------
stage3() {
    local item b t left need s rc n
    deadline=$end
    echo "== stage 3: $stage3 (until +$((end - t0)) s)"
    for item in $stage3; do
        left=$(until_ "$end")
        case "$item" in base) need=60 ;; unfused) need=30 ;; ncu) need=90 ;; kernels) need=40 ;; compile) need=120 ;;
            *) note "stage 3 $item: unknown item (base unfused ncu kernels compile)"; continue ;; esac
        if [ "$left" -lt "$need" ]; then
            note "stage 3 $item: skipped, ${left} s left (needs ~${need} s)"
            continue
        fi
        case "$item" in
            base)
                for shape in "32 128" "8 512"; do
                    read -r b t <<< "$shape"
                    xlt_bench 3 xlmr-base "$b" "$t"
                    torch_bench 3 xlmr-base "$b" "$t"
                    note "$(python3 "$gc" pair "$out/bench.jsonl" 3 xlmr-base "$b" "$t" "stage 3")"
                done ;;
            unfused)
                for shape in "32 128" "8 512"; do
                    read -r b t <<< "$shape"
                    xlt_bench 3 xlmr-large "$b" "$t" unfused
                    note "$(python3 "$gc" line unfused "$out/bench.jsonl" "$b" "$t")"
                done ;;
            ncu)
                # One training step per kernel (XLM-R Base shapes, 2 layers, to fit the window).
                # shellcheck disable=SC2086 # XLT_PROFILE_ARGS is a list of arguments
                XLT_PROFILE=ncu XLT_PROFILE_REP=0 XLT_PROFILE_DEADLINE=$((end - 5)) XLT_DEVICE_DIR="$dev" \
                    bounded $((left + 10)) bash tools/profile_gpu.sh "$out/profile" \
                    ${XLT_PROFILE_ARGS:---preset xlmr-base --layers 2 --batch 32 --seq 128}
                note "$(python3 "$gc" line ncu "$out/bench.jsonl" "$out/profile/ncu_kernels.md")" ;;
            kernels)
                if [ -x "$dev/cuda_kernels" ]; then
                    s=$(min 150 "$left")
                    # benches/cuda_kernels.rs sets short times itself (0.5 s warm-up, 2 s measured)
                    echo "\$ $dev/cuda_kernels --bench --noplot (at most ${s} s)"
                    CRITERION_HOME="$tmp/criterion" bounded "$s" "$dev/cuda_kernels" --bench --noplot \
                        > "$tmp/kernels.log" 2>&1
                    rc=$?
                    cat "$tmp/kernels.log"
                    n=$(python3 "$gc" criterion "$tmp/kernels.log" "$out/bench.jsonl")
                    note "stage 3 kernels: $n criterion benches$([ "$rc" = 0 ] || echo " (exit status $rc)"), table in stage3.md"
                else
                    note "stage 3 kernels: skipped, no $dev/cuda_kernels"
                fi ;;
            compile)
                torch_bench 3 xlmr-large 32 128 --compile
                note "$(python3 "$gc" line compile "$out/bench.jsonl")" ;;
        esac
        python3 "$gc" stage3 "$out/bench.jsonl" "$out/stage3.md" "$out/profile/ncu_kernels.md"
    done
    note "stage 3: done, tables in stage3.md ($(elapsed) s)"
}

deadline=$end
if [[ "$stages" == *" 1 "* ]]; then
    stage1 || finish 1
fi
for st in 2 3; do
    [[ "$stages" == *" $st "* ]] || continue
    if [ "$(until_ "$end")" -lt 30 ]; then
        note "stage $st: skipped, $(until_ "$end") s left"
        continue
    fi
    if [ "$st" = 2 ]; then stage2; else stage3; fi
done

finish "$fail"

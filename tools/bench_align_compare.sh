#!/usr/bin/env bash
# Side-by-side CPU comparison of `xlt align` and awesome-align (PyPI awesome-align 0.1.7, its
# own command line) on the same machine, same run: the same random-weight model of mBERT's
# encoder shape (768 hidden, 12 layers, 12 heads, FFN 3072; the tiny BERT fixture's
# vocabulary, so both tokenize alike), the same pairs (PAIRS pairs of 15-30 words a side),
# layer 8, softmax τ = 1e-3, batch 32. Rounds alternate the two tools; each is timed end to end
# (start, model load, tokenization, encoding, extraction, output), and the outputs must be
# identical. The table printed last gives the median pairs/s over rounds and the ratio.
#
# Usage: tools/bench_align_compare.sh [ROUNDS] [PAIRS] [THREADS]
# Needs: target/release/xlt (cargo build --release) and a Python with torch, transformers and
# awesome-align (`pip install --no-deps awesome-align` + boto3, requests) in $PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
PAIRS=${2:-400}
THREADS=${3:-2}
PY=${PYTHON:-python3}
XLT=${XLT:-target/release/xlt}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" tools/make_bench_align_model.py "$WORK" "$PAIRS" encoder
LOG="$WORK/log"
now() { date +%s.%N; }
for r in $(seq "$ROUNDS"); do
  t0=$(now)
  "$XLT" align --threads "$THREADS" --device cpu --model "$WORK/model" --input "$WORK/pairs.txt" \
    --output "$WORK/xlt.txt" --layer 8 --batch-size 32 2>/dev/null
  t1=$(now)
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PY" -m awesome_align.run_align --output_file "$WORK/awesome.txt" \
    --model_name_or_path "$WORK/model" --data_file "$WORK/pairs.txt" --extraction softmax \
    --softmax_threshold 0.001 --align_layer 8 --batch_size 32 --num_workers 0 >/dev/null 2>&1
  t2=$(now)
  echo "xlt $(echo "$t1 - $t0" | bc) awesome $(echo "$t2 - $t1" | bc)" | tee -a "$LOG"
done
# The two outputs must be the same links (awesome-align writes them in set order).
"$PY" - "$WORK" <<'PYEOF'
import sys
w = sys.argv[1]
norm = lambda p: [" ".join(sorted(l.split(), key=lambda t: tuple(map(int, t.split("-"))))) for l in open(p).read().split("\n")]
a, b = norm(f"{w}/xlt.txt"), norm(f"{w}/awesome.txt")
same = sum(x == y for x, y in zip(a, b))
print(f"identical lines: {same} of {len(a)}")
PYEOF
"$PY" - "$LOG" "$PAIRS" <<'PYEOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
n = int(sys.argv[2])
x = [float(r[1]) for r in rows]; a = [float(r[3]) for r in rows]
print(f"| tool | seconds (rounds) | pairs/s (median) |")
print(f"| --- | --- | --- |")
print(f"| xlt align | {' '.join(f'{v:.1f}' for v in x)} | {n / statistics.median(x):.1f} |")
print(f"| awesome-align | {' '.join(f'{v:.1f}' for v in a)} | {n / statistics.median(a):.1f} |")
print(f"ratio (awesome-align time / xlt time, median): {statistics.median(a) / statistics.median(x):.2f}; per round: "
      + " ".join(f"{ai / xi:.2f}" for xi, ai in zip(x, a)))
PYEOF

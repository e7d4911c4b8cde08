#!/usr/bin/env bash
# Side-by-side CPU comparison of `xlt align-train` and awesome-align's trainer (PyPI
# awesome-align 0.1.7, `awesome-train`) on the same machine, same run, for the self-training
# objective alone (`--objectives so` / `--train_so`), whose work per pair is the same in both:
# the model's own alignment of the batch (a forward of both sides to layer 8, no gradient), then
# a forward and backward of both sides to layer 8. The model is a random-weight model of
# mBERT's encoder shape (768 hidden, 12 layers, 12 heads, FFN 3072; the tiny BERT fixture's
# vocabulary, so both tokenize alike), the corpus PAIRS pairs of 15-30 words a side; one epoch,
# 8 pairs per step, learning rate 2e-5, no checkpoints until the end. Rounds alternate the two
# tools; each is timed end to end (start, model load, corpus, training, saving the model). The
# table printed last gives the median pairs/s over rounds and the ratio.
#
# Usage: tools/bench_align_train_compare.sh [ROUNDS] [PAIRS] [THREADS]
# Needs: target/release/xlt (cargo build --release) and a Python with torch, transformers and
# awesome-align (`pip install --no-deps awesome-align` + boto3, requests) in $PYTHON.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
PAIRS=${2:-96}
THREADS=${3:-2}
PY=${PYTHON:-python3}
XLT=${XLT:-target/release/xlt}
WORK=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
"$PY" tools/make_bench_align_model.py "$WORK" "$PAIRS" mlm
LOG="$WORK/log"
now() { date +%s.%N; }
for r in $(seq "$ROUNDS"); do
  rm -rf "$WORK/xlt-run" "$WORK/awesome-run"
  t0=$(now)
  "$XLT" align-train --threads "$THREADS" --device cpu --model "$WORK/model" --input "$WORK/pairs.txt" \
    --output "$WORK/xlt-run" --objectives so --layer 8 --batch-size 8 --num-train-epochs 1 \
    --save-checkpoint-every-steps 0 --quiet >"$WORK/xlt.log" 2>&1
  t1=$(now)
  OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PY" -m awesome_align.run_train --output_dir "$WORK/awesome-run" \
    --model_name_or_path "$WORK/model" --train_data_file "$WORK/pairs.txt" --extraction softmax --do_train \
    --train_so --align_layer 8 --per_gpu_train_batch_size 8 --gradient_accumulation_steps 1 \
    --num_train_epochs 1 --learning_rate 2e-5 --save_steps 0 --no_cuda --overwrite_output_dir >"$WORK/awesome.log" 2>&1
  t2=$(now)
  [ -f "$WORK/xlt-run/model/model.safetensors" ] || { echo "xlt align-train wrote no model" >&2; exit 1; }
  compgen -G "$WORK/awesome-run/pytorch_model.bin" >/dev/null || compgen -G "$WORK/awesome-run/*.safetensors" >/dev/null \
    || { echo "awesome-align wrote no model (see $WORK/awesome.log)" >&2; exit 1; }
  echo "xlt $(echo "$t1 - $t0" | bc) awesome $(echo "$t2 - $t1" | bc)" | tee -a "$LOG"
done
"$PY" - "$LOG" "$PAIRS" <<'PYEOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
n = int(sys.argv[2])
x = [float(r[1]) for r in rows]; a = [float(r[3]) for r in rows]
print(f"| tool | seconds (rounds) | pairs/s (median) |")
print(f"| --- | --- | --- |")
print(f"| `xlt align-train --objectives so --device cpu` | {' '.join(f'{v:.1f}' for v in x)} | {n / statistics.median(x):.1f} |")
print(f"| awesome-align `run_train --train_so` | {' '.join(f'{v:.1f}' for v in a)} | {n / statistics.median(a):.1f} |")
print(f"ratio (xlt / awesome-align, pairs/s): {statistics.median(a) / statistics.median(x):.2f}x")
PYEOF

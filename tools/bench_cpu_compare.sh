#!/usr/bin/env bash
# Side-by-side CPU comparison of xlt and PyTorch + transformers on the same machine, same run:
# the training step of `xlt bench` against tools/bench_torch.py, and `xlt embed` against
# tools/bench_torch_embed.py (all-MiniLM-L6-v2, batch 32, max length 128). Rounds alternate
# the two implementations so background load affects both alike; the table printed last
# gives the median over rounds and the ratio.
#
# Usage: tools/bench_cpu_compare.sh [ROUNDS] [THREADS]
# Needs: target/release/xlt (cargo build --release), a Python with torch and transformers in
# $PYTHON (default python3), and the model from tools/fetch_minilm.sh for the embed part.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
THREADS=${2:-2}
PY=${PYTHON:-python3}
XLT=${XLT:-target/release/xlt}
SHAPE="--hidden 256 --layers 4 --heads 4 --ffn 1024 --vocab 8000 --batch 8 --seq 128 --steps 10 --warmup 2"
LOG=$(mktemp)
MODEL=${XLT_MINILM_DIR:-${XLT_CACHE_DIR:-$HOME/.cache/xlt}/all-MiniLM-L6-v2}
SENT=$(mktemp --suffix .txt)
"$PY" tools/make_sentences.py --n 3000 --out "$SENT" --seed 0 >/dev/null
for r in $(seq "$ROUNDS"); do
  "$XLT" bench --device cpu --threads "$THREADS" $SHAPE --json >>"$LOG"
  "$PY" tools/bench_torch.py --threads "$THREADS" $SHAPE >>"$LOG"
  if [[ -f "$MODEL/model.safetensors" ]]; then
    # xlt reports the rate of tokenization + encoding, excluding model loading, like the
    # PyTorch script (which times after loading and one warm-up batch).
    out=$(mktemp --suffix .npy)
    rate=$("$XLT" embed --threads "$THREADS" --model "$MODEL" --input "$SENT" --output "$out" --batch-size 32 --max-seq-len 128 2>&1 \
      | sed -n 's/.*(\([0-9.]*\) sentences\/s).*/\1/p')
    echo "{\"impl\": \"xlt-embed\", \"sentences_per_s\": $rate}" >>"$LOG"
    rm -f "$out"
    "$PY" tools/bench_torch_embed.py --model "$MODEL" --input "$SENT" --batch-size 32 --max-seq-len 128 --threads "$THREADS" \
      | sed 's/"impl": *"pytorch"/"impl": "pytorch-embed"/' >>"$LOG"
  fi
done
"$PY" - "$LOG" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def med(impl, key):
    xs = [r[key] for r in rows if r.get("impl") == impl]
    return statistics.median(xs) if xs else float("nan")
def per_round(impl, key):
    return [r[key] for r in rows if r.get("impl") == impl]
def paired(a, b, key, invert=False):
    xs, ys = per_round(a, key), per_round(b, key)
    rs = [(y / x if invert else x / y) for x, y in zip(xs, ys)]
    return " ".join(f"{r:.2f}" for r in rs)
x, t = med("xlt", "ms_per_step"), med("pytorch", "ms_per_step")
print(f"train step (C=256 L=4 FFN=1024 V=8000 B=8 T=128), median ms/step: xlt {x:.1f}, pytorch {t:.1f}, pytorch/xlt = {t/x:.2f}x (per round: {paired('pytorch', 'xlt', 'ms_per_step')})")
xe, te = med("xlt-embed", "sentences_per_s"), med("pytorch-embed", "sentences_per_s")
if xe == xe:
    print(f"embed all-MiniLM-L6-v2 (3000 sentences, batch 32, max len 128), median sentences/s: xlt {xe:.1f}, pytorch {te:.1f}, xlt/pytorch = {xe/te:.2f}x (per round: {paired('xlt-embed', 'pytorch-embed', 'sentences_per_s')})")
PYEOF
rm -f "$LOG" "$SENT"

#!/usr/bin/env bash
# The whole protocol of "One For All & All For One" in miniature, on this repository's tiny
# random XLM-R (tests/fixtures/tiny-xlmr) and XNLI fixture, in about a minute on 2 CPU cores:
#   1. a head run (xlt train), whose classifier every grid run then shares, frozen;
#   2. a grid of 3 learning rates × 2 seeds, each with --head-from HEAD/model --freeze-head and
#      a snapshot every 4 steps;
#   3. xlt score-snapshots: every snapshot scored per language (kept in the manifests) and the
#      single-run baselines printed;
#   4. xlt average-protocol: 3 orderings of one run per learning rate, R-L, R-DEV, R-CA and
#      Soup-3 for 1..3 runs, the S-TDEV oracle, report in OUT/protocol/.
# The numbers are a tiny model's on a few examples: the point is the pipeline, not the scores.
#
# Usage: tools/ofa_tiny.sh [OUT]      (default: ofa-tiny; needs target/release/xlt)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-ofa-tiny}
XLT=${XLT:-target/release/xlt}
MODEL=tests/fixtures/tiny-xlmr
FX=tests/fixtures/tasks/xtreme/xnli
rm -rf "$OUT" && mkdir -p "$OUT/download/xnli"
# The fixture's English training set doubles as English dev (selection); its German dev set as
# a labelled German test set (the fixture's test file, like XTREME's, has no labels).
cp "$FX/train-en.tsv" "$OUT/download/xnli/train-en.tsv"
cp "$FX/train-en.tsv" "$OUT/download/xnli/dev-en.tsv"
cp "$FX/dev-de.tsv" "$OUT/download/xnli/dev-de.tsv"
cp "$FX/dev-de.tsv" "$OUT/download/xnli/test-de.tsv"
common=(--tasks xnli --data-dir "$OUT/download" --model "$MODEL" --max-seq-length 64 --train-batch-size 2
        --max-steps 12 --eval-every-steps 4 --quiet)
"$XLT" train --exp-dir "$OUT/head" --run-name head --learning-rate 5e-4 --seed 0 "${common[@]}"
for lr in 1e-4 3e-4 1e-3; do
  for seed in 1 2; do
    "$XLT" train --exp-dir "$OUT/grid" --run-name "lr$lr-s$seed" --learning-rate "$lr" --seed "$seed" \
      --head-from "$OUT/head/runs/head/model" --freeze-head --snapshot-every 4 "${common[@]}"
  done
done
"$XLT" score-snapshots --runs "$OUT/grid" --task xnli --data-dir "$OUT/download" --splits val,test --max-seq-len 64 \
  > "$OUT/baselines.json"
"$XLT" average-protocol --runs "$OUT/grid" --task xnli --data-dir "$OUT/download" --out "$OUT/protocol" --k 3 \
  --orderings 3 --modes last,best,all,top3 --splits val,test --max-seq-len 64

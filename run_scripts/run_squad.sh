#!/usr/bin/env bash
# Fine-tune on SQuAD 2.0: run_xtreme.sh SQUAD with AMOS's SQuAD 2.0 settings (microsoft/AMOS fairseq/README.md and
# run_squad.sh: batch 16, lr 2e-5, 3 epochs, 10% warm-up; Adam betas (0.9,0.98), eps 1e-6, weight decay 0.01, no
# clipping; validation twice an epoch).
#
#   bash run_scripts/run_squad.sh <model.pt> <data> <save_dir> [KEY=VALUE ...] [-- fairseq args]
#   bash run_scripts/run_squad.sh <model.pt> <data> <out> EPOCH WARMUP BSZ LR SEED      (AMOS's positional form)
#
# <data>: the task folder preprocess/squad/process.sh wrote (<out>/squad), or its parent (AMOS passes the SQuAD folder).
# Settings: every run_xtreme.sh setting (EPOCHS=3, BSZ=16 (per process), LR=2e-5, SEED=1, WARMUP_RATIO=0.1, MAX_UPDATE=,
#   NPROC=, SELECT=, STAGE=, DRY_RUN=1, ...) and WARMUP=N (AMOS's: the reciprocal of the warm-up ratio, 10 = 10%).
# The positional form writes to <out>/<EPOCH>-<WARMUP>-<BSZ>-<LR>-<SEED>, as AMOS's run_squad.sh does.
# Then: stabletune-evaluate --checkpoint <save_dir>/checkpoint_best.pt --data <data> --split valid --out <dir>
#   (the official SQuAD 2.0 scores, best_f1 and its threshold: docs/squad2.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 3 ]; then sed -n '2,/^set -euo/{/^set -euo/!p}' "$0" >&2; exit 2; fi
MODEL=$1 DATA=$2 SAVE_DIR=$3; shift 3
[ -f "$DATA/metadata.json" ] || [ ! -f "$DATA/squad/metadata.json" ] || DATA=$DATA/squad

reciprocal() { awk -v w="$1" 'BEGIN { if (w !~ /^[0-9.]+$/) exit 1; print (w > 0 ? 1 / w : 0) }' ||
               { echo "run_squad.sh: WARMUP must be a number (AMOS's reciprocal of the warm-up ratio), got '$1'" >&2; exit 2; }; }
# AMOS's SQuAD 2.0 settings, from the recipe table (stabletune_fairseq/recipes/defaults.py, SQUAD2; run by path:
# standard library only).
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
mapfile -t SETTINGS < <("$PY" "$ROOT/stabletune_fairseq/recipes/defaults.py" squad2)
[ ${#SETTINGS[@]} -gt 0 ] || {
  echo "run_squad.sh: cannot read the SQuAD 2.0 defaults of stabletune_fairseq/recipes/defaults.py" >&2; exit 2; }
if [ $# -ge 5 ] && [[ "$1" =~ ^[0-9]+$ ]]; then  # AMOS: OUT EPOCH WARMUP BSZ LR SEED
  EPOCH=$1 WARMUP=$2 BSZ=$3 LR=$4 SEED=$5; shift 5
  SAVE_DIR=$SAVE_DIR/$EPOCH-$WARMUP-$BSZ-$LR-$SEED
  SETTINGS+=(EPOCHS="$EPOCH" WARMUP_RATIO="$(reciprocal "$WARMUP")" BSZ="$BSZ" LR="$LR" SEED="$SEED")
fi
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  case "$1" in
    WARMUP=*) SETTINGS+=(WARMUP_RATIO="$(reciprocal "${1#WARMUP=}")") ;;
    *) SETTINGS+=("$1") ;;
  esac
  shift
done
[ $# -eq 0 ] || shift  # the "--"
# AMOS's optimiser is run_xtreme.sh's OPTIM=amos; anything after "--" goes to fairseq as it is.
CMD=(bash "$ROOT/run_scripts/run_xtreme.sh" SQUAD "$MODEL" "$DATA" "$SAVE_DIR" "${SETTINGS[@]}" -- "$@")
echo "run_squad.sh: $(printf '%q ' "${CMD[@]}")"
exec "${CMD[@]}"

#!/usr/bin/env bash
# Fine-tune on one GLUE task: run_xtreme.sh with GLUE's defaults (AMOS's table of best settings, its optimiser).
#
#   bash run_scripts/run_glue.sh TASK <model.pt> <data> <save_dir> [KEY=VALUE ...] [-- fairseq args]
#   bash run_scripts/run_glue.sh TASK <model.pt> <data> <out> EPOCH WARMUP BSZ LR SEED      (AMOS's positional form)
#
# TASK: CoLA | SST-2 | MRPC | QQP | STS-B | MNLI | QNLI | RTE | WNLI (any case, with or without the dash).
# <data>: the task folder preprocess/glue/process.sh wrote (<out>/RTE), or its parent (<out>, as AMOS's scripts take).
# Settings: every run_xtreme.sh setting (SEED=, LR=, EPOCHS=, BSZ=, MAX_UPDATE=, REG=rdrop|r3f, RDROP_ALPHA=,
#   RDROP_SCALE=fairseq|hf|readme, R3F_LAMBDA=, NPROC=, DRY_RUN=1, MAX_TOKENS= (default AMOS's 2200*BSZ/16; 0: rows
#   only), ...) and WARMUP=N (AMOS's: the reciprocal of the warm-up ratio, 16 = 6.25%).
# The positional form writes to <out>/<TASK>/<EPOCH>-<WARMUP>-<BSZ>-<LR>-<SEED>, as AMOS's run_glue.sh does.
# Re-running the same command resumes from <save_dir>/checkpoint_last.pt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 4 ]; then sed -n '2,/^set -euo/{/^set -euo/!p}' "$0" >&2; exit 2; fi
GLUE_TASK=$1 MODEL=$2 DATA=$3 SAVE_DIR=$4; shift 4
case "$(echo "$GLUE_TASK" | tr '[:lower:]' '[:upper:]' | tr -d '-')" in
  COLA) TASK=COLA FOLDER=CoLA ;;  SST2) TASK=SST2 FOLDER=SST-2 ;;  MRPC) TASK=MRPC FOLDER=MRPC ;;
  QQP) TASK=QQP FOLDER=QQP ;;     STSB) TASK=STSB FOLDER=STS-B ;;  MNLI) TASK=MNLI FOLDER=MNLI ;;
  QNLI) TASK=QNLI FOLDER=QNLI ;;  RTE) TASK=RTE FOLDER=RTE ;;      WNLI) TASK=WNLI FOLDER=WNLI ;;
  *) echo "run_glue.sh: unknown GLUE task '$GLUE_TASK' (CoLA SST-2 MRPC QQP STS-B MNLI QNLI RTE WNLI)" >&2; exit 2 ;;
esac
# AMOS's data argument is the folder of all tasks; ours the task's own: take either.
[ -f "$DATA/metadata.json" ] || [ ! -f "$DATA/$FOLDER/metadata.json" ] || DATA=$DATA/$FOLDER

ratio() { "$ROOT/.venv/bin/python" -c "import sys; w = float(sys.argv[1]); print(1.0 / w if w > 0 else 0.0)" "$1" 2>/dev/null ||
          python3 -c "import sys; w = float(sys.argv[1]); print(1.0 / w if w > 0 else 0.0)" "$1"; }
SETTINGS=()
if [ $# -ge 5 ] && [[ "$1" =~ ^[0-9]+$ ]]; then  # AMOS: OUT EPOCH WARMUP BSZ LR SEED
  EPOCH=$1 WARMUP=$2 BSZ=$3 LR=$4 SEED=$5; shift 5
  SAVE_DIR=$SAVE_DIR/$FOLDER/$EPOCH-$WARMUP-$BSZ-$LR-$SEED
  SETTINGS+=(EPOCHS="$EPOCH" WARMUP_RATIO="$(ratio "$WARMUP")" BSZ="$BSZ" LR="$LR" SEED="$SEED")
fi
while [ $# -gt 0 ]; do
  case "$1" in
    --) break ;;
    WARMUP=*) SETTINGS+=(WARMUP_RATIO="$(ratio "${1#WARMUP=}")") ;;
    *) SETTINGS+=("$1") ;;
  esac
  shift
done
exec bash "$ROOT/run_scripts/run_xtreme.sh" "$TASK" "$MODEL" "$DATA" "$SAVE_DIR" "${SETTINGS[@]}" "$@"

#!/usr/bin/env bash
# Fine-tune on one XTREME task with fairseq-train and the stabletune_fairseq plugin.
#
#   bash run_scripts/run_xtreme.sh TASK <model.pt> <data_dir> <save_dir> [KEY=VALUE ...] [-- fairseq args]
#
# TASK: XNLI | PAWSX.  <model.pt>: official-format XLM-R checkpoint (or stabletune-convert's output).
# <data_dir>: the task folder process.sh wrote (e.g. <out>/xnli). Re-running the same command after an
# interruption resumes from <save_dir>/checkpoint_last.pt.
#
# Settings (KEY=VALUE; defaults per task in the table below):
#   SEED=1  LR=  EPOCHS=  MAX_UPDATE=  BSZ= (per process)  UPDATE_FREQ=1  SELECT=avg|en
#   ARCH= (default: read from model.pt)  VALID_LANGS=de,en (default: every dev language)
#   FREEZE_EMBEDDINGS=0|1  SAVE_INTERVAL_UPDATES=0  WARMUP_RATIO=0.1  DRY_RUN=0|1 (print the command only)
# Anything after "--" is passed to fairseq-train as is.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
BIN=$(dirname "$PY")

if [ $# -lt 4 ]; then sed -n '2,16p' "$0" >&2; exit 2; fi
TASK=$1 MODEL=$2 DATA=$3 SAVE_DIR=$4; shift 4

# Per-task defaults (DESIGN.md section 4): task -> max_len epochs lr_base lr_large batch metric
task_defaults() {
  case "$1" in
    XNLI)  echo "256 10 7e-6 5e-6 32 acc" ;;
    PAWSX) echo "256 10 1e-5 1e-5 32 acc" ;;
    *) echo "run_xtreme.sh: unknown task '$1' (known: XNLI PAWSX)" >&2; return 1 ;;
  esac
}
read -r MAX_LEN DEF_EPOCHS LR_BASE LR_LARGE DEF_BATCH METRIC < <(task_defaults "$TASK") || exit 2

SEED=1 LR= EPOCHS=$DEF_EPOCHS MAX_UPDATE= BSZ= UPDATE_FREQ=1 SELECT=avg ARCH= VALID_LANGS=
FREEZE_EMBEDDINGS=0 SAVE_INTERVAL_UPDATES=0 WARMUP_RATIO=0.1 DRY_RUN=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; EXTRA=("$@"); break ;;
    SEED=*|LR=*|EPOCHS=*|MAX_UPDATE=*|BSZ=*|UPDATE_FREQ=*|SELECT=*|ARCH=*|VALID_LANGS=*|FREEZE_EMBEDDINGS=*|SAVE_INTERVAL_UPDATES=*|WARMUP_RATIO=*|DRY_RUN=*)
      declare "$1" ;;
    *) echo "run_xtreme.sh: unknown setting '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done

[ -f "$MODEL" ] || { echo "run_xtreme.sh: pretrained model '$MODEL' not found" >&2; exit 2; }
[ -f "$DATA/metadata.json" ] || { echo "run_xtreme.sh: '$DATA' has no metadata.json (run preprocess/xtreme/process.sh first)" >&2; exit 2; }
case "$SELECT" in avg|en) ;; *) echo "run_xtreme.sh: SELECT must be avg or en" >&2; exit 2 ;; esac
if [ "$SELECT" = en ] && ! grep -q '"valid_en"' "$DATA/metadata.json"; then
  echo "run_xtreme.sh: SELECT=en needs an English dev set, and $DATA has no valid_en (dev-en.tsv)" >&2; exit 2
fi
[ -n "$ARCH" ] || ARCH=$("$PY" -m stabletune_fairseq.cli.inspect_model "$MODEL" 2>/dev/null | tail -1)
if [ -z "$LR" ]; then
  case "$ARCH" in *large*) LR=$LR_LARGE ;; *) LR=$LR_BASE ;; esac
fi

NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if [ "$NGPU" -gt 0 ]; then
  WORLD=$NGPU
  DEVICE_ARGS=(--fp16 --distributed-world-size "$NGPU" --num-workers 2)
else
  WORLD=1
  echo "run_xtreme.sh: no GPU found: training on CPU in fp32 (--fp16 needs CUDA)"
  DEVICE_ARGS=(--cpu --num-workers 0)
fi
# The reference batch (32) is the effective batch: split it over the processes unless BSZ is given.
[ -n "$BSZ" ] || BSZ=$(( DEF_BATCH / (WORLD * UPDATE_FREQ) > 0 ? DEF_BATCH / (WORLD * UPDATE_FREQ) : 1 ))

N_TRAIN=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['splits']['train']['examples'])" "$DATA/metadata.json")
PER_EPOCH=$(( (N_TRAIN + BSZ * UPDATE_FREQ * WORLD - 1) / (BSZ * UPDATE_FREQ * WORLD) ))
TOTAL=${MAX_UPDATE:-$(( PER_EPOCH * EPOCHS ))}
WARMUP=$("$PY" -c "print(int($TOTAL * $WARMUP_RATIO))")
STOP_ARGS=(--max-epoch "$EPOCHS")
[ -z "$MAX_UPDATE" ] || STOP_ARGS+=(--max-update "$MAX_UPDATE")
OPTIONAL_ARGS=()
[ "$FREEZE_EMBEDDINGS" = 0 ] || OPTIONAL_ARGS+=(--freeze-embeddings)
[ -z "$VALID_LANGS" ] || OPTIONAL_ARGS+=(--valid-languages "$VALID_LANGS")

CMD=("$BIN/fairseq-train" "$DATA"
  --user-dir "$ROOT/stabletune_fairseq"
  --task xtreme_sentence --arch "$ARCH" --criterion stability_consistency
  --pretrained-encoder "$MODEL" "${OPTIONAL_ARGS[@]}"
  --batch-size "$BSZ" --update-freq "$UPDATE_FREQ" --seed "$SEED"
  --optimizer adam --adam-betas "(0.9,0.999)" --adam-eps 1e-8 --weight-decay 0.0 --clip-norm 1.0
  --lr "$LR" --lr-scheduler polynomial_decay --end-learning-rate 0.0
  --total-num-update "$TOTAL" --warmup-updates "$WARMUP" "${STOP_ARGS[@]}"
  --valid-subset valid --best-checkpoint-metric "${METRIC}_${SELECT}" --maximize-best-checkpoint-metric
  --save-dir "$SAVE_DIR" --no-epoch-checkpoints --save-interval-updates "$SAVE_INTERVAL_UPDATES"
  --log-format simple --log-interval 10 "${DEVICE_ARGS[@]}" "${EXTRA[@]}")

echo "run_xtreme.sh: $TASK on $N_TRAIN examples, $PER_EPOCH updates/epoch, $TOTAL updates, effective batch $(( BSZ * UPDATE_FREQ * WORLD )), checkpoint selection by ${METRIC}_${SELECT}"
printf '%q ' "${CMD[@]}"; echo
[ "$DRY_RUN" = 0 ] || exit 0
mkdir -p "$SAVE_DIR"
"${CMD[@]}"

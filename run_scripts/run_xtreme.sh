#!/usr/bin/env bash
# Fine-tune on one XTREME task with fairseq-train and the stabletune_fairseq plugin: plain fine-tuning
# (STAGE=0, default) or the two stages of xTune (STAGE=1, then STAGE=2 with the same <save_dir>).
#
#   bash run_scripts/run_xtreme.sh TASK <model.pt> <data_dir> <save_dir> [KEY=VALUE ...] [-- fairseq args]
#
# TASK: XNLI | PAWSX | UDPOS | PANX | XQUAD | MLQA | TYDIQA | SQUAD (the QA tasks: SQuAD or TyDiQA training data),
#   or a GLUE task: COLA | SST2 | MRPC | QQP | STSB | MNLI | QNLI | RTE | WNLI (run_glue.sh takes AMOS's arguments too).
# <model.pt>: official-format XLM-R checkpoint (or stabletune-convert's output).
# <data_dir>: the task folder process.sh wrote (e.g. <out>/xnli). Re-running the same command after an
# interruption resumes from <save_dir>/checkpoint_last.pt.
#
# Settings (KEY=VALUE; defaults per task in stabletune_fairseq/recipes/defaults.py):
#   SEED=1  LR=  EPOCHS=  MAX_UPDATE=  BSZ= (per process)  UPDATE_FREQ=1  SELECT=avg|en
#   NPROC= (processes: default all GPUs, or 1 on CPU; NPROC=2 on CPU runs two gloo ranks)
#   ARCH= (default: read from model.pt)  VALID_LANGS=de,en (default: every dev language)
#   FREEZE_EMBEDDINGS=0|1  SAVE_INTERVAL_UPDATES=0  DRY_RUN=0|1 (print the command only)
#   PRECISION=auto|fp32|bf16 (auto: bf16 on a CPU with bf16 instructions, else fp32; CPU bf16: autocast with float32
#     weights, docs/precision.md; GPU: --fp16 for auto and fp32, fairseq's --bf16 for bf16)
#   MAX_TOKENS= (a batch's tokens as well as its rows; default: GLUE 2200*BSZ/16 as AMOS, none otherwise; 0: rows only)
#   PROGRESS=0|1 (default 1 in a terminal: one progress line; the full log is always <run dir>/train.log)
#   TENSORBOARD=<dir> (TensorBoard event files in <dir>/train_inner, train, valid: fairseq's --tensorboard-logdir;
#     one dir per run: a resumed run appends to it)  WANDB=<project> (Weights & Biases, fairseq's --wandb-project;
#     offline unless WANDB_MODE is set, files in <run dir>/wandb unless WANDB_DIR is set; needs the wandb package)
#   WARMUP_RATIO= (task default: 0 for XNLI/PAWS-X, 0.1 otherwise)  VALIDATE_INTERVAL_UPDATES= (task default:
#     XNLI 5000, PAWS-X 1000, UD-POS 500, PAN-X 1000, QA 0 = epoch ends only; the best checkpoint is kept then too)
#   EPOCHS= (task default; TyDiQA: 20 base, 10 large)
#   STAGE=0|1|2  SETTING=cross-lingual-transfer|translate-train-all  DICT_DIR= (MUSE en-<lang>.txt files)
#   DICT_LANGS= (default: the dev languages with a dictionary)  TEACHER= (default: <save_dir>/checkpoint_best.pt;
#     checkpoint_last.pt for QA, as the reference, and without a dev set)
#   R1_LAMBDA=5 R2_LAMBDA= (reference convention, KL averaged over classes; passed on divided by the classes)
#   OPTIM=xtune|amos (default: amos for GLUE, xtune otherwise; the optimisers of recipes/defaults.py)
#   REG=none|rdrop|r3f (plain fine-tuning with a stability regulariser, STAGE=0 only; docs/glue.md): RDROP_ALPHA=1.0
#     (R-Drop's --reg-alpha) RDROP_SCALE=fairseq|hf|readme (whose scale alpha is on: --r1-lambda alpha/4, alpha*BSZ/8,
#     alpha*BSZ/2); R3F_LAMBDA=1.0 R3F_EPS=1e-5 R3F_NOISE=uniform|normal (fairseq's examples/rxf defaults)
#   DISTILL=<teacher.pt> (knowledge distillation from a fine-tuned checkpoint of this task folder into <model.pt>, e.g.
#     a stabletune-convert shrink student; docs/distillation.md): KD_T=10 KD_ALPHA=0.5 PKD_MU=0 (100: Patient KD)
#     PKD_LAYERS=skip CON_WEIGHT=0 CON_T=0.07 (our in-batch InfoNCE) BANK= (stabletune-teacher-bank's folder);
#     BERT-gang's layer-wise contrast with bank negatives (BANK= written with --states): LCON_WEIGHT=0 (1: on)
#     LCON_T=0.07 LCON_NEG=20 LCON_LAYERS=all|last|1:2,... LCON_ANY_ROW=0 CON_STEPS=0 (updates of the contrast alone;
#     its KD then: KD_T=1 KD_ALPHA=0.2); SCL_LAMBDA=0 (1: SCL alone) SCL_T=0.1;
#     LR default 5e-5 (the BERT distillation recipes'); with STAGE=1 the views are distilled too; not with STAGE=2
#   INIT_FROM=<checkpoint.pt> (a fine-tuned checkpoint of this task folder, e.g. an SCL run's: its weights, task head
#     included, replace <model.pt>'s, which still gives the architecture; optimiser and schedule start afresh; another
#     task folder, label list or shape is refused; BERT-gang's train_kd_from_ckpt)
# Stage 1 writes to <save_dir>; stage 2 to <save_dir>/stage2, with <save_dir>/checkpoint_best.pt as teacher.
# Each run dir keeps checkpoint_best.pt (by SELECT), checkpoint_best_<metric>_<en|avg>.pt (by the other rule),
# checkpoint_last.pt, valid_history.jsonl (every saved validation) and train.log.
# Anything after "--" is passed to fairseq-train as is.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3

if [ $# -lt 4 ]; then sed -n '2,/^set -euo/{/^set -euo/!p}' "$0" >&2; exit 2; fi

# The command: per-task defaults from stabletune_fairseq/recipes/defaults.py, every setting checked and the schedule
# counted (from the dataset this run trains on, batched as fairseq will) by stabletune_fairseq/recipes/xtreme.py.
source "$ROOT/run_scripts/recipe_plan.sh"
# A preemption signal before training starts: nothing to save (exit status 75, as below).
stopped_early() {
  rm -f "$RECIPE_PLAN"
  echo "run_xtreme.sh: stopped by SIG$1 before training started; re-run the same command to start" >&2; exit 75
}
trap 'stopped_early TERM' TERM; trap 'stopped_early USR1' USR1
recipe_plan xtreme "$@"
if [ "$NGPU" = 0 ]; then
  source "$ROOT/run_scripts/cpu_malloc.sh"
  # CPU ranks (gloo, legacy_ddp, started below): threads shared out.
  [ "$WORLD" -le 1 ] || export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / WORLD > 0 ? $(nproc) / WORLD : 1 ))}
fi
# W&B: offline (wandb sync uploads later) unless WANDB_MODE says otherwise; its files with the run's.
[ -z "$WANDB" ] || export WANDB_MODE=${WANDB_MODE:-offline} WANDB_DIR=${WANDB_DIR:-$RUN_DIR}

echo "$INFO"
printf '%q ' "${CMD[@]}"; echo
[ "$DRY_RUN" = 0 ] || exit 0
mkdir -p "$RUN_DIR"
train() {
  trap '' INT  # Ctrl-C reaches training as SIGTERM, from this script (below): a graceful stop, not a traceback
  if [ "$NGPU" -gt 0 ] || [ "$WORLD" -le 1 ]; then
    exec "${CMD[@]}"
  fi
  # CPU ranks: start them all; as soon as one fails, kill the others and fail with its status. (Waiting on rank 0
  # first would hang: the others wait for a failed rank in gloo's rendezvous or collectives, for its 30-minute
  # timeout.) Preempted ranks (75) all stop after the same update: wait for the others, rank 0 may be saving.
  local -A RANK_OF=() ; local RANK PID CODE FAILED= STATUS=0
  trap 'kill -s TERM "${!RANK_OF[@]}" 2>/dev/null || true' TERM
  trap 'kill -s USR1 "${!RANK_OF[@]}" 2>/dev/null || true' USR1
  trap 'kill -s KILL "${!RANK_OF[@]}" 2>/dev/null || true' USR2  # a second Ctrl-C
  for (( RANK = 0; RANK < WORLD; RANK++ )); do
    "${CMD[@]}" --distributed-rank "$RANK" &
    RANK_OF[$!]=$RANK
  done
  while [ ${#RANK_OF[@]} -gt 0 ]; do
    PID=; CODE=0; wait -n -p PID "${!RANK_OF[@]}" || CODE=$?
    [ -n "$PID" ] || continue  # interrupted by a signal, not an exit
    RANK=${RANK_OF[$PID]}; unset "RANK_OF[$PID]"
    if [ "$CODE" = 75 ] && [ "$STATUS" = 0 ]; then STATUS=75
    elif [ "$CODE" != 0 ] && [ "$CODE" != 75 ] && [ -z "$FAILED" ]; then
      FAILED=$RANK; STATUS=$CODE
      echo "run_xtreme.sh: rank $RANK failed (exit $CODE): stopping the other ranks" >&2
      [ ${#RANK_OF[@]} -eq 0 ] || kill -KILL "${!RANK_OF[@]}" 2>/dev/null || true
    fi
  done
  return "$STATUS"
}
# The whole log goes to <run dir>/train.log (appended on resume; stabletune-report draws its curves from it).
# In a terminal the console shows one progress line instead of fairseq's every-10-updates lines.
console() {
  if [ "$PROGRESS" = 1 ]; then
    awk '/ \| train_inner \| / { sub(/.* \| train_inner \| /, ""); printf "\r\033[K%s", substr($0, 1, 150); fflush(); next }
         { printf "\r\033[K%s\n", $0; fflush() }'
  else cat; fi
}
echo "run_xtreme.sh: the full log is $RUN_DIR/train.log"
# Preemption: SIGTERM or SIGUSR1 (SLURM: --signal=USR1@<seconds>), to this script or to the whole job, reaches
# every training process, which saves checkpoint_last.pt after its current update and exits with 75; this script
# exits with their status. Ctrl-C does the same (a second one stops at once). The log writers ignore the signals,
# so that the last lines are not lost.
exec 3> >(trap '' TERM USR1 INT; tee -a "$RUN_DIR/train.log" | console)
LOGGER=$!
train >&3 2>&3 &
TRAINING=$!  # fairseq-train itself (exec), or the subshell of the CPU ranks, which passes signals on to them
SIGNALLED= FORCED=
pass_on() {
  if [ "$1" = INT ] && [ -n "$SIGNALLED" ]; then  # a second Ctrl-C
    FORCED=1; kill -s "$([ "$WORLD" -gt 1 ] && [ "$NGPU" = 0 ] && echo USR2 || echo KILL)" "$TRAINING" 2>/dev/null || true
    return
  fi
  SIGNALLED=$1
  kill -s "$([ "$1" = INT ] && echo TERM || echo "$1")" "$TRAINING" 2>/dev/null || true
}
trap 'pass_on TERM' TERM; trap 'pass_on USR1' USR1; trap 'pass_on INT' INT
while :; do
  STATUS=0; wait "$TRAINING" || STATUS=$?
  kill -0 "$TRAINING" 2>/dev/null || break  # else the wait was interrupted by a signal
done
exec 3>&-; wait "$LOGGER" 2>/dev/null || true
if [ -n "$SIGNALLED" ] && [ -z "$FORCED" ] && [ "$STATUS" -gt 128 ]; then
  # Killed by the signal before its handler was installed (during start-up): nothing trained since the last checkpoint.
  echo "run_xtreme.sh: stopped by SIG$SIGNALLED during start-up; re-run the same command (it resumes from the last checkpoint, if any)" >&2
  STATUS=75
fi
exit "$STATUS"

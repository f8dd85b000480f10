#!/usr/bin/env bash
# Multilingual knowledge distillation of sentence embeddings (Reimers & Gurevych 2020; docs/embeddings.md): a
# student learns student(src) ~ teacher(src) and student(tgt) ~ teacher(src) on parallel sentences, with fairseq-train
# and the stabletune_fairseq plugin (--task sentence_distillation --criterion sentence_distillation).
#
#   bash run_scripts/run_distill_embeddings.sh <student.pt> <data_dir> <save_dir> TEACHER=<teacher.pt> [KEY=VALUE ...] [-- fairseq args]
#
# <student.pt>: official-format model.pt of the student (XLM-R, stabletune-convert output, a shrink student), the
#   data's vocabulary. <data_dir>: the folder `process.sh <folder> parallel <model-dir> <out>` wrote (<out>/parallel).
# TEACHER=<model.pt> (required): the frozen sentence encoder, e.g. .cache/e5-small/model.pt (mean pooling, "query: ").
# Settings (defaults: Reimers & Gurevych 2020 / sentence-transformers' make_multilingual recipe, see below):
#   LR=2e-5  BSZ=64 (per process)  EPOCHS=5  MAX_UPDATE=  WARMUP= (10000, at most a tenth of the run's updates)
#   WEIGHT_DECAY=0.01  CLIP=1.0  SEED=1  UPDATE_FREQ=1  NPROC= (default: all GPUs, or 1 on CPU)  ARCH= (from student.pt)
#   POOLING=mean|cls  PREFIX= (default "query: " when the teacher is the embedded e5-small, else "")
#   CON_WEIGHT=0 CON_T=0.05 (in-batch InfoNCE between student(src) and student(tgt): the multi-stage framework's
#     contrastive stage)
#   EVAL_STS=<folder> EVAL_TATOEBA=<folder> (the student's STS Spearman / Tatoeba accuracy at every validation)
#   SELECT= (sts_spearman with EVAL_STS, else tatoeba_acc with EVAL_TATOEBA, else mse_tgt: the checkpoint_best rule)
#   VALIDATE_INTERVAL_UPDATES=1000 (and at each epoch's end)  FREEZE_EMBEDDINGS=0|1  DRY_RUN=0|1 (print the command only)
# Anything after "--" is passed to fairseq-train as is. Re-running the same command resumes from <save_dir>.
#
# Defaults: Reimers & Gurevych 2020 train with MSE, AdamW lr 2e-5, batch 64, 10k warm-up steps, max sequence length 128
# (process.sh MAX_LEN=128, the data's default); sentence-transformers' recipe adds weight decay 0.01, gradient clipping
# 1.0, a linear decay, 5 epochs and an evaluation every 1000 steps. The warm-up is capped at a tenth of the run so
# that short runs (CPU, tests) reach the peak learning rate: 10k steps is longer than such a run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
BIN=$(dirname "$PY")

if [ $# -lt 3 ]; then sed -n '2,/^set -euo/{/^set -euo/!p}' "$0" >&2; exit 2; fi
MODEL=$1 DATA=$2 SAVE_DIR=$3; shift 3

TEACHER= LR=2e-5 BSZ=64 EPOCHS=5 MAX_UPDATE= WARMUP= WEIGHT_DECAY=0.01 CLIP=1.0 SEED=1 UPDATE_FREQ=1 NPROC= ARCH=
POOLING=mean PREFIX=__default__ CON_WEIGHT=0 CON_T=0.05 EVAL_STS= EVAL_TATOEBA= SELECT= VALIDATE_INTERVAL_UPDATES=1000
FREEZE_EMBEDDINGS=0 DRY_RUN=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; EXTRA=("$@"); break ;;
    TEACHER=*|LR=*|BSZ=*|EPOCHS=*|MAX_UPDATE=*|WARMUP=*|WEIGHT_DECAY=*|CLIP=*|SEED=*|UPDATE_FREQ=*|NPROC=*|ARCH=*|POOLING=*|PREFIX=*|CON_WEIGHT=*|CON_T=*|EVAL_STS=*|EVAL_TATOEBA=*|SELECT=*|VALIDATE_INTERVAL_UPDATES=*|FREEZE_EMBEDDINGS=*|DRY_RUN=*)
      declare "$1" ;;
    *) echo "run_distill_embeddings.sh: unknown setting '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done

fail() { echo "run_distill_embeddings.sh: $*" >&2; exit 2; }
[ -e "$MODEL" ] || fail "student model '$MODEL' not found"
[ -n "$TEACHER" ] || fail "TEACHER=<sentence encoder model.pt> is required (e.g. .cache/e5-small/model.pt)"
[ -e "$TEACHER" ] || fail "TEACHER=$TEACHER: no such file"
[ -f "$DATA/metadata.json" ] || fail "'$DATA' has no metadata.json (run: bash preprocess/xtreme/process.sh <folder> parallel <model-dir> <out>)"
grep -q '"kind": "parallel_sentences"' "$DATA/metadata.json" || fail "$DATA is not parallel sentences (process.sh <folder> parallel ...)"
case "$POOLING" in mean|cls) ;; *) fail "POOLING must be mean or cls (got '$POOLING')" ;; esac
[ -z "$EVAL_STS" ] || [ -d "$EVAL_STS" ] || fail "EVAL_STS=$EVAL_STS: not a folder"
[ -z "$EVAL_TATOEBA" ] || [ -d "$EVAL_TATOEBA" ] || fail "EVAL_TATOEBA=$EVAL_TATOEBA: not a folder"
if [ "$PREFIX" = __default__ ]; then  # multilingual-e5 expects "query: " for symmetric tasks (its model card)
  PREFIX=$(grep -qiE "e5-small|multilingual-e5" "$(dirname "$TEACHER")/conversion.json" 2>/dev/null && echo "query: " || echo "")
fi
if [ -z "$SELECT" ]; then
  SELECT=$([ -n "$EVAL_STS" ] && echo sts_spearman || { [ -n "$EVAL_TATOEBA" ] && echo tatoeba_acc || echo mse_tgt; })
fi
case "$SELECT" in
  sts_spearman) [ -n "$EVAL_STS" ] || fail "SELECT=sts_spearman needs EVAL_STS=<folder>"; MAXIMIZE=(--maximize-best-checkpoint-metric) ;;
  tatoeba_acc) [ -n "$EVAL_TATOEBA" ] || fail "SELECT=tatoeba_acc needs EVAL_TATOEBA=<folder>"; MAXIMIZE=(--maximize-best-checkpoint-metric) ;;
  mse_tgt|mse_src|loss) MAXIMIZE=() ;;
  *) fail "SELECT must be sts_spearman, tatoeba_acc, mse_tgt, mse_src or loss (got '$SELECT')" ;;
esac

ARCH_ARGS=()
if [ -z "$ARCH" ]; then  # the student's architecture and depth from model.pt, its vocabulary checked against the data's
  INSPECTED=$("$PY" "$ROOT/stabletune_fairseq/release.py" "$MODEL" "$DATA/dict.txt" 2>"${TMPDIR:-/tmp}/inspect.$$") || {
    grep "^error: " "${TMPDIR:-/tmp}/inspect.$$" >&2; rm -f "${TMPDIR:-/tmp}/inspect.$$"
    fail "cannot use $MODEL as the student (see above; or set ARCH=)"; }
  rm -f "${TMPDIR:-/tmp}/inspect.$$"; read -r ARCH NGPU LAYERS < <(echo "$INSPECTED" | tail -1)
  DEFAULT_LAYERS=$(case "$ARCH" in *large*) echo 24 ;; *) echo 12 ;; esac)
  [ "$LAYERS" = "$DEFAULT_LAYERS" ] || ARCH_ARGS=(--encoder-layers "$LAYERS")
else
  NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
fi
if [ "$NGPU" -gt 0 ]; then
  WORLD=${NPROC:-$NGPU}; DEVICE_ARGS=(--fp16 --num-workers 2)
  [ "$WORLD" -le 1 ] || DEVICE_ARGS+=(--distributed-world-size "$WORLD")
else
  WORLD=1; echo "run_distill_embeddings.sh: no GPU found: training on CPU in fp32 (--fp16 needs CUDA)"
  source "$ROOT/run_scripts/cpu_malloc.sh"; DEVICE_ARGS=(--cpu --num-workers 0)
fi
OPTIONAL_ARGS=()
[ -z "$EVAL_STS" ] || OPTIONAL_ARGS+=(--eval-sts "$EVAL_STS")
[ -z "$EVAL_TATOEBA" ] || OPTIONAL_ARGS+=(--eval-tatoeba "$EVAL_TATOEBA")
[ "$FREEZE_EMBEDDINGS" = 0 ] || OPTIONAL_ARGS+=(--freeze-embeddings)
[ "$VALIDATE_INTERVAL_UPDATES" = 0 ] || OPTIONAL_ARGS+=(--validate-interval-updates "$VALIDATE_INTERVAL_UPDATES"
  --save-interval-updates "$VALIDATE_INTERVAL_UPDATES" --keep-interval-updates 2)
STOP_ARGS=(--max-epoch "$EPOCHS")
[ -z "$MAX_UPDATE" ] || STOP_ARGS+=(--max-update "$MAX_UPDATE")
TRAIN_ARGS=("$DATA"
  --user-dir "$ROOT/stabletune_fairseq"
  --task sentence_distillation --prefix "$PREFIX" --pooling "$POOLING" "${OPTIONAL_ARGS[@]}"
  --arch "$ARCH" "${ARCH_ARGS[@]}" --pretrained-encoder "$MODEL"
  --criterion sentence_distillation --teacher "$TEACHER" --contrastive-weight "$CON_WEIGHT" --contrastive-temperature "$CON_T"
  --batch-size "$BSZ" --update-freq "$UPDATE_FREQ" --seed "$SEED"
  --optimizer fused_adamw --adam-betas "(0.9,0.999)" --adam-eps 1e-8 --weight-decay "$WEIGHT_DECAY" --clip-norm "$CLIP"
  --lr "$LR" --lr-scheduler polynomial_decay --end-learning-rate 0.0 "${STOP_ARGS[@]}"
  --valid-subset valid --best-checkpoint-metric "$SELECT" "${MAXIMIZE[@]}"
  --save-dir "$SAVE_DIR" --no-epoch-checkpoints --log-format simple --log-interval 10 "${DEVICE_ARGS[@]}" "${EXTRA[@]}")
[ "$DRY_RUN" != 0 ] || "$PY" "$ROOT/stabletune_fairseq/reliability/save_dir_lock.py" "$SAVE_DIR" || exit 2
COUNT=$("$PY" -m stabletune_fairseq.cli.count_updates "${TRAIN_ARGS[@]}" --total-num-update 1) || fail "cannot count the training batches of $DATA (see above)"
read -r N_TRAIN PER_EPOCH TOTAL < <(echo "$COUNT" | sed -E 's/rows=([0-9]+) per_epoch=([0-9,]+) total=([0-9]+)/\1 \2 \3/')
[ -n "$WARMUP" ] || WARMUP=$(( TOTAL / 10 < 10000 ? TOTAL / 10 : 10000 ))
CMD=("$BIN/fairseq-train" "${TRAIN_ARGS[@]}" --total-num-update "$TOTAL" --warmup-updates "$WARMUP")
echo "run_distill_embeddings.sh: $N_TRAIN training rows, $PER_EPOCH updates per epoch, $TOTAL updates (warm-up $WARMUP), effective batch $(( BSZ * UPDATE_FREQ * WORLD )), prefix '$PREFIX', $POOLING pooling, checkpoint selection by $SELECT"
printf '%q ' "${CMD[@]}"; echo
[ "$DRY_RUN" = 0 ] || exit 0
mkdir -p "$SAVE_DIR"
"${CMD[@]}" 2>&1 | tee -a "$SAVE_DIR/train.log"
exit "${PIPESTATUS[0]}"

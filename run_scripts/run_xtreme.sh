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
# Settings (KEY=VALUE; defaults per task in the table below):
#   SEED=1  LR=  EPOCHS=  MAX_UPDATE=  BSZ= (per process)  UPDATE_FREQ=1  SELECT=avg|en
#   NPROC= (processes: default all GPUs, or 1 on CPU; NPROC=2 on CPU runs two gloo ranks)
#   ARCH= (default: read from model.pt)  VALID_LANGS=de,en (default: every dev language)
#   FREEZE_EMBEDDINGS=0|1  SAVE_INTERVAL_UPDATES=0  DRY_RUN=0|1 (print the command only)
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
#   OPTIM=xtune|amos (default: amos for GLUE, xtune otherwise; see the optimiser below)
#   REG=none|rdrop|r3f (plain fine-tuning with a stability regulariser, STAGE=0 only; docs/glue.md): RDROP_ALPHA=1.0
#     (R-Drop's --reg-alpha); R3F_LAMBDA=1.0 R3F_EPS=1e-5 R3F_NOISE=uniform|normal (fairseq's examples/rxf defaults)
#   DISTILL=<teacher.pt> (knowledge distillation from a fine-tuned checkpoint of this task folder into <model.pt>, e.g.
#     a stabletune-convert shrink student; docs/distillation.md): KD_T=10 KD_ALPHA=0.5 PKD_MU=0 (100: Patient KD)
#     PKD_LAYERS=skip CON_WEIGHT=0 CON_T=0.07 (contrastive distillation) BANK= (stabletune-teacher-bank's folder);
#     LR default 5e-5 (the BERT distillation recipes'); with STAGE=1 the views are distilled too; not with STAGE=2
# Stage 1 writes to <save_dir>; stage 2 to <save_dir>/stage2, with <save_dir>/checkpoint_best.pt as teacher.
# Each run dir keeps checkpoint_best.pt (by SELECT), checkpoint_best_<metric>_<en|avg>.pt (by the other rule),
# checkpoint_last.pt, valid_history.jsonl (every saved validation) and train.log.
# Anything after "--" is passed to fairseq-train as is.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
BIN=$(dirname "$PY")

if [ $# -lt 4 ]; then sed -n '2,/^set -euo/{/^set -euo/!p}' "$0" >&2; exit 2; fi
TASK=$(echo "$1" | tr '[:lower:]' '[:upper:]' | tr -d -) MODEL=$2 DATA=$3 SAVE_DIR=$4; shift 4  # STS-B, sts-b: STSB

# Per-task defaults (DESIGN.md section 4, from the reference's scripts): task -> max_len, epochs base/large,
# lr base/large, batch, metric, fairseq task, word pooling, warm-up ratio (XNLI/PAWS-X: none, linear decay from
# the first update), validation every N updates (0: at the end of each epoch only; half: twice an epoch).
# GLUE: AMOS's table of best settings (microsoft/AMOS fairseq/README.md, base++; WARMUP 16 there = ratio 0.0625,
# 10 = 0.1; WNLI is not in it: RTE's), its full metric name (the dev set is subset en, MNLI's m and mm), and
# validation twice an epoch, as its run_glue.sh.
task_defaults() {
  case "$1" in
    XNLI)  echo "256 10 10 7e-6 5e-6 32 acc xtreme_sentence - 0 5000" ;;
    PAWSX) echo "256 10 10 1e-5 1e-5 32 acc xtreme_sentence - 0 1000" ;;
    UDPOS) echo "128 10 10 2e-5 5e-6 32 f1 xtreme_tagging sum 0.1 500" ;;
    PANX)  echo "128 10 10 1e-5 7e-6 32 f1 xtreme_tagging first 0.1 1000" ;;
    XQUAD|MLQA|SQUAD) echo "384 4 4 3e-5 1.5e-5 32 f1 xtreme_qa - 0.1 0" ;;
    TYDIQA) echo "384 20 10 3e-5 1.5e-5 32 f1 xtreme_qa - 0.1 0" ;;
    MNLI)  echo "512 3 3 1e-5 1e-5 32 acc_m glue - 0.0625 half" ;;
    QQP)   echo "512 5 5 2e-5 2e-5 32 acc_en glue - 0.0625 half" ;;
    QNLI)  echo "512 3 3 2e-5 2e-5 32 acc_en glue - 0.0625 half" ;;
    SST2)  echo "512 5 5 1e-5 1e-5 32 acc_en glue - 0.0625 half" ;;
    COLA)  echo "512 10 10 2e-5 2e-5 32 mcc_en glue - 0.1 half" ;;
    RTE|WNLI) echo "512 5 5 4e-5 4e-5 32 acc_en glue - 0.1 half" ;;
    MRPC)  echo "512 10 10 4e-5 4e-5 32 acc_en glue - 0.0625 half" ;;
    STSB)  echo "512 10 10 4e-5 4e-5 16 pearson_spearman_en glue - 0.0625 half" ;;
    *) echo "run_xtreme.sh: unknown task '$1' (known: XNLI PAWSX UDPOS PANX XQUAD MLQA TYDIQA SQUAD, GLUE's COLA SST2 MRPC QQP STSB MNLI QNLI RTE WNLI)" >&2; return 1 ;;
  esac
}
# xTune recipe per task and setting (DESIGN.md section 4; lambda1 = 5 everywhere):
#   -> stage-1 view augmentation, its probability, stage-2 copy augmentation, stage-2 view augmentation, lambda2,
#      R2 on the teacher's distribution (soft) or its argmax (hard)
method_defaults() {
  case "$1/$2" in
    XNLI/cross-lingual-transfer)  echo "code_switch 0.3 code_switch code_switch 5.0 soft" ;;
    PAWSX/cross-lingual-transfer) echo "code_switch 0.5 code_switch code_switch 2.0 soft" ;;
    UDPOS/cross-lingual-transfer) echo "subword_sampling 0.5 subword_sampling subword_sampling 0.3 soft" ;;
    PANX/cross-lingual-transfer)  echo "subword_sampling 0.3 subword_sampling subword_sampling 5.0 hard" ;;
    XNLI/translate-train-all)     echo "translation - translation translation 1.0 soft" ;;
    PAWSX/translate-train-all)    echo "translation - translation translation 1.0 soft" ;;
    UDPOS/translate-train-all)    echo "subword_sampling 0.5 translation subword_sampling 0.3 soft" ;;
    PANX/translate-train-all)     echo "subword_sampling 0.3 translation subword_sampling 1.0 hard" ;;
    XQUAD/cross-lingual-transfer|MLQA/cross-lingual-transfer|SQUAD/cross-lingual-transfer)
                                  echo "code_switch 0.3 subword_sampling subword_sampling 5.0 soft" ;;
    TYDIQA/cross-lingual-transfer) echo "subword_sampling 0.3 subword_sampling subword_sampling 5.0 soft" ;;
    XQUAD/translate-train-all|SQUAD/translate-train-all)
                                  echo "code_switch 0.3 translation subword_sampling 0.1 soft" ;;
    MLQA/translate-train-all)     echo "code_switch 0.3 translation subword_sampling 0.5 soft" ;;
    TYDIQA/translate-train-all)   echo "subword_sampling 0.3 translation subword_sampling 0.3 soft" ;;
    *) echo "run_xtreme.sh: unknown SETTING '$2' (cross-lingual-transfer or translate-train-all)" >&2; return 1 ;;
  esac
}
read -r MAX_LEN EPOCHS_BASE EPOCHS_LARGE LR_BASE LR_LARGE DEF_BATCH METRIC FAIRSEQ_TASK POOLING DEF_WARMUP DEF_VALIDATE \
  < <(task_defaults "$TASK") || exit 2

SEED=1 LR= EPOCHS= MAX_UPDATE= BSZ= UPDATE_FREQ=1 NPROC= SELECT=avg ARCH= VALID_LANGS=
FREEZE_EMBEDDINGS=0 SAVE_INTERVAL_UPDATES=0 WARMUP_RATIO=$DEF_WARMUP VALIDATE_INTERVAL_UPDATES=$DEF_VALIDATE DRY_RUN=0
TENSORBOARD= WANDB=
PROGRESS=$([ -t 1 ] && echo 1 || echo 0)
STAGE=0 SETTING=cross-lingual-transfer DICT_DIR= DICT_LANGS= TEACHER= R1_LAMBDA=5 R2_LAMBDA=
OPTIM= REG=none RDROP_ALPHA=1.0 R3F_LAMBDA=1.0 R3F_EPS=1e-5 R3F_NOISE=uniform
DISTILL= KD_T=10 KD_ALPHA=0.5 PKD_MU=0 PKD_LAYERS=skip CON_WEIGHT=0 CON_T=0.07 BANK=
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; EXTRA=("$@"); break ;;
    SEED=*|LR=*|EPOCHS=*|MAX_UPDATE=*|BSZ=*|UPDATE_FREQ=*|NPROC=*|SELECT=*|ARCH=*|VALID_LANGS=*|FREEZE_EMBEDDINGS=*|SAVE_INTERVAL_UPDATES=*|WARMUP_RATIO=*|VALIDATE_INTERVAL_UPDATES=*|DRY_RUN=*|PROGRESS=*|STAGE=*|SETTING=*|DICT_DIR=*|DICT_LANGS=*|TEACHER=*|R1_LAMBDA=*|R2_LAMBDA=*|TENSORBOARD=*|WANDB=*|OPTIM=*|REG=*|RDROP_ALPHA=*|R3F_LAMBDA=*|R3F_EPS=*|R3F_NOISE=*|DISTILL=*|KD_T=*|KD_ALPHA=*|PKD_MU=*|PKD_LAYERS=*|CON_WEIGHT=*|CON_T=*|BANK=*)
      declare "$1" ;;
    *) echo "run_xtreme.sh: unknown setting '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done

# A preemption signal before training starts: nothing to save (exit status 75, as below).
stopped_early() { echo "run_xtreme.sh: stopped by SIG$1 before training started; re-run the same command to start" >&2; exit 75; }
trap 'stopped_early TERM' TERM; trap 'stopped_early USR1' USR1
if [ -n "$WANDB" ] && ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('wandb') is None)"; then
  echo "run_xtreme.sh: WANDB=$WANDB needs the wandb package, which is not installed ($PY -m pip install wandb)" >&2; exit 2
fi
[ -e "$MODEL" ] || { echo "run_xtreme.sh: pretrained model '$MODEL' not found" >&2; exit 2; }
[ -f "$DATA/metadata.json" ] || { echo "run_xtreme.sh: '$DATA' has no metadata.json (run preprocess/xtreme/process.sh or preprocess/glue/process.sh first)" >&2; exit 2; }
case "$SELECT" in avg|en) ;; *) echo "run_xtreme.sh: SELECT must be avg or en" >&2; exit 2 ;; esac
if [ -n "$DISTILL" ] && [ "$STAGE" = 2 ]; then
  echo "run_xtreme.sh: DISTILL= with STAGE=2: stage 2's teacher is the stage-1 model; distil with STAGE=0 or 1" >&2; exit 2
fi
if [ "$FAIRSEQ_TASK" = glue ]; then  # a GLUE folder of another task would train with this task's settings and metric
  HELD=$("$PY" -c "import json, sys; m = json.load(open(sys.argv[1])); print(m.get('task') if m.get('kind') == 'glue' else m.get('kind'))" "$DATA/metadata.json")
  [ "$HELD" = "$(echo "$TASK" | tr '[:upper:]' '[:lower:]')" ] || {
    echo "run_xtreme.sh: $DATA holds $HELD data, not GLUE's $TASK (give the task's folder, e.g. <out>/$TASK)" >&2; exit 2; }
fi
if [ "$FAIRSEQ_TASK" = glue ]; then SELECT=task  # GLUE: the task's own metric (the table above)
elif [ "$SELECT" = en ] && ! grep -q '"valid_en"' "$DATA/metadata.json"; then
  echo "run_xtreme.sh: SELECT=en needs an English dev set, and $DATA has no valid_en (dev-en.tsv)" >&2; exit 2
fi
ARCH_ARGS=()
if [ -z "$ARCH" ]; then  # the architecture of model.pt and the GPU count, from one Python process without fairseq
  INSPECTED=$("$PY" "$ROOT/stabletune_fairseq/release.py" "$MODEL" "$DATA/dict.txt" 2>"${TMPDIR:-/tmp}/inspect.$$") || {
    grep "^error: " "${TMPDIR:-/tmp}/inspect.$$" >&2; rm -f "${TMPDIR:-/tmp}/inspect.$$"
    echo "run_xtreme.sh: cannot read the architecture of $MODEL (see above; or set ARCH=)" >&2; exit 2; }
  rm -f "${TMPDIR:-/tmp}/inspect.$$"; read -r ARCH NGPU LAYERS POSITIONS < <(echo "$INSPECTED" | tail -1)
  # A student of fewer layers (stabletune-convert shrink): the architecture of its hidden size, with its own depth.
  DEFAULT_LAYERS=$(case "$ARCH" in *large*) echo 24 ;; *) echo 12 ;; esac)
  [ "$LAYERS" = "$DEFAULT_LAYERS" ] || ARCH_ARGS=(--encoder-layers "$LAYERS")
  # A longer position table (stabletune-convert extend-positions): the model is built with it (docs/long-context.md).
  [ -z "$POSITIONS" ] || ARCH_ARGS+=(--max-positions "$POSITIONS")
else
  NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
fi
[ -z "$DISTILL" ] || [ -n "$LR" ] || LR=5e-5  # the BERT distillation recipes' (Patient KD: {1e-5, 2e-5, 5e-5})
case "$ARCH" in *large*) [ -n "$LR" ] || LR=$LR_LARGE; [ -n "$EPOCHS" ] || EPOCHS=$EPOCHS_LARGE ;;
                *) [ -n "$LR" ] || LR=$LR_BASE; [ -n "$EPOCHS" ] || EPOCHS=$EPOCHS_BASE ;; esac

if [ "$NGPU" -gt 0 ]; then
  # fairseq's own multi-GPU training (nccl, one process per GPU); NPROC= limits the GPUs used.
  WORLD=${NPROC:-$NGPU}
  DEVICE_ARGS=(--fp16 --num-workers 2)
  [ "$WORLD" -le 1 ] || DEVICE_ARGS+=(--distributed-world-size "$WORLD")
else
  WORLD=${NPROC:-1}
  echo "run_xtreme.sh: no GPU found: training on CPU in fp32 (--fp16 needs CUDA)"
  source "$ROOT/run_scripts/cpu_malloc.sh"
  DEVICE_ARGS=(--cpu --num-workers 0)
  if [ "$WORLD" -gt 1 ]; then
    # CPU ranks: one process per rank, gloo, legacy_ddp (DESIGN.md section 2); threads shared out.
    PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    DEVICE_ARGS+=(--distributed-world-size "$WORLD" --distributed-init-method "tcp://127.0.0.1:$PORT"
      --distributed-no-spawn --ddp-backend legacy_ddp --distributed-backend gloo)
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / WORLD > 0 ? $(nproc) / WORLD : 1 ))}
  fi
fi
# The reference batch (32) is the effective batch: split it over the processes unless BSZ is given.
[ -n "$BSZ" ] || BSZ=$(( DEF_BATCH / (WORLD * UPDATE_FREQ) > 0 ? DEF_BATCH / (WORLD * UPDATE_FREQ) : 1 ))

"$PY" -c "
import json, sys
if 'train' not in json.load(open(sys.argv[1]))['splits']:
    sys.exit('run_xtreme.sh: ' + sys.argv[1] + ' has no training split (prepared for evaluation only)')" "$DATA/metadata.json" || exit 2
# Without a labelled dev set (TyDiQA-GoldP: XTREME ships its dev answers blanked) there is no validation:
# the last checkpoint is the result, and stage 2's teacher.
SELECTED=$([ "$SELECT" = task ] && echo "$METRIC" || echo "${METRIC}_${SELECT}")
VALID_ARGS=(--valid-subset valid --best-checkpoint-metric "$SELECTED" --maximize-best-checkpoint-metric)
BEST=checkpoint_best.pt
if ! grep -q '"valid_' "$DATA/metadata.json"; then
  echo "run_xtreme.sh: $DATA has no labelled dev set: validation off, the last checkpoint is the result"
  VALID_ARGS=(--disable-validation); BEST=checkpoint_last.pt; VALIDATE_INTERVAL_UPDATES=0
elif [ "$SELECT" = task ]; then
  # MNLI: the mismatched dev set's best checkpoint too (AMOS reports both).
  [ "$METRIC" != acc_m ] || VALID_ARGS+=(--extra-best-metrics acc_mm)
else
  # The other selection rule is kept too (checkpoint_best_<metric>_<avg|en>.pt), for reports that compare them.
  OTHER=$([ "$SELECT" = avg ] && echo en || echo avg)
  if [ "$OTHER" = avg ] || grep -q '"valid_en"' "$DATA/metadata.json"; then
    VALID_ARGS+=(--extra-best-metrics "${METRIC}_${OTHER}")
  fi
fi
# Validation (and the best checkpoint) every N updates as well as at each epoch's end, as the reference evaluates
# ("half": twice an epoch, set once the epoch's updates are counted, below).
if [ "$VALIDATE_INTERVAL_UPDATES" != 0 ] && [ "$VALIDATE_INTERVAL_UPDATES" != half ]; then
  VALID_ARGS+=(--validate-interval-updates "$VALIDATE_INTERVAL_UPDATES")
  [ "$SAVE_INTERVAL_UPDATES" != 0 ] || SAVE_INTERVAL_UPDATES=$VALIDATE_INTERVAL_UPDATES
fi
STOP_ARGS=(--max-epoch "$EPOCHS")
[ -z "$MAX_UPDATE" ] || STOP_ARGS+=(--max-update "$MAX_UPDATE")
OPTIONAL_ARGS=()
[ "$FREEZE_EMBEDDINGS" = 0 ] || OPTIONAL_ARGS+=(--freeze-embeddings)
[ -z "$VALID_LANGS" ] || OPTIONAL_ARGS+=(--valid-languages "$VALID_LANGS")
[ "$POOLING" = - ] || OPTIONAL_ARGS+=(--pooling "$POOLING")
[ -z "$TENSORBOARD" ] || OPTIONAL_ARGS+=(--tensorboard-logdir "$TENSORBOARD")
[ -z "$WANDB" ] || OPTIONAL_ARGS+=(--wandb-project "$WANDB")

# Consistency training: the stage's augmentations, lambdas and teacher.
RUN_DIR=$SAVE_DIR
augmentation_args() {  # kind -> the task options it needs
  case "$1" in
    code_switch)
      [ -n "$DICT_DIR" ] || { echo "run_xtreme.sh: code-switching needs DICT_DIR= (folder of MUSE en-<lang>.txt)" >&2; return 1; }
      if [ -z "$DICT_LANGS" ]; then
        DICT_LANGS=$("$PY" -c "
import json, os, sys
meta = json.load(open(sys.argv[1]))
langs = sorted({s['language'] for n, s in meta['splits'].items() if n.startswith('valid_')} - {'en'})
print(','.join(l for l in langs if os.path.isfile(os.path.join(sys.argv[2], f'en-{l}.txt'))))" "$DATA/metadata.json" "$DICT_DIR")
        [ -n "$DICT_LANGS" ] || { echo "run_xtreme.sh: no en-<lang>.txt in $DICT_DIR for the dev languages; set DICT_LANGS=" >&2; return 1; }
      fi
      echo "--dict-dir $DICT_DIR --dict-langs $DICT_LANGS --code-switch-prob $AUG_PROB" ;;
    subword_sampling) echo "--subword-sampling-prob $AUG_PROB" ;;
    translation)
      "$PY" -c "import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get('translations') else 1)" "$DATA/metadata.json" || {
        echo "run_xtreme.sh: SETTING=translate-train-all needs translations: run process.sh with TRANSLATIONS=<xtreme_translations>" >&2; return 1; } ;;
  esac
}
# Stability regularisers of plain fine-tuning (docs/glue.md): R1 with a view that keeps the row's tokens, in the
# references' form (the KL's gradient through both sides). R-Drop's loss, CE(pass 1) + CE(pass 2) + alpha/2 *
# (KL(p1||p2) + KL(p2||p1)), is twice our mean task loss over both passes + alpha/4 * R1 (Adam does not see the
# factor 2); its regression loss, MSE(pass 1) + alpha * (p1 - p2)^2, is ours with lambda = alpha. R3F's, CE + lambda *
# (KL + KL) on uniform noise added to the detached embeddings, is ours with lambda as it is.
REGRESSION=$("$PY" -c "import json,sys; print(int(bool(json.load(open(sys.argv[1])).get('regression'))))" "$DATA/metadata.json")
case "$REG" in
  none) ;;
  rdrop|r3f)
    [ "$STAGE" = 0 ] || { echo "run_xtreme.sh: REG=$REG is a regulariser of plain fine-tuning (STAGE=0), not of xTune's stages" >&2; exit 2; }
    if [ "$REG" = rdrop ] && [ "$REGRESSION" = 1 ]; then
      OPTIONAL_ARGS+=(--view-augmentation dropout --r1-full-gradient --r1-lambda "$RDROP_ALPHA")
    elif [ "$REG" = rdrop ]; then
      OPTIONAL_ARGS+=(--view-augmentation dropout --r1-full-gradient --task-loss-on-views
        --r1-lambda "$("$PY" -c "print(float('$RDROP_ALPHA') / 4)")")
    else
      OPTIONAL_ARGS+=(--view-augmentation noise --noise-type "$R3F_NOISE" --noise-std "$R3F_EPS" --noise-detached
        --r1-full-gradient --r1-lambda "$R3F_LAMBDA")
    fi ;;
  *) echo "run_xtreme.sh: REG must be none, rdrop or r3f (got '$REG')" >&2; exit 2 ;;
esac
if [ "$STAGE" != 0 ] && [ "$FAIRSEQ_TASK" = glue ]; then
  echo "run_xtreme.sh: xTune's stages are for XTREME's cross-lingual tasks; GLUE takes STAGE=0 (with REG= for a regulariser)" >&2; exit 2
fi
if [ "$STAGE" != 0 ]; then
  read -r VIEW1 AUG_PROB COPY2 VIEW2 DEF_R2 R2_KIND < <(method_defaults "$TASK" "$SETTING") || exit 2
  N_CLASSES=$("$PY" -c "import json,sys; print(len(json.load(open(sys.argv[1]))['labels']))" "$DATA/metadata.json")
  # QA: the KL is over a window's positions, not classes; the reference lambdas are passed on as they are.
  [ "$FAIRSEQ_TASK" != xtreme_qa ] || N_CLASSES=1
  per_class() { "$PY" -c "print(float('$1') / $N_CLASSES)"; }
  case "$STAGE" in
    1) VIEW=$VIEW1; AUG_ARGS=$(augmentation_args "$VIEW") || exit 2
       OPTIONAL_ARGS+=(--view-augmentation "$VIEW" $AUG_ARGS --r1-lambda "$(per_class "$R1_LAMBDA")") ;;
    2) # The reference's QA recipes take the last stage-1 model as teacher; the others its best checkpoint.
       [ "$FAIRSEQ_TASK" != xtreme_qa ] || BEST=checkpoint_last.pt
       TEACHER=${TEACHER:-$SAVE_DIR/$BEST}
       [ -e "$TEACHER" ] || { echo "run_xtreme.sh: stage 2 needs the stage-1 teacher, and $TEACHER does not exist (run STAGE=1 first, or set TEACHER=)" >&2; exit 2; }
       RUN_DIR=$SAVE_DIR/stage2
       AUG_ARGS=$(augmentation_args "$VIEW2") || exit 2
       OPTIONAL_ARGS+=(--copy-augmentation "$COPY2" --view-augmentation "$VIEW2" $AUG_ARGS
         --r1-lambda "$(per_class "$R1_LAMBDA")" --teacher "$TEACHER")
       [ "$COPY2" != translation ] || augmentation_args translation >/dev/null || exit 2
       # Hard labels make R2 a cross-entropy per unit, not a KL averaged over classes: no conversion.
       if [ "$R2_KIND" = hard ]; then OPTIONAL_ARGS+=(--r2-lambda "${R2_LAMBDA:-$DEF_R2}" --r2-hard-labels)
       else OPTIONAL_ARGS+=(--r2-lambda "$(per_class "${R2_LAMBDA:-$DEF_R2}")"); fi ;;
    *) echo "run_xtreme.sh: STAGE must be 0, 1 or 2" >&2; exit 2 ;;
  esac
fi

# Distillation from a fine-tuned teacher (criterions/stability_distillation.py).
CRITERION=stability_consistency
if [ -n "$DISTILL" ]; then
  [ -e "$DISTILL" ] || { echo "run_xtreme.sh: DISTILL=$DISTILL: no such teacher checkpoint" >&2; exit 2; }
  [ -z "$BANK" ] || [ -f "$BANK/bank.json" ] || { echo "run_xtreme.sh: BANK=$BANK has no bank.json (write it with stabletune-teacher-bank)" >&2; exit 2; }
  CRITERION=stability_distillation
  OPTIONAL_ARGS+=(--teacher "$DISTILL" --kd-alpha "$KD_ALPHA" --kd-temperature "$KD_T" --pkd-mu "$PKD_MU"
    --pkd-layers "$PKD_LAYERS" --contrastive-weight "$CON_WEIGHT" --contrastive-temperature "$CON_T")
  [ -z "$BANK" ] || OPTIONAL_ARGS+=(--teacher-bank "$BANK")
fi

# Optimiser: xTune's AdamW (no weight decay, clip 1.0), or AMOS's (betas 0.9/0.98, eps 1e-6, weight decay 0.01, no
# clipping): GLUE's default, and run_squad.sh's.
[ -n "$OPTIM" ] || OPTIM=$([ "$FAIRSEQ_TASK" = glue ] && echo amos || echo xtune)
case "$OPTIM" in
  amos)  OPTIMIZER_ARGS=(--adam-betas "(0.9,0.98)" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 0.0) ;;
  xtune) OPTIMIZER_ARGS=(--adam-betas "(0.9,0.999)" --adam-eps 1e-8 --weight-decay 0.0 --clip-norm 1.0) ;;
  *) echo "run_xtreme.sh: OPTIM must be xtune or amos (got '$OPTIM')" >&2; exit 2 ;;
esac
# W&B: offline (wandb sync uploads later) unless WANDB_MODE says otherwise; its files with the run's.
[ -z "$WANDB" ] || export WANDB_MODE=${WANDB_MODE:-offline} WANDB_DIR=${WANDB_DIR:-$RUN_DIR}
TRAIN_ARGS=("$DATA"
  --user-dir "$ROOT/stabletune_fairseq"
  --task "$FAIRSEQ_TASK" --arch "$ARCH" "${ARCH_ARGS[@]}" --criterion "$CRITERION"
  --pretrained-encoder "$MODEL" "${OPTIONAL_ARGS[@]}"
  --batch-size "$BSZ" --update-freq "$UPDATE_FREQ" --seed "$SEED"
  --optimizer fused_adamw "${OPTIMIZER_ARGS[@]}"
  --lr "$LR" --lr-scheduler polynomial_decay --end-learning-rate 0.0 "${STOP_ARGS[@]}"
  "${VALID_ARGS[@]}"
  --save-dir "$RUN_DIR" --no-epoch-checkpoints
  --log-format simple --log-interval 10 "${DEVICE_ARGS[@]}" "${EXTRA[@]}")
# One run per save dir: refuse a dir in use before touching it (fairseq-train takes the lock, in its first rank).
[ "$DRY_RUN" != 0 ] || "$PY" "$ROOT/stabletune_fairseq/reliability/save_dir_lock.py" "$RUN_DIR" || exit 2
# The schedule is sized from the dataset this run trains on (stage 2: rows and their copies; QA: windows),
# batched as fairseq will batch it.
COUNT=$("$PY" -m stabletune_fairseq.cli.count_updates "${TRAIN_ARGS[@]}" --total-num-update 1) || {
  echo "run_xtreme.sh: cannot count the training batches of $DATA (see above)" >&2; exit 2; }
read -r N_TRAIN PER_EPOCH TOTAL < <(echo "$COUNT" | sed -E 's/rows=([0-9]+) per_epoch=([0-9,]+) total=([0-9]+)/\1 \2 \3/')
WARMUP=$("$PY" -c "print(int($TOTAL * $WARMUP_RATIO))")
CMD=("$BIN/fairseq-train" "${TRAIN_ARGS[@]}" --total-num-update "$TOTAL" --warmup-updates "$WARMUP")
if [ "$VALIDATE_INTERVAL_UPDATES" = half ] && [ "${VALID_ARGS[0]}" != --disable-validation ]; then
  HALF=$(( ${PER_EPOCH%%,*} / 2 > 0 ? ${PER_EPOCH%%,*} / 2 : 1 ))
  [ "$SAVE_INTERVAL_UPDATES" != 0 ] || SAVE_INTERVAL_UPDATES=$HALF
  CMD+=(--validate-interval-updates "$HALF")
fi
CMD+=(--save-interval-updates "$SAVE_INTERVAL_UPDATES")
# Interval checkpoints: keep the newest two, so a sound one remains if the newest copy is damaged by a crash.
[ "$SAVE_INTERVAL_UPDATES" = 0 ] || CMD+=(--keep-interval-updates 2)

echo "run_xtreme.sh: $TASK stage $STAGE ($SETTING) on $N_TRAIN training rows, $PER_EPOCH updates per epoch, $TOTAL updates (warm-up $WARMUP), effective batch $(( BSZ * UPDATE_FREQ * WORLD )), checkpoint selection by $SELECTED"
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

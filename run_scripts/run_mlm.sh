#!/usr/bin/env bash
# Continued masked-LM training of an XLM-R-style encoder (e.g. one made longer by stabletune-convert
# extend-positions) on blocks written by `process.sh <text-folder> mlm` (docs/long-context.md).
#
#   bash run_scripts/run_mlm.sh <model.pt> <data_dir> <save_dir> [KEY=VALUE ...] [-- fairseq args]
#
# <model.pt>: official-format release (its LM head, encoder.lm_head.*, is loaded when present; otherwise a new one is
# tied to the token embeddings). <data_dir>: <out>/mlm. Re-running the same command resumes from <save_dir>.
# Settings (defaults after the Longformer conversion recipe: 3000 updates, lr 3e-5, 500 warm-up, 64 blocks a batch):
#   MAX_UPDATE=3000 LR=3e-5 WARMUP=500 BSZ=8 (per process) UPDATE_FREQ=8 SEED=1 MASK_PROB=0.15
#   MAX_POSITIONS= (default: the positions of model.pt; must equal them)  ARCH= (default: read from model.pt)
#   VALIDATE_INTERVAL_UPDATES=500 (validation loss on the fixed-mask held-out blocks; the best is kept)
#   FREEZE_EMBEDDINGS=0|1 (also freezes the tied output projection)  DRY_RUN=0|1 (print the command only)
# Optimiser: RoBERTa's AdamW (betas 0.9/0.98, eps 1e-6, weight decay 0.01, no clipping), linear decay to 0.
# Logged: loss = cross-entropy in bits per masked token, ppl = 2^loss (criterions/masked_lm.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
BIN=$(dirname "$PY")
if [ $# -lt 3 ]; then sed -n '2,/^set -euo/{/^set -euo/!p}' "$0" >&2; exit 2; fi
MODEL=$1 DATA=$2 SAVE_DIR=$3; shift 3

MAX_UPDATE=3000 LR=3e-5 WARMUP=500 BSZ=8 UPDATE_FREQ=8 SEED=1 MASK_PROB=0.15 MAX_POSITIONS= ARCH=
VALIDATE_INTERVAL_UPDATES=500 FREEZE_EMBEDDINGS=0 DRY_RUN=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; EXTRA=("$@"); break ;;
    MAX_UPDATE=*|LR=*|WARMUP=*|BSZ=*|UPDATE_FREQ=*|SEED=*|MASK_PROB=*|MAX_POSITIONS=*|ARCH=*|VALIDATE_INTERVAL_UPDATES=*|FREEZE_EMBEDDINGS=*|DRY_RUN=*)
      declare "$1" ;;
    *) echo "run_mlm.sh: unknown setting '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
[ -e "$MODEL" ] || { echo "run_mlm.sh: pretrained model '$MODEL' not found" >&2; exit 2; }
read -r KIND DATA_LEN HAS_VALID < <("$PY" -c "
import json, sys
m = json.load(open(sys.argv[1]))
print(m.get('kind'), m.get('max_positions'), int('valid' in m.get('splits', {})))" "$DATA/metadata.json" 2>/dev/null) || {
  echo "run_mlm.sh: '$DATA' has no readable metadata.json (run preprocess/xtreme/process.sh <text-folder> mlm first)" >&2; exit 2; }
[ "$KIND" = mlm ] || { echo "run_mlm.sh: $DATA holds $KIND data, not text for masked-LM training (process.sh <text-folder> mlm)" >&2; exit 2; }

# Architecture, layers, GPUs and positions (release.py: torch only, no fairseq import).
ARCH_ARGS=()
INSPECTED=$("$PY" "$ROOT/stabletune_fairseq/release.py" "$MODEL" "$DATA/dict.txt") || {
  echo "run_mlm.sh: cannot read the architecture of $MODEL (see above)" >&2; exit 2; }
read -r FOUND_ARCH NGPU LAYERS POSITIONS < <(echo "$INSPECTED" | tail -1)
POSITIONS=${POSITIONS:-512}  # release.py names the positions only when they are not XLM-R's 512
if [ -z "$ARCH" ]; then
  ARCH=$FOUND_ARCH
  DEFAULT_LAYERS=$(case "$ARCH" in *large*) echo 24 ;; *) echo 12 ;; esac)
  [ "$LAYERS" = "$DEFAULT_LAYERS" ] || ARCH_ARGS=(--encoder-layers "$LAYERS")
fi
MAX_POSITIONS=${MAX_POSITIONS:-$POSITIONS}
if [ "$MAX_POSITIONS" != "$POSITIONS" ]; then
  echo "run_mlm.sh: MAX_POSITIONS=$MAX_POSITIONS, but $MODEL has $POSITIONS positions (make it longer first: stabletune-convert extend-positions)" >&2; exit 2
fi
if [ "$DATA_LEN" -gt "$MAX_POSITIONS" ]; then
  echo "run_mlm.sh: $DATA holds blocks of $DATA_LEN tokens, more than the $MAX_POSITIONS positions of $MODEL" >&2; exit 2
fi

if [ "$NGPU" -gt 0 ]; then
  DEVICE_ARGS=(--fp16 --num-workers 2)
  [ "$NGPU" -le 1 ] || DEVICE_ARGS+=(--distributed-world-size "$NGPU")
else
  echo "run_mlm.sh: no GPU found: training on CPU in fp32 (--fp16 needs CUDA)"
  source "$ROOT/run_scripts/cpu_malloc.sh"
  DEVICE_ARGS=(--cpu --num-workers 0)
fi
if [ "$HAS_VALID" = 1 ]; then
  VALID_ARGS=(--valid-subset valid --best-checkpoint-metric loss --validate-interval-updates "$VALIDATE_INTERVAL_UPDATES"
    --save-interval-updates "$VALIDATE_INTERVAL_UPDATES" --keep-interval-updates 2)
else
  echo "run_mlm.sh: $DATA has no held-out split (VALID_EVERY=0): validation off"
  VALID_ARGS=(--disable-validation)
fi
OPTIONAL_ARGS=()
[ "$FREEZE_EMBEDDINGS" = 0 ] || OPTIONAL_ARGS+=(--freeze-embeddings)
CMD=("$BIN/fairseq-train" "$DATA"
  --user-dir "$ROOT/stabletune_fairseq"
  --task stabletune_mlm --criterion stabletune_mlm --mask-prob "$MASK_PROB"
  --arch "$ARCH" "${ARCH_ARGS[@]}" --max-positions "$MAX_POSITIONS" --pretrained-encoder "$MODEL" "${OPTIONAL_ARGS[@]}"
  --batch-size "$BSZ" --update-freq "$UPDATE_FREQ" --seed "$SEED"
  --optimizer fused_adamw --adam-betas "(0.9,0.98)" --adam-eps 1e-6 --weight-decay 0.01 --clip-norm 0.0
  --lr "$LR" --lr-scheduler polynomial_decay --end-learning-rate 0.0 --warmup-updates "$WARMUP"
  --total-num-update "$MAX_UPDATE" --max-update "$MAX_UPDATE"
  "${VALID_ARGS[@]}" --save-dir "$SAVE_DIR" --no-epoch-checkpoints
  --log-format simple --log-interval 10 "${DEVICE_ARGS[@]}" "${EXTRA[@]}")
echo "run_mlm.sh: masked LM on $DATA (blocks of up to $DATA_LEN tokens), $MAX_UPDATE updates, effective batch $(( BSZ * UPDATE_FREQ * (NGPU > 1 ? NGPU : 1) )) blocks"
printf '%q ' "${CMD[@]}"; echo
[ "$DRY_RUN" = 0 ] || exit 0
"$PY" "$ROOT/stabletune_fairseq/reliability/save_dir_lock.py" "$SAVE_DIR" || exit 2
mkdir -p "$SAVE_DIR"
echo "run_mlm.sh: the full log is $SAVE_DIR/train.log"
"${CMD[@]}" 2>&1 | tee -a "$SAVE_DIR/train.log"
exit "${PIPESTATUS[0]}"

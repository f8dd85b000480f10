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
#   PRECISION=auto|fp32|bf16 (auto: bf16 on a CPU with bf16 instructions, else fp32; CPU bf16: autocast with float32
#     weights, docs/precision.md; GPU: --fp16 for auto and fp32, fairseq's --bf16 for bf16)
#   ATTENTION_WINDOW= (default: full attention): Longformer's sliding window of W tokens (even), no token global,
#   as Longformer continues MLM (evaluate alike: stabletune-mlm-eval --attention-window W)
# Optimiser: RoBERTa's AdamW (betas 0.9/0.98, eps 1e-6, weight decay 0.01, no clipping), linear decay to 0.
# Logged: loss = cross-entropy in bits per masked token, ppl = 2^loss (criterions/masked_lm.py).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
if [ $# -lt 3 ]; then sed -n '2,/^set -euo/{/^set -euo/!p}' "$0" >&2; exit 2; fi
SAVE_DIR=$3
# The command (defaults: stabletune_fairseq/recipes/defaults.py; checks: recipes/mlm.py).
source "$ROOT/run_scripts/recipe_plan.sh"
recipe_plan mlm "$@"
[ "$NGPU" != 0 ] || source "$ROOT/run_scripts/cpu_malloc.sh"
echo "$INFO"
printf '%q ' "${CMD[@]}"; echo
[ "$DRY_RUN" = 0 ] || exit 0
"$PY" "$ROOT/stabletune_fairseq/reliability/save_dir_lock.py" "$SAVE_DIR" || exit 2
mkdir -p "$SAVE_DIR"
echo "run_mlm.sh: the full log is $SAVE_DIR/train.log"
"${CMD[@]}" 2>&1 | tee -a "$SAVE_DIR/train.log"
exit "${PIPESTATUS[0]}"

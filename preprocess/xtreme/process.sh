#!/usr/bin/env bash
# Preprocess one XTREME task into fairseq binarised datasets.
#   bash preprocess/xtreme/process.sh <xtreme-download-dir> <task> <dict_dir> <out> [MAX_LEN=N] [TRANSLATIONS=dir]
# <task>: xnli | pawsx | udpos | panx. <dict_dir>: dict.txt + sentencepiece.bpe.model of the model (an XLM-R release,
# or the folder stabletune-convert wrote). Output: <out>/<task>/ (see README, "Data layout").
# TRANSLATIONS=<xtreme_translations dir> adds the translate-train files, paired with their English rows.
# <task> parallel: <xtreme-download-dir> is a folder of parallel <pair>.tsv files (docs/embeddings.md); VALID_PAIRS=N.
# <task> mlm: <xtreme-download-dir> is a folder of *.txt files (documents: blank-line-separated blocks) for continued
# masked-LM training (docs/long-context.md); MAX_LEN=512 VALID_EVERY=10 MIN_TOKENS=16 PACK=document|stream.
# MAX_LEN beyond the positions of <dict_dir>/model.pt (512 without one) is refused.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
if [ $# -lt 4 ]; then
  sed -n '2,10p' "$0" >&2; exit 2
fi
XTREME=$1 TASK=$2 DICT_DIR=$3 OUT=$4; shift 4
EXTRA=()
for kv in "$@"; do
  case "$kv" in
    MAX_LEN=*) EXTRA+=(--max-positions "${kv#MAX_LEN=}") ;;
    TRANSLATIONS=*) EXTRA+=(--translations "${kv#TRANSLATIONS=}") ;;
    MAX_QUERY=*) EXTRA+=(--max-query-length "${kv#MAX_QUERY=}") ;;
    DOC_STRIDE=*) EXTRA+=(--doc-stride "${kv#DOC_STRIDE=}") ;;
    VALID_PAIRS=*) EXTRA+=(--valid-pairs "${kv#VALID_PAIRS=}") ;;
    VALID_EVERY=*) EXTRA+=(--valid-every "${kv#VALID_EVERY=}") ;;
    MIN_TOKENS=*) EXTRA+=(--min-tokens "${kv#MIN_TOKENS=}") ;;
    PACK=*) EXTRA+=(--pack "${kv#PACK=}") ;;
    *) echo "process.sh: unknown setting '$kv' (known: MAX_LEN= TRANSLATIONS= MAX_QUERY= DOC_STRIDE= VALID_PAIRS= VALID_EVERY= MIN_TOKENS= PACK=)" >&2; exit 2 ;;
  esac
done
exec "$PY" -m stabletune_fairseq.cli.preprocess "$XTREME" "$TASK" "$DICT_DIR" "$OUT" "${EXTRA[@]}"

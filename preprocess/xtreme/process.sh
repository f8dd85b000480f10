#!/usr/bin/env bash
# Preprocess one XTREME task into fairseq binarised datasets.
#   bash preprocess/xtreme/process.sh <xtreme-download-dir> <task> <dict_dir> <out> [MAX_LEN=N] [TRANSLATIONS=dir]
# <task>: xnli | pawsx | udpos | panx. <dict_dir>: dict.txt + sentencepiece.bpe.model of the model (an XLM-R release,
# or the folder stabletune-convert wrote). Output: <out>/<task>/ (see README, "Data layout").
# TRANSLATIONS=<xtreme_translations dir> adds the translate-train files, paired with their English rows.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
if [ $# -lt 4 ]; then
  sed -n '2,5p' "$0" >&2; exit 2
fi
XTREME=$1 TASK=$2 DICT_DIR=$3 OUT=$4; shift 4
EXTRA=()
for kv in "$@"; do
  case "$kv" in
    MAX_LEN=*) EXTRA+=(--max-positions "${kv#MAX_LEN=}") ;;
    TRANSLATIONS=*) EXTRA+=(--translations "${kv#TRANSLATIONS=}") ;;
    MAX_QUERY=*) EXTRA+=(--max-query-length "${kv#MAX_QUERY=}") ;;
    DOC_STRIDE=*) EXTRA+=(--doc-stride "${kv#DOC_STRIDE=}") ;;
    *) echo "process.sh: unknown setting '$kv' (known: MAX_LEN= TRANSLATIONS= MAX_QUERY= DOC_STRIDE=)" >&2; exit 2 ;;
  esac
done
exec "$PY" -m stabletune_fairseq.cli.preprocess "$XTREME" "$TASK" "$DICT_DIR" "$OUT" "${EXTRA[@]}"

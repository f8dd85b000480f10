#!/usr/bin/env bash
# Preprocess SQuAD 2.0 (AMOS's fairseq layout) into the fairseq dataset folder of task `squad`.
#   bash preprocess/squad/process.sh <squad_data_folder> <dict_dir> [<out>] [MAX_LEN=384] [MAX_QUERY=64] [DOC_STRIDE=128]
# <squad_data_folder>: train-v2.0.json and dev-v2.0.json (or the v1.1 files), as AMOS's process.sh reads them.
# <dict_dir>: dict.txt + sentencepiece.bpe.model (or AMOS's sp.model). Output: <out>/squad/; <out> defaults to
# <squad_data_folder> (AMOS writes its processed data there too), so run_squad.sh takes either folder.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
if [ $# -lt 2 ]; then
  sed -n '2,6p' "$0" >&2; exit 2
fi
SQUAD=$1 DICT_DIR=$2; shift 2
ARGS=("$SQUAD" "$DICT_DIR")
if [ $# -gt 0 ] && [[ ! "$1" =~ ^[A-Z_]+= ]]; then ARGS+=("$1"); shift; fi
for kv in "$@"; do
  case "$kv" in
    MAX_LEN=*) ARGS+=(--max-positions "${kv#MAX_LEN=}") ;;
    MAX_QUERY=*) ARGS+=(--max-query-length "${kv#MAX_QUERY=}") ;;
    DOC_STRIDE=*) ARGS+=(--doc-stride "${kv#DOC_STRIDE=}") ;;
    *) echo "process.sh: unknown setting '$kv' (known: MAX_LEN= MAX_QUERY= DOC_STRIDE=)" >&2; exit 2 ;;
  esac
done
exec "$PY" -m stabletune_fairseq.cli.preprocess_squad "${ARGS[@]}"

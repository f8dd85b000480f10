#!/usr/bin/env bash
# Preprocess GLUE tasks into fairseq binarised datasets.
#   bash preprocess/glue/process.sh <glue_data> <TASK|ALL> <dict_dir> <out> [MAX_LEN=N] [DROP_MALFORMED=1]
# <glue_data>: the folder GLUE's download script writes (CoLA/, SST-2/, MRPC/, QQP/, STS-B/, MNLI/, QNLI/, RTE/, WNLI/).
# TASK: one of those names (any case, dash optional: sts-b, stsb) or ALL (every task folder present). <dict_dir>: dict.txt +
# sentencepiece.bpe.model (or sp.model). Output: <out>/<GLUE folder name>/. MAX_LEN (default 512): longer inputs cut, counted.
# DROP_MALFORMED=1: train/dev lines with a wrong number of columns or an empty text (QQP has some) are dropped and
# counted (printed, and metadata.json's malformed_dropped), as fairseq's GLUE preprocessing drops them; default: refused.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
[ $# -ge 4 ] || { sed -n '2,8p' "$0" >&2; exit 2; }
ARGS=("$1" "$2" "$3" "$4"); shift 4
for kv in "$@"; do  # KEY=VALUE settings
  case "$kv" in
    MAX_LEN=*) ARGS+=(--max-positions "${kv#MAX_LEN=}") ;;
    DROP_MALFORMED=1) ARGS+=(--drop-malformed) ;;
    DROP_MALFORMED=0) ;;
    *) echo "process.sh: unknown setting '$kv' (known: MAX_LEN=, DROP_MALFORMED=0|1)" >&2; exit 2 ;;
  esac
done
exec "$PY" -m stabletune_fairseq.cli.preprocess_glue "${ARGS[@]}"

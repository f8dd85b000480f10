#!/usr/bin/env bash
# Preprocess GLUE tasks into fairseq binarised datasets.
#   bash preprocess/glue/process.sh <glue_data> <TASK|ALL> <dict_dir> <out> [MAX_LEN=N]
# <glue_data>: the folder GLUE's download script writes (CoLA/, SST-2/, MRPC/, QQP/, STS-B/, MNLI/, QNLI/, RTE/, WNLI/).
# TASK: one of those names (any case, dash optional: sts-b, stsb) or ALL (every task folder present). <dict_dir>: dict.txt +
# sentencepiece.bpe.model (or sp.model). Output: <out>/<GLUE folder name>/. MAX_LEN (default 512): longer inputs cut, counted.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY="$ROOT/.venv/bin/python"; [ -x "$PY" ] || PY=python3
[ $# -ge 4 ] || { sed -n '2,6p' "$0" >&2; exit 2; }
ARGS=("$1" "$2" "$3" "$4"); shift 4
for kv in "$@"; do  # KEY=VALUE settings: only MAX_LEN
  [[ "$kv" == MAX_LEN=* ]] || { echo "process.sh: unknown setting '$kv' (known: MAX_LEN=)" >&2; exit 2; }
  ARGS+=(--max-positions "${kv#MAX_LEN=}")
done
exec "$PY" -m stabletune_fairseq.cli.preprocess_glue "${ARGS[@]}"

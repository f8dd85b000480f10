"""Preprocess SQuAD (2.0, or 1.1) from a folder of the official JSON files (what ``preprocess/squad/process.sh``
runs): the ``squad`` task folder ``preprocess/xtreme/process.sh <download> squad`` writes, from AMOS's layout."""

from __future__ import annotations

import argparse
import functools
import sys

from ..recipes.defaults import ROW_LENGTHS
from .console import log_to_stderr
from .preprocess import run_preparation

TASK = "squad"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stabletune-preprocess-squad", description=__doc__)
    parser.add_argument(
        "squad_dir", help="folder with train-v2.0.json and dev-v2.0.json (or train-v1.1.json, dev-v1.1.json)"
    )
    parser.add_argument("dict_dir", help="folder with the model's dict.txt and sentencepiece.bpe.model (or sp.model)")
    parser.add_argument(
        "out",
        nargs="?",
        default=None,
        help="output root; the task is written to <out>/squad/ (default: <squad_dir>, as AMOS writes "
        "its processed data beside the JSON files)",
    )
    parser.add_argument(
        "--max-positions", type=int, default=ROW_LENGTHS[TASK].tokens, help="tokens per window incl. special tokens"
    )
    parser.add_argument("--max-query-length", type=int, default=64, help="pieces kept of a question")
    parser.add_argument("--doc-stride", type=int, default=128, help="pieces between the starts of two windows")
    args = parser.parse_args(argv)
    log_to_stderr()
    from ..data.binarize.xtreme_qa import prepare_qa_task

    out = args.out if args.out is not None else args.squad_dir
    return run_preparation(
        functools.partial(
            prepare_qa_task,
            TASK,
            args.squad_dir,
            args.dict_dir,
            out,
            args.max_positions,
            max_query=args.max_query_length,
            stride=args.doc_stride,
            layout="squad",
        ),
        out,
        TASK,
    )


if __name__ == "__main__":
    sys.exit(main())

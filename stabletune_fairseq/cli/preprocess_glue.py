"""Preprocess GLUE tasks from a GLUE download folder (what ``preprocess/glue/process.sh`` runs)."""

from __future__ import annotations

import argparse
import functools
import sys

from ..data.errors import InputFormatError
from ..data.readers.glue_tsv import GLUE_TASKS, find_glue_tasks, glue_task
from ..recipes.defaults import ROW_LENGTHS
from .console import log_to_stderr
from .preprocess import bad_input, run_preparation

MIN_POSITIONS = 6  # <s> a </s></s> b </s> with a piece of each text


def task_name(name: str) -> str:
    """``ALL`` or a GLUE task in any spelling (``STS-B``, ``sts-b``, ``stsb``), for argparse."""
    if name.upper() == "ALL":
        return "ALL"
    try:
        return glue_task(name).folder
    except KeyError as err:
        raise argparse.ArgumentTypeError(err.args[0]) from None


def positions(text: str) -> int:
    value = int(text)
    if value < MIN_POSITIONS:
        raise argparse.ArgumentTypeError(
            f"{value}: at least {MIN_POSITIONS} (the special tokens and a piece of each text)"
        )
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stabletune-preprocess-glue", description=__doc__)
    parser.add_argument("glue_dir", help="GLUE download folder (holds CoLA/, SST-2/, MRPC/, ...)")
    parser.add_argument(
        "task",
        type=task_name,
        help=f"ALL (every task folder present) or one of {', '.join(t.folder for t in GLUE_TASKS.values())} (any case)",
    )
    parser.add_argument("dict_dir", help="folder with the model's dict.txt and sentencepiece.bpe.model (or sp.model)")
    parser.add_argument("out", help="output root; each task is written to <out>/<GLUE folder name>/")
    parser.add_argument(
        "--max-positions",
        type=positions,
        default=ROW_LENGTHS["glue"].tokens,
        help="tokens per example incl. special tokens; longer examples are cut and counted",
    )
    parser.add_argument(
        "--drop-malformed",
        action="store_true",
        help="leave out (and count) the train and dev files' lines with a wrong number of columns or "
        "an empty text, as fairseq's GLUE preprocessing does for QQP, instead of refusing them",
    )
    args = parser.parse_args(argv)
    log_to_stderr()
    from ..data.binarize.glue import prepare_glue_task

    try:
        tasks = find_glue_tasks(args.glue_dir, args.task)
    except InputFormatError as err:
        return bad_input(err)
    for task, folder in tasks:
        status = run_preparation(
            functools.partial(
                prepare_glue_task, task, folder, args.dict_dir, args.out, args.max_positions, args.drop_malformed
            ),
            args.out,
            task.folder,
        )
        if status:
            return status
    return 0


if __name__ == "__main__":
    sys.exit(main())

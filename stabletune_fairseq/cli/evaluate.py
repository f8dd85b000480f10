"""``stabletune-evaluate``: score a checkpoint on every language of a split, write results and predictions.

Writes to ``--out``: ``results.json``, ``results.md``, ``evaluate.log`` (the libraries' log; the console
shows progress and the table) and ``predictions/<split>-<lang>.tsv``, in input
order, also for test sets without labels: one predicted label per line for sentence tasks (GLUE:
``index<TAB>prediction`` under that header, and for a test split also GLUE's submission file, e.g. ``RTE.tsv``,
``MNLI-m.tsv``, in ``--out``), the input's
``word<TAB>tag`` format (blank line between sentences) for tagging tasks; for QA,
``predictions/<split>-<lang>.json`` in the SQuAD submission format (``{question id: answer text}``). SQuAD 2.0
(data with unanswerable questions): the answer is "" where the null score beats the best span by more than
``--null-threshold``; also ``predictions/<split>-<lang>.na_prob.json`` (``{question id: null score - best span
score}``, BERT's null odds) and the official v2.0 evaluation's keys in the results, with ``best_exact``/``best_f1``
and their thresholds found from those null odds (docs/squad2.md).
"""

from __future__ import annotations

import argparse
import os
import sys

from ..evaluation.task_evaluation import evaluate, markdown_table
from .console import add_precision_option, bad_input_as_one_line, quiet_logging


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="stabletune-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="fairseq checkpoint, e.g. <save_dir>/checkpoint_best.pt")
    parser.add_argument("--data", required=True, help="task folder written by process.sh, e.g. <out>/xnli")
    parser.add_argument("--split", choices=["valid", "test"], default="test")
    parser.add_argument("--out", required=True, help="folder for results.json, results.md and predictions/")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    add_precision_option(parser)
    parser.add_argument(
        "--null-threshold",
        type=float,
        default=0.0,
        help='SQuAD 2.0: answer "" when the null score beats the best span by more than this (BERT\'s '
        "--null_score_diff_threshold; e.g. best_f1_thresh of a dev evaluation)",
    )
    args = parser.parse_args(argv)
    quiet_logging(os.path.join(args.out, "evaluate.log"))
    results, status = bad_input_as_one_line(
        "stabletune-evaluate",
        evaluate,
        args.checkpoint,
        args.data,
        args.split,
        args.out,
        args.batch_size,
        args.cpu,
        args.null_threshold,
        args.precision,
        also=(FileNotFoundError, ValueError),
    )
    if status:
        return status
    print(markdown_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

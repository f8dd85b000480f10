"""Preprocess one XTREME task from a raw download folder (what ``preprocess/xtreme/process.sh`` runs)."""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys

from ..data.errors import InputFormatError
from ..reliability.disk_writes import is_disk_full, megabytes
from ..reliability.exit_status import BAD_INPUT, FAILED
from .console import log_to_stderr

SENTENCE_TASKS = ("xnli", "pawsx")
TAGGING_TASKS = ("udpos", "panx")
QA_TASKS = ("xquad", "mlqa", "tydiqa", "squad")
DEFAULT_MAX_POSITIONS = {"xnli": 256, "pawsx": 256, "udpos": 128, "panx": 128,
                         "xquad": 384, "mlqa": 384, "tydiqa": 384, "squad": 384}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stabletune-preprocess", description=__doc__)
    parser.add_argument("xtreme_dir", help="XTREME download folder (holds xnli/, pawsx/, ...)")
    parser.add_argument("task", choices=SENTENCE_TASKS + TAGGING_TASKS + QA_TASKS)
    parser.add_argument("dict_dir", help="folder with the model's dict.txt and sentencepiece.bpe.model")
    parser.add_argument("out", help="output root; the task is written to <out>/<task>/")
    parser.add_argument("--max-positions", type=int, default=None,
                        help="tokens per example incl. special tokens (default: the task's, DESIGN.md section 4)")
    parser.add_argument("--translations", default=None,
                        help="XTREME translations folder (holds <TASK>/translate-train/en-<lang>-translated.tsv), "
                             "for the translate-train-all setting")
    parser.add_argument("--max-query-length", type=int, default=64, help="QA: pieces kept of a question")
    parser.add_argument("--doc-stride", type=int, default=128, help="QA: pieces between the starts of two windows")
    args = parser.parse_args(argv)
    log_to_stderr()
    from ..data.binarize.xtreme_sentence import prepare_sentence_task
    from ..data.binarize.xtreme_qa import prepare_qa_task
    from ..data.binarize.xtreme_tagging import prepare_tagging_task

    prepare = prepare_tagging_task if args.task in TAGGING_TASKS else prepare_sentence_task
    if args.task in QA_TASKS:
        prepare = functools.partial(prepare_qa_task, max_query=args.max_query_length, stride=args.doc_stride)
    max_positions = args.max_positions or DEFAULT_MAX_POSITIONS[args.task]
    return run_preparation(functools.partial(prepare, args.task, args.xtreme_dir, args.dict_dir, args.out,
                                             max_positions, args.translations), args.out, args.task)


def bad_input(err: Exception) -> int:
    print(f"error: {err}", file=sys.stderr)
    return BAD_INPUT


def run_preparation(prepare, out_root: str, name: str) -> int:
    """``prepare()``, which writes ``<out_root>/<name>/``, and its exit status: bad input (``InputFormatError``, a
    missing file) is one error line and status 2; a full disk one line saying what was kept, status 1."""
    try:
        out = prepare()
    except (InputFormatError, FileNotFoundError) as err:
        return bad_input(err)
    except (OSError, RuntimeError) as err:  # fairseq's binariser reports a failed write as a RuntimeError
        if not is_disk_full(err):
            raise
        final = os.path.join(out_root, name)
        kept = f"the previous {final} is intact" if os.path.isdir(final) else f"nothing was written to {final}"
        print(f"error: no space left on the device of {out_root} while writing {name} "
              f"({megabytes(shutil.disk_usage(out_root).free)} free): {kept}", file=sys.stderr)
        return FAILED
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

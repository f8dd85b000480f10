"""Preprocess one XTREME task from a raw download folder (what ``preprocess/xtreme/process.sh`` runs)."""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys

from ..data.errors import InputFormatError
from ..recipes.defaults import ROW_LENGTHS
from ..reliability.disk_writes import is_disk_full, megabytes
from ..reliability.exit_status import BAD_INPUT, FAILED
from .console import log_to_stderr

SENTENCE_TASKS = ("xnli", "pawsx")
TAGGING_TASKS = ("udpos", "panx")
QA_TASKS = ("xquad", "mlqa", "tydiqa", "squad")
MLM_TASKS = ("mlm",)  # plain text for continued masked-LM training: <xtreme-download-dir> is then a text folder
PARALLEL = "parallel"  # parallel sentences for multilingual distillation: <folder> holds the <pair>.tsv files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="stabletune-preprocess", description=__doc__)
    parser.add_argument("xtreme_dir", help="XTREME download folder (holds xnli/, pawsx/, ...)")
    parser.add_argument("task", choices=SENTENCE_TASKS + TAGGING_TASKS + QA_TASKS + (PARALLEL,) + MLM_TASKS)
    parser.add_argument("dict_dir", help="folder with the model's dict.txt and sentencepiece.bpe.model")
    parser.add_argument("out", help="output root; the task is written to <out>/<task>/")
    parser.add_argument(
        "--max-positions",
        type=int,
        default=None,
        help="tokens per example incl. special tokens (default: the task's, from the reference's scripts)",
    )
    parser.add_argument(
        "--translations",
        default=None,
        help="XTREME translations folder (holds <TASK>/translate-train/en-<lang>-translated.tsv), "
        "for the translate-train-all setting",
    )
    parser.add_argument("--max-query-length", type=int, default=64, help="QA: pieces kept of a question")
    parser.add_argument("--doc-stride", type=int, default=128, help="QA: pieces between the starts of two windows")
    parser.add_argument(
        "--valid-pairs",
        type=int,
        default=1000,
        help="parallel: pairs held out for validation from the end of a file without a dev file "
        "(at most a tenth of its rows)",
    )
    parser.add_argument(
        "--valid-every",
        type=int,
        default=10,
        help="mlm: hold out every Nth document (0: none), unless the text folder has a valid/ folder",
    )
    parser.add_argument(
        "--min-tokens",
        type=int,
        default=16,
        help="mlm: shortest block kept; a shorter tail of a document (or stream) is dropped and counted",
    )
    parser.add_argument(
        "--pack",
        choices=("document", "stream"),
        default="document",
        help="mlm: blocks within a document, or over the stream of documents (RoBERTa's FULL-SENTENCES)",
    )
    args = parser.parse_args(argv)
    log_to_stderr()
    max_positions = args.max_positions or ROW_LENGTHS[args.task].tokens
    status = check_model_positions(args.dict_dir, max_positions)
    if status:
        return status
    if args.task in MLM_TASKS:
        from ..data.binarize.mlm_text import prepare_mlm_task

        return run_preparation(
            functools.partial(
                prepare_mlm_task,
                args.xtreme_dir,
                args.dict_dir,
                args.out,
                max_positions,
                args.valid_every,
                args.min_tokens,
                args.pack,
            ),
            args.out,
            args.task,
        )
    from ..data.binarize.xtreme_qa import prepare_qa_task
    from ..data.binarize.xtreme_sentence import prepare_sentence_task
    from ..data.binarize.xtreme_tagging import prepare_tagging_task

    prepare = prepare_tagging_task if args.task in TAGGING_TASKS else prepare_sentence_task
    if args.task in QA_TASKS:
        prepare = functools.partial(prepare_qa_task, max_query=args.max_query_length, stride=args.doc_stride)
    if args.task == PARALLEL:
        from ..data.binarize.parallel import prepare_parallel

        return run_preparation(
            functools.partial(
                prepare_parallel, args.xtreme_dir, args.dict_dir, args.out, max_positions, args.valid_pairs
            ),
            args.out,
            args.task,
        )
    return run_preparation(
        functools.partial(
            prepare, args.task, args.xtreme_dir, args.dict_dir, args.out, max_positions, args.translations
        ),
        args.out,
        args.task,
    )


def check_model_positions(model_dir: str, max_positions: int) -> int:
    """Exit status 2 when ``MAX_LEN`` exceeds the positions of the model in ``model_dir`` (its model.pt, else 512):
    such examples could never be read by that model."""
    from ..release import folder_positions
    from ..reliability.exit_status import BadInput

    try:
        positions, source = folder_positions(model_dir)
    except BadInput as err:
        return bad_input(err)
    if max_positions > positions:
        return bad_input(
            ValueError(
                f"MAX_LEN={max_positions} exceeds the {positions} positions of the model ({source}); "
                "make it longer first (stabletune-convert extend-positions) or lower MAX_LEN"
            )
        )
    return 0


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
        print(
            f"error: no space left on the device of {out_root} while writing {name} "
            f"({megabytes(shutil.disk_usage(out_root).free)} free): {kept}",
            file=sys.stderr,
        )
        return FAILED
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

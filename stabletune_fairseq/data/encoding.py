"""Text -> fairseq token ids with an XLM-R release's ``sentencepiece.bpe.model`` and ``dict.txt``.

Ids go through piece strings (sentencepiece id -> piece -> dictionary index), computed once as a lookup
table, so any dictionary works, not only one whose order happens to be sentencepiece's plus one.
Encoded texts keep their words recoverable: a word starts at every piece that begins with ``▁``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import sentencepiece as spm
from fairseq.data import Dictionary

from .errors import InputFormatError
from .words import word_groups, word_text

SENTENCEPIECE_NAMES = ("sentencepiece.bpe.model", "sp.model")  # an XLM-R release's name, AMOS's name


def model_files(dict_dir: str | Path) -> tuple[Path, Path]:
    """``dict.txt`` and the sentencepiece model of a model folder (under either of its names)."""
    dict_dir = Path(dict_dir)
    if not (dict_dir / "dict.txt").is_file():
        raise InputFormatError(dict_dir / "dict.txt", None, "file not found (the model's dictionary)")
    for name in SENTENCEPIECE_NAMES:
        if (dict_dir / name).is_file():
            return dict_dir / "dict.txt", dict_dir / name
    raise InputFormatError(dict_dir, None, f"no sentencepiece model: neither {' nor '.join(SENTENCEPIECE_NAMES)}")


def load_xlmr_dictionary(path: str) -> Dictionary:
    """fairseq's XLM-R dictionary: dict.txt plus the ``<mask>`` symbol RoBERTa appends."""
    dictionary = Dictionary.load(path)
    dictionary.add_symbol("<mask>")
    return dictionary


class PieceEncoder:
    def __init__(self, sentencepiece_model: str, dictionary: Dictionary):
        if not os.path.isfile(sentencepiece_model):
            raise FileNotFoundError(f"sentencepiece model not found: {sentencepiece_model}")
        self.sentencepiece_model = sentencepiece_model
        self.sp = spm.SentencePieceProcessor(model_file=sentencepiece_model)
        self.dictionary = dictionary
        pieces = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        self.id_table = np.array([dictionary.index(p) for p in pieces], dtype=np.int64)
        self.id_table[self.sp.unk_id()] = dictionary.unk()
        self.unk = dictionary.unk()

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """Dictionary ids of each text's pieces, without ``<s>``/``</s>``."""
        return [self.id_table[np.asarray(ids, dtype=np.int64)] for ids in self.sp.encode(list(texts))]

    def words(self, ids) -> list[str]:
        """The (normalised) words of an encoded text."""
        return [w for w in (word_text(g, self.dictionary) for g in word_groups(ids, self.dictionary)) if w]

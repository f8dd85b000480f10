"""Reader for XTREME sentence-pair files (XNLI, PAWS-X): ``text_a \\t text_b [\\t label]`` per line.

Training and dev files must carry a label; test files may come without one (as XTREME ships XNLI's),
in which case every row has label ``-1`` and is kept for prediction.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import InputFormatError
from .text_lines import read_lines

UNLABELLED = -1


@dataclass
class SentencePairs:
    path: str
    text_a: list[str]
    text_b: list[str]
    labels: list[int]  # index into the task's label list, UNLABELLED when the file has no labels
    line_numbers: list[int]

    @property
    def labelled(self) -> bool:
        return bool(self.labels) and self.labels[0] != UNLABELLED

    def __len__(self) -> int:
        return len(self.labels)


def read_sentence_pairs(path: str | Path, label_list: list[str], labels_required: bool) -> SentencePairs:
    index = {label: i for i, label in enumerate(label_list)}
    pairs = SentencePairs(str(path), [], [], [], [])
    columns = None
    for number, line in read_lines(path):
        if not line.strip():
            raise InputFormatError(path, number, "empty line")
        fields = line.split("\t")
        if columns is None:
            if len(fields) not in ((3,) if labels_required else (2, 3)):
                expected = "3 (text_a, text_b, label)" if labels_required else "2 or 3"
                raise InputFormatError(path, number, f"{len(fields)} tab-separated columns, expected {expected}")
            columns = len(fields)
        elif len(fields) != columns:
            raise InputFormatError(path, number, f"{len(fields)} tab-separated columns, the file's first line has {columns}")
        for name, text in zip(("text_a", "text_b"), fields):
            if not text.strip():
                raise InputFormatError(path, number, f"empty {name}")
        if columns == 3:
            label = fields[2].strip()
            if label not in index:
                raise InputFormatError(path, number, f"unknown label {label!r}, expected one of {label_list}")
            pairs.labels.append(index[label])
        else:
            pairs.labels.append(UNLABELLED)
        pairs.text_a.append(fields[0].strip())
        pairs.text_b.append(fields[1].strip())
        pairs.line_numbers.append(number)
    if columns is None:
        raise InputFormatError(path, None, "no examples (empty file)")
    return pairs

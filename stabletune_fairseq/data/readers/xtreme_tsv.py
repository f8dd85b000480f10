"""Reader for XTREME sentence-pair files (XNLI, PAWS-X): ``text_a \\t text_b [\\t label]`` per line.

Training and dev files must carry a label; test files may come without one (as XTREME ships XNLI's),
in which case every row has label ``-1`` and is kept for prediction.

A task may accept aliases of its labels (``{alias: label}``, e.g. XNLI's ``contradictory``, which XTREME's
translate-train files and XNLI-MT use for ``contradiction``): an alias is read as its label and the rows
read that way are counted per alias (``remapped``, keyed ``"alias->label"``, see ``remap_key``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFormatError
from ..text_lines import read_lines

UNLABELLED = -1


@dataclass
class SentencePairs:
    path: str
    text_a: list[str]
    text_b: list[str]
    labels: list[int]  # index into the task's label list, UNLABELLED when the file has no labels
    line_numbers: list[int]
    remapped: dict[str, int] = field(default_factory=dict)  # "alias->label": rows read through that alias

    @property
    def labelled(self) -> bool:
        return bool(self.labels) and self.labels[0] != UNLABELLED

    def __len__(self) -> int:
        return len(self.labels)


def remap_key(alias: str, label: str) -> str:
    """The key under which rows read through an alias are counted: ``"contradictory->contradiction"``."""
    return f"{alias}->{label}"


class LabelReader:
    """Label text -> index into the task's label list, through the task's aliases; counts the aliased rows."""

    def __init__(self, label_list: list[str], aliases: dict[str, str] | None = None):
        aliases = dict(aliases or {})
        for alias, label in aliases.items():
            if label not in label_list or alias in label_list:
                raise ValueError(f"label alias {alias!r} -> {label!r} does not fit the label list {label_list}")
        self.label_list, self.aliases = label_list, aliases
        self.index = {label: i for i, label in enumerate(label_list)}
        self.remapped: dict[str, int] = {}

    def __call__(self, path, number: int, label: str) -> int:
        if label in self.index:
            return self.index[label]
        if label in self.aliases:
            key = remap_key(label, self.aliases[label])
            self.remapped[key] = self.remapped.get(key, 0) + 1
            return self.index[self.aliases[label]]
        also = "".join(f", or {alias!r} for {name!r}" for alias, name in self.aliases.items())
        raise InputFormatError(path, number, f"unknown label {label!r}, expected one of {self.label_list}{also}")


def read_sentence_pairs(
    path: str | Path, label_list: list[str], labels_required: bool, aliases: dict[str, str] | None = None
) -> SentencePairs:
    read_label = LabelReader(label_list, aliases)
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
            raise InputFormatError(
                path, number, f"{len(fields)} tab-separated columns, the file's first line has {columns}"
            )
        for name, text in zip(("text_a", "text_b"), fields):
            if not text.strip():
                raise InputFormatError(path, number, f"empty {name}")
        if columns == 3:
            pairs.labels.append(read_label(path, number, fields[2].strip()))
        else:
            pairs.labels.append(UNLABELLED)
        pairs.text_a.append(fields[0].strip())
        pairs.text_b.append(fields[1].strip())
        pairs.line_numbers.append(number)
    if columns is None:
        raise InputFormatError(path, None, "no examples (empty file)")
    pairs.remapped = read_label.remapped
    return pairs

"""Reader for parallel sentences (multilingual distillation, docs/embeddings.md): a folder of TSV files, one per
language pair, ``source<TAB>target`` a line (TED2020 style: ``en-de.tsv``), plus optional source-only sentences.

File names (``.gz`` allowed after each):
- ``<pair>.tsv``: training pairs; the validation pairs are held out from its end (the binariser decides how many);
- ``<pair>.train.tsv`` / ``<pair>-train.tsv`` and ``<pair>.dev.tsv`` / ``<pair>-dev.tsv`` (sentence-transformers'
  ``TED2020-en-de-train.tsv.gz`` naming): an explicit split; a pair with a dev file holds nothing out;
- ``<name>.sentences.txt``: source-only sentences, one a line (the teacher's target for the source itself).

A malformed row (not exactly two tab-separated columns, an empty side) is an ``InputFormatError`` naming the file,
the line and the reason; nothing is skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFormatError
from ..text_lines import read_lines

PAIR_FILE = re.compile(r"^(?P<name>.+?)(?:[.-](?P<split>train|dev))?\.tsv(?:\.gz)?$")
SENTENCES_FILE = re.compile(r"^(?P<name>.+)\.sentences\.txt(?:\.gz)?$")


@dataclass
class ParallelText:
    """The rows of one file: ``target`` is None for a file of source-only sentences."""

    path: Path
    source: list[str]
    target: list[str] | None
    line_numbers: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.source)


@dataclass
class ParallelFolder:
    """``pairs[name] = {"train": path, "dev": path or None}`` (names sorted) and the source-only files."""

    pairs: dict[str, dict[str, Path | None]]
    sentences: list[Path]


def find_parallel_files(folder: str | Path) -> ParallelFolder:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFormatError(folder, None, "not a folder (of parallel <pair>.tsv files)")
    pairs: dict[str, dict[str, Path | None]] = {}
    sentences = []
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        if SENTENCES_FILE.match(path.name):
            sentences.append(path)
            continue
        match = PAIR_FILE.match(path.name)
        if not match:
            continue
        slot = pairs.setdefault(match["name"], {"train": None, "dev": None})
        split = match["split"] or "train"
        if slot[split] is not None:
            raise InputFormatError(
                path, None, f"a second {split} file of pair {match['name']!r} (also {slot[split].name})"
            )
        slot[split] = path
    for name, slot in pairs.items():
        if slot["train"] is None:
            raise InputFormatError(
                slot["dev"],
                None,
                f"a dev file without training pairs of {name!r} (expected {name}.tsv or {name}.train.tsv beside it)",
            )
    if not pairs:
        raise InputFormatError(
            folder,
            None,
            "no parallel files: expected <pair>.tsv (e.g. en-de.tsv: source<TAB>target "
            "a line), or <pair>.train.tsv and <pair>.dev.tsv",
        )
    return ParallelFolder(pairs, sentences)


def read_parallel(path: str | Path) -> ParallelText:
    """Every row of a ``source<TAB>target`` file."""
    path = Path(path)
    text = ParallelText(path, [], [])
    for number, line in read_lines(path):
        columns = line.split("\t")
        if len(columns) != 2:
            raise InputFormatError(
                path, number, f"{len(columns)} tab-separated columns, expected 2 (source<TAB>target)"
            )
        source, target = (c.strip() for c in columns)
        if not source or not target:
            raise InputFormatError(path, number, f"empty {'source' if not source else 'target'} sentence")
        text.source.append(source)
        text.target.append(target)
        text.line_numbers.append(number)
    if not text.source:
        raise InputFormatError(path, None, "no sentence pairs (empty file)")
    return text


def read_sentences(path: str | Path) -> ParallelText:
    """Source-only sentences, one a line; a blank line is an error (it would embed nothing)."""
    path = Path(path)
    text = ParallelText(path, [], None)
    for number, line in read_lines(path):
        sentence = line.strip()
        if not sentence:
            raise InputFormatError(path, number, "empty line (one sentence a line expected)")
        if "\t" in sentence:
            raise InputFormatError(path, number, "a tab in a source-only sentence (parallel pairs go into <pair>.tsv)")
        text.source.append(sentence)
        text.line_numbers.append(number)
    return text

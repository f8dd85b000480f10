"""Reader for XTREME tagging files (UD-POS, PAN-X): one ``word \\t tag`` per line, a blank line between
sentences. Test files may carry words only (as XTREME ships PAN-X's test sets).

A line is split at its last tab, so a word that itself holds a tab survives. Runs of blank lines (and
blank lines at the start or end) are one boundary. Whether a file has tags is decided by its first
word line; every later line must then agree, so a tag line missing from a labelled file is an error
at that line, never a silently shifted tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import InputFormatError
from ..text_lines import read_lines


@dataclass
class TaggedSentences:
    path: str
    words: list[list[str]] = field(default_factory=list)
    tags: Optional[list[list[str]]] = None  # None when the file has no tag column
    first_lines: list[int] = field(default_factory=list)  # line number of each sentence's first word

    @property
    def labelled(self) -> bool:
        return self.tags is not None

    @property
    def word_count(self) -> int:
        return sum(len(s) for s in self.words)

    def __len__(self) -> int:
        return len(self.words)


def read_tagged_sentences(path: str | Path, tags_required: bool) -> TaggedSentences:
    result = TaggedSentences(str(path))
    has_tags = None
    words: list[str] = []
    tags: list[str] = []

    def close_sentence():
        if words:
            result.words.append(list(words))
            if has_tags:
                result.tags.append(list(tags))
            words.clear()
            tags.clear()

    for number, line in read_lines(path):
        if not line.strip():
            close_sentence()
            continue
        word, sep, tag = line.rpartition("\t")
        if has_tags is None:
            has_tags = bool(sep)
            if not has_tags and tags_required:
                raise InputFormatError(path, number, "missing tag column (expected word<TAB>tag)")
            result.tags = [] if has_tags else None
        if has_tags:
            if not sep:
                raise InputFormatError(
                    path, number, "missing tag column (expected word<TAB>tag, as on the file's other lines)"
                )
            tag = tag.strip()
            if not tag:
                raise InputFormatError(path, number, "empty tag")
        else:
            if sep:
                raise InputFormatError(
                    path, number, "a tab on this line, but the file's first word line has no tag column"
                )
            word = tag  # rpartition put the whole line in the last part
        if not word.strip():
            raise InputFormatError(path, number, "empty word")
        if not words:
            result.first_lines.append(number)
        words.append(word)
        tags.append(tag)
    close_sentence()
    if not result.words:
        raise InputFormatError(path, None, "no sentences (empty file)")
    return result

"""Code-switching with MUSE bilingual dictionaries (``en-<lang>.txt``: ``source<TAB or space>target``).

A word is looked up lower-cased, with the punctuation around it set aside and put back after
translation, so "dog." becomes "Hund." rather than being skipped.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import InputFormatError
from ..text_lines import read_lines


def read_muse_dictionary(path: str | Path, one_word_only: bool) -> dict[str, list[str]]:
    """source word -> its translations, in file order, without duplicates."""
    table: dict[str, list[str]] = defaultdict(list)
    for number, line in read_lines(path):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split(" ", 1)
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise InputFormatError(path, number, "expected 'source<TAB>target'")
        source, target = parts[0].strip().lower(), parts[1].strip()
        if one_word_only and len(target.split()) != 1:
            continue
        if target not in table[source]:
            table[source].append(target)
    return dict(table)


def split_punctuation(word: str) -> tuple[str, str, str]:
    """(leading punctuation, core, trailing punctuation)."""
    is_punct = [unicodedata.category(c).startswith("P") for c in word]
    start = next((i for i, p in enumerate(is_punct) if not p), len(word))
    end = len(word) - next((i for i, p in enumerate(reversed(is_punct)) if not p), len(word))
    return word[:start], word[start:end], word[end:]


class CodeSwitcher:
    """Replace words by a translation into a randomly chosen dictionary language."""

    def __init__(self, dict_dir: str | Path, languages: list[str], one_word_only: bool = True):
        if not languages:
            raise ValueError("code-switching needs at least one dictionary language")
        self.languages = list(languages)
        self.tables = {}
        for lang in self.languages:
            path = Path(dict_dir) / f"en-{lang}.txt"
            if not path.is_file():
                raise FileNotFoundError(f"code-switch dictionary for '{lang}' not found: {path}")
            self.tables[lang] = read_muse_dictionary(path, one_word_only)

    def translate(self, word: str, rng: np.random.Generator) -> str | None:
        """A translation of ``word`` into a random dictionary language, or None if it has none there."""
        before, core, after = split_punctuation(word)
        table = self.tables[self.languages[rng.integers(len(self.languages))]]
        options = table.get(core.lower())
        if not core or not options:
            return None
        return before + options[rng.integers(len(options))] + after

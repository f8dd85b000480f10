"""Translate-train sentences of the tagging tasks (UD-POS, PAN-X), paired with their English training sentences.

XTREME ships no translations for tagging; the xTune authors' release does, as one file per task,
``<translations>/translate_train.<udpos|panx>.txt``, a line per translation:
``english sentence \\t language \\t translated sentence [\\t word alignment]``, words joined by single spaces.
A line is paired with the English training sentences whose words, joined by spaces, are its first column
(a repeated English sentence gets the translations of its text). Stage 2 then trains, every epoch, on
one translation of each English sentence drawn at random (``data/datasets/tagging_views.py``). The alignment
column is not used (translations carry no tags: R1/R2 only).

Left out and counted, as the reference leaves them out: English itself and the languages written without
spaces between words (their whitespace "words" are not words): ``DROPPED_LANGUAGES``. A line whose
English sentence is not in the training set is listed with its line in ``translation/unmatched.tsv`` and
counted, never guessed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFormatError
from ..text_lines import read_lines

DROPPED_LANGUAGES = ("en", "zh-CN", "zh", "ja", "ko", "th", "my", "ml", "ta")  # the reference's run_tag.py list


@dataclass
class TaggingTranslations:
    path: str
    words: dict[str, list[list[str]]] = field(default_factory=dict)  # language -> translated sentences
    sources: dict[str, list[int]] = field(default_factory=dict)  # language -> English sentence of each
    dropped: Counter = field(default_factory=Counter)  # language -> lines left out (DROPPED_LANGUAGES)
    unmatched: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    canonical: list[int] = field(default_factory=list)  # per English sentence: the first one with its words


def translation_file(translations_dir: str | Path, task: str) -> Path:
    path = Path(translations_dir) / f"translate_train.{task}.txt"
    if not path.is_file():
        raise InputFormatError(
            path,
            None,
            f"translate-train file not found (the xTune release's translate_train.{task}.txt: "
            "english sentence<TAB>language<TAB>translated sentence[<TAB>alignment])",
        )
    return path


def read_tagging_translations(path: str | Path, english: list[list[str]]) -> TaggingTranslations:
    """Translations of ``english`` (the training sentences' words) read from ``path``."""
    first_of: dict[str, int] = {}
    canonical = [first_of.setdefault(" ".join(words), number) for number, words in enumerate(english)]
    found = TaggingTranslations(str(path), canonical=canonical)
    for line, text in read_lines(path):
        fields = text.split("\t")
        if len(fields) not in (3, 4):
            raise InputFormatError(
                path,
                line,
                f"{len(fields)} tab-separated columns, expected 3 or 4 "
                "(english sentence, language, translation[, alignment])",
            )
        source, language, target = fields[0], fields[1].strip(), fields[2]
        if not language:
            raise InputFormatError(path, line, "empty language")
        if language in DROPPED_LANGUAGES:
            found.dropped[language] += 1
            continue
        words = target.split()
        if not words:
            raise InputFormatError(path, line, "empty translation")
        if source not in first_of:
            found.unmatched.append((line, "English sentence not found in the training set"))
            continue
        found.words.setdefault(language, []).append(words)
        found.sources.setdefault(language, []).append(first_of[source])
    if not found.words:
        raise InputFormatError(path, None, "no translation of a training sentence into a language written with spaces")
    return found

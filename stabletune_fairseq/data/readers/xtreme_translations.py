"""XTREME translate-train files for sentence-pair tasks, paired with their English training rows.

``xtreme_translations/<TASK>/translate-train/en-<lang>-translated.tsv`` holds
``src_a \\t src_b \\t tgt_a \\t tgt_b \\t label``: an English pair and its machine translation. Each row is
matched to the English training row with the same two texts; a row whose source is not in the English
training set is reported with its line (``unmatched_<lang>.tsv`` and the metadata), never guessed.
Labels are read through the task's aliases (XTREME's XNLI files say ``contradictory``), so an aliased
label compares equal to its label; the rows read through an alias are counted (``remapped``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFormatError
from ..text_lines import read_lines
from .xtreme_tsv import LabelReader

TRANSLATION_FOLDERS = {"xnli": "XNLI", "pawsx": "PAWSX", "udpos": "UDPOS", "panx": "PANX"}
_FILE = re.compile(r"^en-([A-Za-z_-]+)-translated\.tsv$")


@dataclass
class MatchedTranslations:
    path: str
    language: str
    text_a: list[str] = field(default_factory=list)
    text_b: list[str] = field(default_factory=list)
    source_rows: list[int] = field(default_factory=list)  # index of the English training row
    unmatched: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    remapped: dict[str, int] = field(default_factory=dict)  # "alias->label": rows read through that alias


def translation_files(translations_dir: str | Path, task: str) -> dict[str, Path]:
    folder = Path(translations_dir) / TRANSLATION_FOLDERS[task] / "translate-train"
    if not folder.is_dir():
        raise InputFormatError(folder, None, "translate-train folder not found")
    files = {m.group(1): p for p in sorted(folder.iterdir()) if (m := _FILE.match(p.name))}
    if not files:
        raise InputFormatError(folder, None, "no en-<lang>-translated.tsv file")
    return files


def match_translations(
    path: Path,
    language: str,
    english_a: list[str],
    english_b: list[str],
    labels: list[int],
    label_list: list[str],
    aliases: dict[str, str] | None = None,
) -> MatchedTranslations:
    # An English pair can occur several times: its translations go to its occurrences in turn.
    occurrences: dict[tuple[str, str], list[int]] = {}
    for row, key in enumerate(zip(english_a, english_b)):
        occurrences.setdefault(key, []).append(row)
    taken: dict[tuple[str, str], int] = {}
    read_label = LabelReader(label_list, aliases)
    out = MatchedTranslations(str(path), language)
    for number, line in read_lines(path):
        fields = line.split("\t")
        if len(fields) != 5:
            raise InputFormatError(
                path, number, f"{len(fields)} tab-separated columns, expected 5 (src_a, src_b, tgt_a, tgt_b, label)"
            )
        src_a, src_b, tgt_a, tgt_b, label = (f.strip() for f in fields)
        if not tgt_a or not tgt_b:
            raise InputFormatError(path, number, "empty translation")
        label_id = read_label(path, number, label)
        rows = occurrences.get((src_a, src_b))
        row = None
        if rows is not None:
            row = rows[taken.get((src_a, src_b), 0) % len(rows)]
            taken[(src_a, src_b)] = taken.get((src_a, src_b), 0) + 1
        if row is None:
            out.unmatched.append((number, "source pair not found in the English training set"))
        elif labels[row] != label_id:
            out.unmatched.append(
                (number, f"label {label!r} differs from the English row's {label_list[labels[row]]!r}")
            )
        else:
            out.text_a.append(tgt_a)
            out.text_b.append(tgt_b)
            out.source_rows.append(row)
    out.remapped = read_label.remapped
    return out

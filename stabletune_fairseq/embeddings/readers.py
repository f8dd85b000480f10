"""The raw files of the embedding tasks -> plain Python data.

Each reader takes the folder a user downloaded, as the task's distributors lay it out, and returns dataclasses of
lists of strings. A malformed row is an ``InputFormatError`` naming the file, the line and the reason; nothing is
dropped silently: rows that cannot be scored (an STS pair without a gold score, a repeated BUCC gold pair) are kept
out of the scores, counted in ``skipped`` and reported.

- Tatoeba, two layouts. LASER's (``tatoeba.<xxx>-eng.<xxx>`` / ``tatoeba.<xxx>-eng.eng``, 3-letter codes): line i
  of both files are translations, the gold. XTREME's processed copy (``<xx>-en.<xx>`` / ``<xx>-en.en``, 2-letter
  codes): XTREME sorted each English file alphabetically to hide the gold, so it can be predicted, not scored.
- BUCC 2018 as XTREME lays it out: ``<xx>-en.<split>.<xx>`` and ``<xx>-en.<split>.en`` (``id<TAB>sentence``),
  ``<xx>-en.<split>.gold`` (``id_xx<TAB>id_en``; absent for a test split whose gold is hidden).
- STS: SemEval 2017 (``STS.input.<track>.txt`` pairs, ``STS.gs.<track>.txt`` one score a line, anywhere under the
  folder), STS2017-extended (``STS.<l1>-<l2>.txt``: ``sentence1<TAB>sentence2<TAB>score`` a line, Reimers &
  Gurevych's translations of the STS 2017 English pairs, the multi-stage framework's test set) and the STS
  Benchmark's ``sts-{dev,test}.csv`` (tab-separated, no header, quoting off).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..data.errors import InputFormatError
from ..data.text_lines import read_lines


def _lines(path: Path) -> list[str]:
    return [text for _, text in read_lines(path)]


# ---------------------------------------------------------------------------------------------------- Tatoeba

LASER_SOURCE = re.compile(r"tatoeba\.([a-z]{3})-eng\.\1")
XTREME_SOURCE = re.compile(r"([a-z]{2})-en\.\1")


@dataclass
class TatoebaLanguage:
    """One language against English: ``source[i]`` translates ``english[i]`` when the layout is gold-aligned."""

    language: str
    source: list[str]
    english: list[str]
    source_path: Path
    english_path: Path


@dataclass
class TatoebaData:
    """``layout``: "laser" (line i of both sides aligned: accuracy can be computed) or "xtreme" (the English side
    sorted by XTREME to hide the gold: predictions only); ``gold_aligned`` says which of the two."""

    folder: Path
    layout: str
    gold_aligned: bool
    languages: list[TatoebaLanguage]

    @property
    def description(self) -> str:
        if self.gold_aligned:
            return "LASER's layout (tatoeba.<xxx>-eng.*): line i of both files is the gold pair; accuracy is computed"
        return (
            "XTREME's processed layout (<xx>-en.*): XTREME sorted each English file to hide the gold, so only "
            "predictions are written, no accuracy; predictions/tatoeba/test-<xx>.tsv is XTREME's submission file "
            "(en->x: for each English line, the 0-based source line nearest to it)"
        )


def read_tatoeba(folder: str | Path) -> TatoebaData:
    """Every language pair of ``folder``, in either layout (not both mixed)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFormatError(folder, None, "not a folder (the Tatoeba folder: tatoeba.<xxx>-eng.* or <xx>-en.*)")
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    laser = [m.group(1) for m in map(LASER_SOURCE.fullmatch, names) if m]
    xtreme = [m.group(1) for m in map(XTREME_SOURCE.fullmatch, names) if m and m.group(1) != "en"]
    if laser and xtreme:
        raise InputFormatError(
            folder,
            None,
            f"holds both LASER's layout ({len(laser)} tatoeba.<xxx>-eng.<xxx> files) and "
            f"XTREME's ({len(xtreme)} <xx>-en.<xx> files): give one folder per layout",
        )
    if not laser and not xtreme:
        raise InputFormatError(
            folder,
            None,
            "no Tatoeba files: expected tatoeba.<xxx>-eng.<xxx> with tatoeba.<xxx>-eng.eng "
            "(LASER's layout) or <xx>-en.<xx> with <xx>-en.en (XTREME's)",
        )
    languages = []
    for code in laser or xtreme:
        source_path = folder / (f"tatoeba.{code}-eng.{code}" if laser else f"{code}-en.{code}")
        english_path = folder / (f"tatoeba.{code}-eng.eng" if laser else f"{code}-en.en")
        if not english_path.is_file():
            raise InputFormatError(english_path, None, f"file not found (the English side of {source_path.name})")
        source, english = _lines(source_path), _lines(english_path)
        if laser and len(source) != len(english):
            raise InputFormatError(
                source_path,
                None,
                f"{len(source)} lines, but its English side {english_path} has "
                f"{len(english)}: line i of both must be a translation pair",
            )
        languages.append(TatoebaLanguage(code, source, english, source_path, english_path))
    return TatoebaData(folder, "laser" if laser else "xtreme", bool(laser), languages)


# ---------------------------------------------------------------------------------------------------- BUCC 2018

BUCC_SPLITS = ("dev", "test")


@dataclass
class BuccSplit:
    """One language pair's split: sentences with their ids, and the gold pairs (None when the split has no gold
    file, as BUCC's test split is distributed). ``skipped``: gold lines repeated (kept once), counted."""

    language: str
    split: str
    source_ids: list[str]
    source: list[str]
    english_ids: list[str]
    english: list[str]
    gold: set[tuple[str, str]] | None
    paths: dict[str, Path]
    skipped: dict[str, int] = field(default_factory=dict)


def bucc_languages(folder: str | Path, split: str) -> list[str]:
    """The languages of ``folder`` with a ``<xx>-en.<split>.<xx>`` file."""
    pattern = re.compile(rf"([a-z]{{2}})-en\.{re.escape(split)}\.\1")
    return sorted(
        m.group(1) for m in (pattern.fullmatch(p.name) for p in Path(folder).iterdir()) if m and m.group(1) != "en"
    )


def _id_sentences(path: Path) -> tuple[list[str], list[str]]:
    ids, sentences, seen = [], [], {}
    for number, text in read_lines(path):
        if "\t" not in text:
            raise InputFormatError(path, number, "expected id<TAB>sentence (no tab in the line)")
        sentence_id, sentence = text.split("\t", 1)
        if not sentence_id.strip():
            raise InputFormatError(path, number, "empty sentence id")
        if sentence_id in seen:
            raise InputFormatError(path, number, f"sentence id {sentence_id!r} already on line {seen[sentence_id]}")
        seen[sentence_id] = number
        ids.append(sentence_id)
        sentences.append(sentence)
    return ids, sentences


def _gold_pairs(path: Path, source_ids: set, english_ids: set, source_path: Path, english_path: Path):
    gold, repeated = set(), 0
    for number, text in read_lines(path):
        fields = text.split("\t")
        if len(fields) != 2:
            raise InputFormatError(path, number, f"expected id_xx<TAB>id_en, found {len(fields)} tab-separated fields")
        if fields[0] not in source_ids:
            raise InputFormatError(path, number, f"{fields[0]!r} is no sentence id of {source_path}")
        if fields[1] not in english_ids:
            raise InputFormatError(path, number, f"{fields[1]!r} is no sentence id of {english_path}")
        if tuple(fields) in gold:
            repeated += 1
        gold.add(tuple(fields))
    return gold, repeated


def read_bucc(folder: str | Path, language: str, split: str) -> BuccSplit:
    folder = Path(folder)
    stem = folder / f"{language}-en.{split}"
    paths = {"source": Path(f"{stem}.{language}"), "english": Path(f"{stem}.en"), "gold": Path(f"{stem}.gold")}
    source_ids, source = _id_sentences(paths["source"])
    english_ids, english = _id_sentences(paths["english"])
    gold, skipped = None, {}
    if paths["gold"].is_file():
        gold, repeated = _gold_pairs(
            paths["gold"], set(source_ids), set(english_ids), paths["source"], paths["english"]
        )
        if repeated:
            skipped["repeated gold lines (counted once)"] = repeated
    return BuccSplit(language, split, source_ids, source, english_ids, english, gold, paths, skipped)


# ---------------------------------------------------------------------------------------------------- STS

STS2017_INPUT = re.compile(r"STS\.input\.(.+)\.txt")
STS2017_EXTENDED = re.compile(r"STS\.([a-z]{2,3})-([a-z]{2,3})\.txt")
STSB_FILES = ("sts-dev.csv", "sts-test.csv")  # sts-train.csv is training data: not evaluated
STSB_COLUMNS = 7  # genre, file, year, id, score, sentence1, sentence2 (some rows carry more)
# SemEval 2017's track 6 (tr-en) input has 500 pairs and its gold file 250 scores: score i is of pair i, the last
# 250 pairs are unscored (docs/embeddings.md, "STS2017 track 6"). Every other track scores every pair.
TRACKS_WITH_UNSCORED_TAIL = re.compile(r"track6(\.|$)")


@dataclass
class StsSet:
    """Scored pairs: ``first[i]``, ``second[i]`` with gold ``scores[i]`` (0-5). ``skipped``: input pairs left out
    of the scores and why (an unscored tail of track 6, blank gold lines), counted."""

    name: str
    first: list[str]
    second: list[str]
    scores: list[float]
    input_path: Path
    gold_path: Path
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _score(text: str, path: Path, number: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputFormatError(path, number, f"gold score {text!r} is not a number") from None
    if value != value:  # NaN
        raise InputFormatError(path, number, "gold score is NaN")
    return value


def read_sts2017_track(input_path: Path, gold_path: Path) -> StsSet:
    """One SemEval-style track: pair i of ``input_path`` is scored by line i of ``gold_path``; a blank gold line
    leaves its pair unscored (SemEval's convention)."""
    name = STS2017_INPUT.fullmatch(input_path.name).group(1)
    pairs, extra_columns = [], 0
    for number, text in read_lines(input_path):
        fields = text.split("\t")
        if len(fields) < 2:
            raise InputFormatError(input_path, number, "expected sentence1<TAB>sentence2 (no tab in the line)")
        extra_columns += len(fields) > 2
        pairs.append((fields[0], fields[1]))
    gold = list(read_lines(gold_path))
    set_ = StsSet(name, [], [], [], input_path, gold_path)
    if len(gold) > len(pairs):
        raise InputFormatError(
            gold_path, None, f"{len(gold)} gold scores, but {input_path} has only {len(pairs)} pairs"
        )
    if len(gold) < len(pairs):
        if not TRACKS_WITH_UNSCORED_TAIL.match(name):
            raise InputFormatError(
                gold_path,
                None,
                f"{len(gold)} gold scores for the {len(pairs)} pairs of {input_path}: "
                "each pair needs its score (only track 6 has unscored pairs)",
            )
        set_.skipped["unscored pairs after the last gold line (track 6)"] = len(pairs) - len(gold)
        set_.notes.append(
            f"{input_path.name}: {len(pairs)} pairs, {len(gold)} gold scores; gold line i scores pair i, "
            f"pairs {len(gold) + 1}-{len(pairs)} are unscored"
        )
    blank = 0
    for (number, text), (first, second) in zip(gold, pairs):
        if not text.strip():
            blank += 1
            continue
        set_.first.append(first)
        set_.second.append(second)
        set_.scores.append(_score(text.strip(), gold_path, number))
    if blank:
        set_.skipped["pairs with a blank gold line"] = blank
    if extra_columns:
        set_.notes.append(f"{input_path.name}: {extra_columns} pairs have more than 2 columns; the first two were read")
    return set_


def read_sts2017_extended(path: Path) -> StsSet:
    """An STS2017-extended file: ``sentence1<TAB>sentence2<TAB>score`` a line, exactly three columns (the multi-stage
    framework's reader splits each stripped line into three), neither sentence empty, the score a number."""
    set_ = StsSet(path.stem, [], [], [], path, path)
    for number, text in read_lines(path):
        fields = text.strip("\r\n").split("\t")
        if len(fields) != 3:
            raise InputFormatError(
                path, number, f"{len(fields)} tab-separated columns, expected 3 (sentence1, sentence2, score)"
            )
        if not fields[0].strip() or not fields[1].strip():
            raise InputFormatError(path, number, f"sentence {1 if not fields[0].strip() else 2} is empty")
        set_.scores.append(_score(fields[2].strip(), path, number))
        set_.first.append(fields[0])
        set_.second.append(fields[1])
    if not set_.scores:
        raise InputFormatError(path, None, "no pairs (an empty STS2017-extended file)")
    return set_


def read_stsb(path: Path) -> StsSet:
    """An STS Benchmark file: columns 5 and 6 (0-based) are the sentences, column 4 the score; more trailing columns
    (the source of some 2016 headlines) are ignored, counted."""
    set_ = StsSet(f"sts-b {path.stem.removeprefix('sts-')}", [], [], [], path, path)
    extra_columns = 0
    for number, text in read_lines(path):
        fields = text.split("\t")
        if len(fields) < STSB_COLUMNS:
            raise InputFormatError(
                path,
                number,
                f"{len(fields)} tab-separated columns, expected {STSB_COLUMNS} (genre, "
                "file, year, id, score, sentence1, sentence2)",
            )
        extra_columns += len(fields) > STSB_COLUMNS
        set_.scores.append(_score(fields[4], path, number))
        set_.first.append(fields[5])
        set_.second.append(fields[6])
    if extra_columns:
        set_.notes.append(
            f"{path.name}: {extra_columns} rows have more than {STSB_COLUMNS} columns (the text's source); "
            "columns 5 and 6 were read as the sentences"
        )
    return set_


def read_sts(folder: str | Path) -> list[StsSet]:
    """Every STS2017 track (input and gold found anywhere under ``folder``), STS2017-extended file and STS Benchmark
    dev/test file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFormatError(folder, None, "not a folder (the STS folder)")
    sets = []
    inputs = sorted(p for p in folder.rglob("STS.input.*.txt") if STS2017_INPUT.fullmatch(p.name))
    golds = {}
    for path in sorted(folder.rglob("STS.gs.*.txt")):
        if path.name in golds:
            raise InputFormatError(
                path,
                None,
                f"a second gold file of that name (the first: {golds[path.name]}): "
                "give a folder with one copy of each track",
            )
        golds[path.name] = path
    for input_path in inputs:
        gold_name = "STS.gs." + input_path.name[len("STS.input.") :]
        if gold_name not in golds:
            raise InputFormatError(input_path, None, f"no gold file {gold_name} under {folder}")
        sets.append(read_sts2017_track(input_path, golds[gold_name]))
    extended = {}
    for path in sorted(p for p in folder.rglob("STS.*.txt") if STS2017_EXTENDED.fullmatch(p.name)):
        if path.name in extended:
            raise InputFormatError(
                path,
                None,
                f"a second file of that name (the first: {extended[path.name]}): give a folder with one copy of each",
            )
        extended[path.name] = path
        sets.append(read_sts2017_extended(path))
    for name in STSB_FILES:
        for path in sorted(folder.rglob(name)):
            sets.append(read_stsb(path))
            if any(other.name == sets[-1].name for other in sets[:-1]):  # two STS-B copies: name them by folder
                sets[-1].name += f" ({path.parent.relative_to(folder)})"
    if not sets:
        raise InputFormatError(
            folder,
            None,
            "no STS files: expected STS.input.<track>.txt with STS.gs.<track>.txt "
            "(SemEval 2017), STS.<l1>-<l2>.txt (STS2017-extended) or sts-dev.csv / sts-test.csv (STS Benchmark)",
        )
    return sets

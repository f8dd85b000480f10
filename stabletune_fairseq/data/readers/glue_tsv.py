"""Reader for GLUE's task files, as GLUE's download script leaves them: ``<glue_data>/<TASK>/<split>.tsv``.

Every file is tab-separated with quoting off (MRPC, QNLI, RTE and STS-B texts contain ``"``: a reader that
honours quotes merges rows), UTF-8 (MRPC's train/dev begin with a BOM, which ``read_lines`` drops). Columns
are found by the header's names, so that one task's files of different layouts read alike (MNLI's train has
12 columns, its real dev 16; STS-B's test lacks the score; test files have an ``index`` column, MRPC's
train/dev none). CoLA's train and dev have no header: ``source, label, mark, sentence`` (its test has
``index\\tsentence``).

Per task (``GLUE_TASKS``): the text columns (one for CoLA and SST-2, two otherwise), the label column and its
labels (STS-B: a score in 0..5, regression). A train or dev file must carry labels; a test file without the
label column (as GLUE ships them) is read as unlabelled: ``UNLABELLED`` for classes, NaN for scores. Each
row keeps GLUE's ``index`` (QQP: ``id``) for submission files, or its row number from 0 when the file has
none. A row with another number of columns than the header, an empty text, an unknown label, a score that
is no number in 0..5 or an index that is no integer is an ``InputFormatError`` naming file and line.

``drop_malformed`` (``process.sh DROP_MALFORMED=1``): a line with another number of columns than the header, an
empty text or an empty line is left out and its line number kept in ``GlueRows.dropped_lines``, instead of refused.
QQP's train and dev files hold such lines (a question with a line break in it splits its row in two), which
fairseq's GLUE preprocessing, and so AMOS's, drops without a word (``awk -F '\t' 'NF==6'``); by default they
are refused, so that no row goes missing unnoticed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFormatError
from ..text_lines import read_lines
from .xtreme_tsv import UNLABELLED, LabelReader

logger = logging.getLogger(__name__)

INDEX_COLUMNS = ("index", "id")  # GLUE's row identifier: QQP says "id", the other tasks "index"
SCORE_RANGE = (0.0, 5.0)


@dataclass(frozen=True)
class GlueTask:
    name: str  # lower case without dash: "stsb"
    folder: str  # GLUE's folder name: "STS-B"
    texts: tuple[str, ...]  # header names of the text columns: one (single sentence) or two (pair)
    label: str  # header name of the label column
    labels: tuple[str, ...]  # the label list; () for a regression task (a score)
    headerless: tuple[str, ...] = ()  # column names of a file that has no header (CoLA's train and dev)

    @property
    def regression(self) -> bool:
        return not self.labels

    @property
    def pair(self) -> bool:
        return len(self.texts) == 2


GLUE_TASKS = {
    task.name: task
    for task in (
        GlueTask(
            "cola", "CoLA", ("sentence",), "label", ("0", "1"), headerless=("source", "label", "mark", "sentence")
        ),
        GlueTask("sst2", "SST-2", ("sentence",), "label", ("0", "1")),
        GlueTask("mrpc", "MRPC", ("#1 String", "#2 String"), "Quality", ("0", "1")),
        GlueTask("qqp", "QQP", ("question1", "question2"), "is_duplicate", ("0", "1")),
        GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), "score", ()),
        GlueTask("mnli", "MNLI", ("sentence1", "sentence2"), "gold_label", ("contradiction", "entailment", "neutral")),
        GlueTask("qnli", "QNLI", ("question", "sentence"), "label", ("entailment", "not_entailment")),
        GlueTask("rte", "RTE", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment")),
        GlueTask("wnli", "WNLI", ("sentence1", "sentence2"), "label", ("0", "1")),
    )
}

# (file, split name, language) of a task folder; MNLI has matched (m) and mismatched (mm) dev and test sets
SPLIT_FILES = (("train.tsv", "train", "en"), ("dev.tsv", "valid_en", "en"), ("test.tsv", "test_en", "en"))
MNLI_SPLIT_FILES = (
    ("train.tsv", "train", "en"),
    ("dev_matched.tsv", "valid_m", "m"),
    ("dev_mismatched.tsv", "valid_mm", "mm"),
    ("test_matched.tsv", "test_m", "m"),
    ("test_mismatched.tsv", "test_mm", "mm"),
)


def _key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def glue_task(name: str) -> GlueTask:
    """The task of a name in any of its spellings: ``STS-B``, ``sts-b``, ``stsb``, ``SST-2``, ``CoLA``."""
    task = GLUE_TASKS.get(_key(name))
    if task is None:
        raise KeyError(f"unknown GLUE task {name!r}: one of {', '.join(t.folder for t in GLUE_TASKS.values())}")
    return task


def find_task_folder(glue_dir: Path, task: GlueTask) -> Path | None:
    """``<glue_dir>/<GLUE folder name>``, or a folder spelled otherwise (``sst2``, ``sts-b``); None if absent."""
    if (glue_dir / task.folder).is_dir():
        return glue_dir / task.folder
    others = [p for p in sorted(glue_dir.iterdir()) if p.is_dir() and _key(p.name) == task.name]
    return others[0] if others else None


def find_glue_files(folder: Path, task: GlueTask) -> dict[str, tuple[str, Path]]:
    """``{split name: (language, path)}`` of the files present: ``train``, ``valid_en``, ``test_en`` (MNLI:
    ``valid_m``, ``valid_mm``, ``test_m``, ``test_mm``). A folder without any of them is an error."""
    layout = MNLI_SPLIT_FILES if task.name == "mnli" else SPLIT_FILES
    found = {name: (language, folder / file) for file, name, language in layout if (folder / file).is_file()}
    if not found:
        raise InputFormatError(
            folder, None, f"no {task.folder} file here (looked for {', '.join(file for file, _, _ in layout)})"
        )
    return found


@dataclass
class GlueRows:
    path: str
    texts: tuple[list[str], ...]  # one list per text column of the task
    labels: list  # label index (UNLABELLED when the file has none), or the score (NaN) for regression
    index: list[int]  # GLUE's index/id column, or the row number from 0
    line_numbers: list[int]
    labelled: bool
    dropped_lines: list[int] = field(default_factory=list)  # malformed lines left out (``drop_malformed``)

    def __len__(self) -> int:
        return len(self.line_numbers)


def read_score(path, number: int, text: str) -> float:
    """An STS-B score: a number in 0..5."""
    try:
        score = float(text)
    except ValueError:
        score = math.nan
    low, high = SCORE_RANGE
    if not low <= score <= high:  # NaN fails too
        raise InputFormatError(path, number, f"score {text!r} is not a number in {low:g}..{high:g}")
    return score


def read_index(path, number: int, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InputFormatError(path, number, f"index {text!r} is not an integer") from None


def _shown(fields: list[str], width: int = 120) -> str:
    text = repr(fields)
    return text if len(text) <= width else text[: width - 4] + " ...]"


def _columns(path, task: GlueTask, first: list[str]) -> tuple[list[str], bool]:
    """The file's column names and whether its first line is a header (not when it has none: CoLA)."""
    if task.headerless and not set(task.texts) <= set(first) and len(first) == len(task.headerless):
        return list(task.headerless), False
    missing = [name for name in task.texts if name not in first]
    if missing:
        expected = (
            f" or no header and {len(task.headerless)} columns ({', '.join(task.headerless)})"
            if task.headerless
            else ""
        )
        raise InputFormatError(
            path,
            1,
            f"no {' and '.join(map(repr, missing))} column in the header "
            f"{_shown(first)}: not a {task.folder} file (expected {list(task.texts)}{expected})",
        )
    return first, True


def read_glue_file(path: str | Path, task: GlueTask, labels_required: bool, drop_malformed: bool = False) -> GlueRows:
    """One GLUE file's rows (see the module's docstring); ``labels_required`` for train and dev files;
    ``drop_malformed``: lines with a wrong number of columns or an empty text are left out, not refused."""
    read_label = read_score if task.regression else LabelReader(list(task.labels))
    unlabelled = math.nan if task.regression else UNLABELLED
    rows = GlueRows(str(path), tuple([] for _ in task.texts), [], [], [], labelled=False)
    columns = position = None
    for number, line in read_lines(path):
        if not line.strip():
            if drop_malformed and columns is not None:
                rows.dropped_lines.append(number)
                continue
            raise InputFormatError(path, number, "empty line")
        fields = line.split("\t")
        if columns is None:
            names, header = _columns(path, task, fields)
            columns = {name: i for i, name in reversed(list(enumerate(names)))}  # first of a repeated name
            rows.labelled = task.label in columns
            if labels_required and not rows.labelled:
                raise InputFormatError(path, 1, f"no {task.label!r} column: a train or dev file needs its labels")
            position = next((columns[name] for name in INDEX_COLUMNS if name in columns), None)
            if header:
                continue
        if len(fields) != len(names):
            if drop_malformed:
                rows.dropped_lines.append(number)
                continue
            raise InputFormatError(
                path,
                number,
                f"{len(fields)} tab-separated columns, the {'header has' if header else 'file has'} {len(names)}",
            )
        texts = [fields[columns[name]].strip() for name in task.texts]
        empty = next((name for name, text in zip(task.texts, texts, strict=True) if not text), None)
        if empty is not None:
            if drop_malformed:
                rows.dropped_lines.append(number)
                continue
            raise InputFormatError(path, number, f"empty {empty}")
        for text, column in zip(texts, rows.texts, strict=True):
            column.append(text)
        rows.labels.append(
            read_label(path, number, fields[columns[task.label]].strip()) if rows.labelled else unlabelled
        )
        rows.index.append(read_index(path, number, fields[position]) if position is not None else len(rows.index))
        rows.line_numbers.append(number)
    if columns is None:
        raise InputFormatError(path, None, "no examples (empty file)")
    if not rows.line_numbers:
        raise InputFormatError(path, None, "no examples (a header only)")
    return rows


XTREME_FOLDERS = ("xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa")


def _xtreme_hint(glue_dir: Path) -> str:
    found = [name for name in XTREME_FOLDERS if (glue_dir / name).is_dir()]
    return (
        f" ({glue_dir} holds {'/, '.join(found)}/: an XTREME download folder, for preprocess/xtreme/process.sh)"
        if found
        else ""
    )


def find_glue_tasks(glue_dir: str | Path, name: str) -> list[tuple[GlueTask, Path]]:
    """The task folders to prepare: the task named, or with ``ALL`` every one present (the absent ones logged)."""
    glue_dir = Path(glue_dir)
    if not glue_dir.is_dir():
        raise InputFormatError(glue_dir, None, "folder not found")
    tasks = list(GLUE_TASKS.values()) if name.upper() == "ALL" else [glue_task(name)]
    folders = {task.name: find_task_folder(glue_dir, task) for task in tasks}
    found = [(task, folders[task.name]) for task in tasks if folders[task.name] is not None]
    if not found and len(tasks) == 1:
        raise InputFormatError(glue_dir / tasks[0].folder, None, f"folder not found{_xtreme_hint(glue_dir)}")
    if not found:
        raise InputFormatError(
            glue_dir, None, f"no GLUE task folder ({', '.join(t.folder for t in tasks)}) here{_xtreme_hint(glue_dir)}"
        )
    absent = [task.folder for task in tasks if folders[task.name] is None]
    if absent:
        logger.warning("%s: no folder for %s: those tasks are not prepared", glue_dir, ", ".join(absent))
    return found

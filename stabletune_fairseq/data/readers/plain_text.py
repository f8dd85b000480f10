"""Plain-text documents for masked-LM training (``process.sh <text-folder> mlm ...``).

The rule: every ``*.txt`` file directly in the folder is read (in sorted name order), and a document is a
run of non-blank lines; a blank (or whitespace-only) line ends it. A file without blank lines is therefore
one document, and a file of blank-line-separated paragraphs is one document per paragraph. The lines of a
document are joined with a space. ``<folder>/valid/*.txt``, when present, are the held-out documents.

Bad input stops with ``file:line: reason``: bytes that are not UTF-8, a NUL byte (a binary file named
``.txt``), a file with no text at all, a folder without ``*.txt`` files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputFormatError
from ..text_lines import read_lines

VALID_FOLDER = "valid"


@dataclass(frozen=True)
class Document:
    path: str
    line: int  # first line of the document in its file
    text: str


def text_files(folder: str | Path) -> list[Path]:
    """The ``*.txt`` files directly in ``folder``, sorted; an error naming the folder when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFormatError(folder, None, "not a folder of *.txt files")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".txt")
    if not files:
        raise InputFormatError(folder, None, "no *.txt file in this folder (documents for masked-LM training)")
    return files


def read_documents(path: str | Path) -> list[Document]:
    """The documents of one file (blank-line separated), with the line each starts on."""
    documents, lines, first = [], [], None
    for number, line in read_lines(path):
        if "\x00" in line:
            raise InputFormatError(path, number, "holds a NUL byte: a binary file, not text")
        if line.strip():
            if first is None:
                first = number
            lines.append(line.strip())
        elif lines:
            documents.append(Document(str(path), first, " ".join(lines)))
            lines, first = [], None
    if lines:
        documents.append(Document(str(path), first, " ".join(lines)))
    if not documents:
        raise InputFormatError(path, None, "no text: the file is empty or holds only blank lines")
    return documents


def read_folder(folder: str | Path) -> list[Document]:
    """Every document of every ``*.txt`` file of ``folder``, file by file in sorted order."""
    return [doc for path in text_files(folder) for doc in read_documents(path)]

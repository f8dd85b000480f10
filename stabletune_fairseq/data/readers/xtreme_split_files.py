"""Find the files of one XTREME task folder: ``train-en.tsv``, ``dev-LG.tsv`` and ``test-LG.tsv``.

A test file may also be named ``test-LG.unlabeled.tsv`` (words only); when both names exist the
labelled one is used.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..errors import InputFormatError

logger = logging.getLogger(__name__)

_FILE = re.compile(r"^(train|dev|test)-([A-Za-z_-]+)(\.unlabeled)?\.tsv$")
_SPLIT_PREFIX = {"train": "train", "dev": "valid", "test": "test"}


def find_split_files(folder: Path) -> dict[str, tuple[str, Path]]:
    """``{split name: (language, path)}``: ``train``, ``valid_<lang>`` and ``test_<lang>``."""
    if not folder.is_dir():
        raise InputFormatError(folder, None, "folder not found")
    found = {}
    for path in sorted(folder.iterdir()):
        match = _FILE.match(path.name)
        if not match:
            continue
        kind, language, unlabeled = match.groups()
        name = "train" if kind == "train" else f"{_SPLIT_PREFIX[kind]}_{language}"
        if kind == "train" and language != "en":
            logger.warning("ignoring %s: training data is English (translations come with translate-train)", path)
            continue
        if name in found:
            kept, dropped = (found[name][1], path) if unlabeled else (path, found[name][1])
            logger.warning("%s and %s both exist: using %s", kept.name, dropped.name, kept.name)
            if not unlabeled:
                found[name] = (language, path)
            continue
        found[name] = (language, path)
    if "train" not in found:
        raise InputFormatError(folder / "train-en.tsv", None, "file not found (the English training set)")
    if not any(name.startswith("valid_") for name in found):
        raise InputFormatError(folder, None, "no dev-<lang>.tsv file")
    return found

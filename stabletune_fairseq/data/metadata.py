"""``metadata.json`` of a preprocessed task folder: labels, languages, and per split its source file,
number of examples, truncations and unknown pieces. Tasks, evaluation and recipes read it from here."""

from __future__ import annotations

import json
from pathlib import Path

FILE_NAME = "metadata.json"
FORMAT_VERSION = 1


def load_metadata(data_dir: str | Path) -> dict:
    path = Path(data_dir) / FILE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {data_dir} a folder written by preprocess/xtreme/process.sh?")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format version {meta.get('format_version')}, this code reads {FORMAT_VERSION}; re-run process.sh"
        )
    return meta


def save_metadata(data_dir: str | Path, meta: dict) -> None:
    meta = {"format_version": FORMAT_VERSION, **meta}
    (Path(data_dir) / FILE_NAME).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")


def split_languages(meta: dict, prefix: str) -> list[str]:
    """Languages that have a ``<prefix>_<lang>`` split (prefix ``valid`` or ``test``), sorted."""
    return sorted(s["language"] for name, s in meta["splits"].items() if name.startswith(prefix + "_"))

"""Line-by-line reading of UTF-8 text files with precise errors (BOM, CRLF and bad bytes handled)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO, Iterator

from .errors import InputFormatError


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without its line break). A UTF-8 BOM is dropped; a ``.gz`` file is
    decompressed (TED2020-style corpora are distributed gzipped)."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(path, None, "file not found")
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        yield from decode_lines(f, path)


def decode_lines(stream: BinaryIO, name: str | Path) -> Iterator[tuple[int, str]]:
    """``read_lines`` of an open binary stream (e.g. standard input), errors naming it ``name``."""
    for number, raw in enumerate(stream, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputFormatError(name, number, f"not valid UTF-8 ({err.reason} at byte {err.start})") from None
        yield number, text.rstrip("\r\n")

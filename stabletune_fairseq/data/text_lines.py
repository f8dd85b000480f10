"""Line-by-line reading of UTF-8 text files with precise errors (BOM, CRLF and bad bytes handled)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .errors import InputFormatError


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without its line break). A UTF-8 BOM is dropped."""
    path = Path(path)
    if not path.is_file():
        raise InputFormatError(path, None, "file not found")
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputFormatError(path, number, f"not valid UTF-8 ({err.reason} at byte {err.start})") from None
            yield number, text.rstrip("\r\n")

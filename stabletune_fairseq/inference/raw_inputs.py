"""Raw prediction inputs, read and checked before anything is encoded or predicted.

One input per task family: a sentence pair ``(text_a, text_b)``, a sentence as a list of words, or a
question ``{"question", "context"[, "id"]}``. From a file (``stabletune-predict``) every line is one input:
``text_a<TAB>text_b``, words separated by whitespace, or a JSON object. From Python (``predict()``) the
inputs are those values themselves. Every input is checked first, so a run over thousands of lines fails
at once and names the place (``<file>:<line>``, or ``inputs[i]`` from Python) and the reason, never in the
middle of prediction; nothing is dropped: a blank line is refused, since the output (one line per input)
must stay aligned with the input. Texts are stripped as the XTREME readers strip them.
"""

from __future__ import annotations

import json
from typing import Iterable

from ..data.errors import InputFormatError

LINE_FORMATS = {
    "sentence_pair": "text_a<TAB>text_b",
    "tagging": "one sentence, its words separated by whitespace",
    "qa": 'a JSON object {"question": ..., "context": ...}',
}


def read_inputs(kind: str, task: str, lines: Iterable[tuple[int, str]], name: str) -> list:
    """The inputs of numbered ``lines`` (``data/text_lines.py``) of the file ``name``, one a line, checked."""
    inputs = []
    for number, line in lines:
        if not line.strip():
            raise InputFormatError(
                name, number, f"blank line: every line is one input ({LINE_FORMATS[kind]}); remove it"
            )
        try:
            item = _parse_line(kind, task, line)
        except ValueError as err:
            raise InputFormatError(name, number, str(err)) from None
        inputs.append(check_input(kind, task, item, name, number))
    if not inputs:
        raise InputFormatError(name, None, f"no inputs (empty input; expected {LINE_FORMATS[kind]} per line)")
    return inputs


def check_inputs(kind: str, task: str, items) -> list:
    """``predict()``'s inputs, checked and normalised (errors name ``inputs[i]``)."""
    if isinstance(items, (str, dict)):
        raise InputFormatError("inputs", None, f"expected a list of inputs, got one {type(items).__name__}")
    return [check_input(kind, task, item, f"inputs[{i}]", None) for i, item in enumerate(items)]


def _parse_line(kind: str, task: str, line: str):
    if kind == "sentence_pair":
        fields = line.split("\t")
        if len(fields) == 1:
            raise ValueError(f"no tab: {task} classifies sentence pairs, one text_a<TAB>text_b a line")
        if len(fields) > 2:
            raise ValueError(f"{len(fields)} tab-separated columns, expected 2 (text_a<TAB>text_b)")
        return tuple(fields)
    if kind == "tagging":
        return line.split()
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON: {err.msg} (column {err.colno})") from None


def check_input(kind: str, task: str, item, path: str, line: int | None):
    """One input, normalised (stripped texts, a list of words, a question dict); ``InputFormatError`` at
    ``path``/``line`` if it is not one."""

    def fail(reason: str):
        return InputFormatError(path, line, reason)

    if kind == "sentence_pair":
        if isinstance(item, str):  # XNLI and PAWS-X, the sentence tasks there are, read pairs only
            raise fail(f"a single text, but {task} classifies sentence pairs: give (text_a, text_b)")
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not all(isinstance(t, str) for t in item):
            raise fail(f"expected a sentence pair (text_a, text_b) of two strings, got {item!r:.80}")
        for name, text in zip(("text_a", "text_b"), item):
            if not text.strip():
                raise fail(f"empty {name}")
        return item[0].strip(), item[1].strip()
    if kind == "tagging":
        if isinstance(item, str) or not isinstance(item, (list, tuple)) or not all(isinstance(w, str) for w in item):
            raise fail(f"expected a sentence as a list of words (strings), got {item!r:.80}")
        if not item:
            raise fail("a sentence without words")
        empty = next((k for k, word in enumerate(item) if not word.strip()), None)
        if empty is not None:
            raise fail(f"word {empty + 1} is empty")
        return list(item)
    if not isinstance(item, dict):
        raise fail(f'expected a JSON object {{"question": ..., "context": ...}}, got {type(item).__name__}')
    for key in ("question", "context"):
        if not isinstance(item.get(key), str):
            raise fail(f'"{key}" must be a string' if key in item else f'missing "{key}"')
        if not item[key].strip():
            raise fail(f"empty {key}")
    if "id" in item and not isinstance(item["id"], str):
        raise fail(f'"id" must be a string, got {type(item["id"]).__name__}')
    return {key: item[key] for key in ("id", "question", "context") if key in item}

"""Read extractive-QA files in SQuAD's JSON format (SQuAD v1.1/v2.0, XQuAD, MLQA, TyDiQA-GoldP).

``{"data": [{"paragraphs": [{"context": str, "qas": [{"id", "question", "answers": [{"text",
"answer_start"}], "is_impossible"?}]}]}]}``. Every question is checked; a structural problem fails with
the file, the line of the question (found by its id, or the JSON parser's line) and the reason.

Answers: a v2.0 question marked ``is_impossible`` (or with no answers in a v2.0 file) is unanswerable;
a file whose answers are all empty texts (XTREME ships TyDiQA-GoldP dev, its test set, that way) is
read as unlabelled. An answer whose text is not at its offset is searched nearby (counted as realigned)
and otherwise kept for scoring but not trained on (counted as unmatched); see ``locate_answer``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputFormatError


@dataclass
class QAExample:
    id: str
    question: str
    context: str
    answers: list[str]  # gold texts (empty: unanswerable or unlabelled)
    answer_start: int = -1  # character offset of the first answer in ``context`` (-1: none to train on)
    answer_text: str = ""
    impossible: bool = False


@dataclass
class QAFile:
    path: str
    examples: list[QAExample] = field(default_factory=list)
    labelled: bool = True
    version: str = ""
    answers_realigned: int = 0  # answer text found near, not at, its offset
    answers_unmatched: int = 0  # answer text not found in the context: scored, not trained on
    duplicate_ids: list[str] = field(default_factory=list)  # ids seen before in the file


def line_of_id(path: str | Path, qid: str, occurrence: int = 1) -> int | None:
    """Line of the ``occurrence``-th mention of question id ``qid`` in a SQuAD file (for error messages)."""
    return _line_of(Path(path).read_text(encoding="utf-8-sig"), json.dumps(qid), occurrence)


def _line_of(text: str, needle: str, occurrence: int = 1) -> int | None:
    position = -1
    for _ in range(occurrence):
        position = text.find(needle, position + 1)
        if position < 0:
            return None
    return text.count("\n", 0, position) + 1


def locate_answer(context: str, text: str, start: int) -> int | None:
    """Character offset of ``text`` in ``context``: ``start`` when it is there, else the occurrence
    nearest to ``start`` (annotators' offsets are sometimes off by a few characters), else None."""
    if context[start : start + len(text)] == text:
        return start
    best = None
    position = context.find(text)
    while position >= 0:
        if best is None or abs(position - start) < abs(best - start):
            best = position
        position = context.find(text, position + 1)
    return best


def read_squad_file(path: str | Path) -> QAFile:
    path = Path(path)
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputFormatError(path, None, f"not UTF-8 ({err.reason} at byte {err.start})") from None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as err:
        raise InputFormatError(path, err.lineno, f"invalid JSON: {err.msg}") from None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise InputFormatError(path, None, 'not SQuAD format: expected {"data": [...]} at the top')
    out = QAFile(str(path), version=str(document.get("version", "")))
    v2 = out.version.startswith("v2")
    seen: set[str] = set()
    for a, article in enumerate(document["data"]):
        for p, paragraph in enumerate(_field(article, "paragraphs", list, path, raw, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, path, raw, where)
            for q, qa in enumerate(_field(paragraph, "qas", list, path, raw, where)):
                out.examples.append(_example(qa, context, path, raw, f"{where}.qas[{q}]", v2, seen, out))
    if not out.examples:
        raise InputFormatError(path, None, "no questions")
    out.labelled = any(e.answers or e.impossible for e in out.examples)
    return out


def _field(obj, key: str, kind, path, raw: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        line = _line_of(raw, json.dumps(obj.get("id"))) if isinstance(obj, dict) and "id" in obj else None
        raise InputFormatError(path, line, f'{where}: missing "{key}"')
    if not isinstance(obj[key], kind):
        raise InputFormatError(path, None, f'{where}: "{key}" is a {type(obj[key]).__name__}, expected {kind.__name__}')
    return obj[key]


def _example(qa, context: str, path, raw: str, where: str, v2: bool, seen: set, out: QAFile) -> QAExample:
    qid = _field(qa, "id", str, path, raw, where)
    fail = lambda reason: InputFormatError(path, _line_of(raw, json.dumps(qid)), f"question {qid}: {reason}")  # noqa: E731
    if qid in seen:  # XTREME's TyDiQA-GoldP training file reuses ids: fatal only where ids key predictions
        out.duplicate_ids.append(qid)
    seen.add(qid)
    question = _field(qa, "question", str, path, raw, where)
    if not question.strip():
        raise fail("empty question")
    impossible = bool(qa.get("is_impossible", False))
    answers = [] if impossible else _field(qa, "answers", list, path, raw, where)
    texts, starts = [], []
    for answer in answers:
        if (
            not isinstance(answer, dict)
            or not isinstance(answer.get("text"), str)
            or not isinstance(answer.get("answer_start"), int)
        ):
            raise fail('an answer needs "text" (string) and "answer_start" (integer)')
        if answer["text"] == "":
            continue  # an empty answer is no answer (XTREME's unlabelled TyDiQA dev)
        if not 0 <= answer["answer_start"] < len(context):
            raise fail(f"answer_start {answer['answer_start']} outside the context ({len(context)} characters)")
        texts.append(answer["text"])
        starts.append(answer["answer_start"])
    example = QAExample(qid, question, context, texts, impossible=impossible or (v2 and not texts))
    if texts:
        found = locate_answer(context, texts[0], starts[0])
        if found is None:
            out.answers_unmatched += 1
        else:
            out.answers_realigned += found != starts[0]
            example.answer_start, example.answer_text = found, texts[0]
    return example

"""Exact match and token F1 of extractive QA answers (SQuAD v1.1/2.0, XQuAD, TyDiQA-GoldP and MLQA).

Two normalisations, written from their published definitions:

* ``style="squad"`` (SQuAD v1.1, also used for XQuAD and TyDiQA-GoldP): lowercase, delete the ASCII
  punctuation of ``string.punctuation``, drop the whole words ``a``/``an``/``the``, split on whitespace.
  ``lang`` is ignored.
* ``style="mlqa"`` (Lewis et al. 2020): lowercase, delete every Unicode punctuation character (category
  ``P*``) and ``string.punctuation`` (which also holds ASCII symbols such as ``$`` and ``+``), drop the
  language's articles (Arabic: a leading ``ال`` of every word), split on whitespace; Chinese is split into
  single Han characters and whitespace-separated runs of the other characters ("mixed segmentation").

EM compares the token sequences (the same as comparing the normalised strings, whose tokens are joined by
one space). F1 is the F1 of the multiset overlap of the tokens. A question scores the maximum over its gold
answers; SQuAD 2.0's unanswerable questions have no gold answer, and then the only gold is ``""``: an answer
that normalises to nothing scores 1, any other 0 (and an empty answer against a non-empty gold scores 0).
"""
from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

STYLES = ("squad", "mlqa")

_ASCII_PUNCTUATION = frozenset(string.punctuation)
_SQUAD_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MLQA_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einer|eines|einem|einen|der|die|das|des|dem|den)\b"),
}
_ARABIC_ARTICLE = "ال"

# Han ideographs (the characters Chinese text is written in): unified ideographs with their extensions and
# the compatibility ideographs. Kana and Hangul are not Chinese and stay in whitespace runs.
_HAN_RANGES = (
    (0x3400, 0x4DBF),  # extension A
    (0x4E00, 0x9FFF),  # unified ideographs
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0x20000, 0x2FA1F),  # extensions B-F and the compatibility supplement
    (0x30000, 0x323AF),  # extensions G-H
)


def normalize_answer(text: str, lang: str | None = None, style: str = "squad") -> list[str]:
    """The tokens of ``text`` after the normalisation of ``style`` (``lang`` only matters for ``"mlqa"``)."""
    if style == "squad":
        return _squad_normalize(text).split()
    if style == "mlqa":
        return _mlqa_tokens(_mlqa_normalize(text, lang), lang)
    raise ValueError(f"unknown answer normalisation style {style!r}; expected one of {STYLES}")


def exact_match(prediction: str, golds: list[str], style: str = "squad", lang: str | None = None) -> float:
    """1.0 if the normalised prediction equals some normalised gold answer, else 0.0."""
    predicted = normalize_answer(prediction, lang, style)
    return max(float(predicted == normalize_answer(gold, lang, style)) for gold in _gold_answers(golds))


def f1(prediction: str, golds: list[str], style: str = "squad", lang: str | None = None) -> float:
    """The best token-overlap F1 (0..1) of the prediction against the gold answers."""
    predicted = normalize_answer(prediction, lang, style)
    return max(token_f1(predicted, normalize_answer(gold, lang, style)) for gold in _gold_answers(golds))


def token_f1(predicted: list[str], gold: list[str]) -> float:
    """F1 of the multiset overlap of two token lists; two empty lists agree (1.0), one empty list scores 0."""
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def score_questions(
    predictions: dict[str, str], golds: dict[str, list[str]], style: str = "squad", lang: str | None = None
) -> dict:
    """EM and F1 in percent averaged over the questions of ``golds``.

    A question without a prediction scores 0 and is counted in ``missing``; predictions for ids that are not
    in ``golds`` are ignored and counted in ``extra``. With no questions at all both scores are 0.0.
    """
    total_em = total_f1 = 0.0
    missing = 0
    for qid, answers in golds.items():
        if qid not in predictions:
            missing += 1
            continue
        total_em += exact_match(predictions[qid], answers, style, lang)
        total_f1 += f1(predictions[qid], answers, style, lang)
    n = len(golds)
    extra = sum(1 for qid in predictions if qid not in golds)
    return {
        "exact_match": 100.0 * total_em / n if n else 0.0,
        "f1": 100.0 * total_f1 / n if n else 0.0,
        "n": n,
        "missing": missing,
        "extra": extra,
    }


def _gold_answers(golds: list[str]) -> list[str]:
    # SQuAD 2.0: an unanswerable question has no gold answer; the empty answer is then the right one
    return list(golds) if golds else [""]


def _squad_normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCTUATION)
    return _SQUAD_ARTICLES.sub(" ", text)


def _is_punctuation(ch: str) -> bool:
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


def _mlqa_normalize(text: str, lang: str | None) -> str:
    text = "".join(ch for ch in text.lower() if not _is_punctuation(ch))
    if lang == "ar":
        # the article is a prefix, not a word of its own, so a word-boundary regex cannot find it
        return " ".join(word.removeprefix(_ARABIC_ARTICLE) for word in text.split())
    articles = _MLQA_ARTICLES.get(lang)
    return articles.sub(" ", text) if articles else text


def _is_han(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _HAN_RANGES)


def _mlqa_tokens(text: str, lang: str | None) -> list[str]:
    if lang != "zh":
        return text.split()
    # Chinese is not written with spaces: every Han character is a token, other runs split on whitespace
    tokens: list[str] = []
    run: list[str] = []
    for ch in text:
        if _is_han(ch) or ch.isspace():
            if run:
                tokens.append("".join(run))
                run = []
            if not ch.isspace():
                tokens.append(ch)
        else:
            run.append(ch)
    if run:
        tokens.append("".join(run))
    return tokens

"""Exact match and token F1 of extractive QA answers (SQuAD v1.1/2.0, XQuAD, TyDiQA-GoldP and MLQA).

Two normalisations:

* ``style="squad"`` (SQuAD v1.1, also used for XQuAD and TyDiQA-GoldP): lowercase, delete the ASCII
  punctuation of ``string.punctuation``, drop the whole words ``a``/``an``/``the``, split on whitespace.
  ``lang`` is ignored.
* ``style="mlqa"`` follows the official MLQA evaluation script (``mlqa_evaluation_v1.py`` of
  facebookresearch/MLQA, Lewis et al. 2020) rule for rule; it is re-implemented here, not copied. In order:

  1. lowercase (``str.lower``);
  2. delete every character whose Unicode category starts with ``P`` and every character of
     ``string.punctuation`` (which adds ASCII symbols such as ``$``, ``+``, ``<``, ``^``, ``|``);
  3. replace the articles of the answer language by a space: en ``a an the``; es ``un una unos unas el la
     los las``; de ``ein eine einen einem eines einer der die das den dem des``; vi ``của là cái chiếc
     những`` (each a whole word between regex ``\\b`` boundaries); ar: EVERY occurrence of ``ال``, also
     inside or at the end of a word (``مالك`` becomes ``م ك``, two tokens); hi and zh have no articles;
  4. tokens: zh uses "mixed segmentation": each character of U+4E00..U+9FA5 (and only those, so neither
     the CJK extensions, U+9FA6..U+9FFF nor the compatibility ideographs) is a token of its own, and the
     runs of other characters between them are split on whitespace; en, es, de, vi, ar and hi split on
     whitespace. Any other ``lang`` (``None`` included) is an error (``ValueError``), as in the script.

  EM compares the normalised strings (the tokens joined by one space, which is the same as comparing the
  token lists). F1 is the F1 of the multiset overlap of the tokens and is 0 whenever nothing is shared,
  so also when the prediction and a gold answer both normalise to nothing (EM is 1 there).

For both styles a question scores the maximum over its gold answers. SQuAD 2.0's unanswerable questions
have no gold answer (the MLQA script has none of these); such a question scores 1 (EM and F1) for an
answer that normalises to nothing and 0 for any other. In ``style="squad"`` two empty token lists have
F1 1, and an empty answer against a non-empty gold scores 0.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter

STYLES = ("squad", "mlqa")

_ASCII_PUNCTUATION = frozenset(string.punctuation)
_SQUAD_ARTICLES = re.compile(r"\b(a|an|the)\b")

# MLQA's seven answer languages: how each loses its articles (None: it has none) and is tokenised
_MLQA_ARTICLES = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einer|eines|einem|einen|der|die|das|des|dem|den)\b"),
    "ar": re.compile("ال"),  # anywhere, not only as a word's prefix
    "hi": None,
    "zh": None,
}
MLQA_LANGUAGES = tuple(_MLQA_ARTICLES)
# the only characters the script cuts out one by one in Chinese text (a subset of the unified ideographs)
_MLQA_CHINESE_FIRST, _MLQA_CHINESE_LAST = 0x4E00, 0x9FA5


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
    if not golds:
        return float(not predicted)
    return max(float(predicted == normalize_answer(gold, lang, style)) for gold in golds)


def f1(prediction: str, golds: list[str], style: str = "squad", lang: str | None = None) -> float:
    """The best token-overlap F1 (0..1) of the prediction against the gold answers."""
    predicted = normalize_answer(prediction, lang, style)
    if not golds:
        return float(not predicted)
    pair_f1 = _overlap_f1 if style == "mlqa" else token_f1
    return max(pair_f1(predicted, normalize_answer(gold, lang, style)) for gold in golds)


def token_f1(predicted: list[str], gold: list[str]) -> float:
    """F1 of the multiset overlap of two token lists; two empty lists agree (1.0), one empty list scores 0."""
    if not predicted or not gold:
        return float(predicted == gold)
    return _overlap_f1(predicted, gold)


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


def _overlap_f1(predicted: list[str], gold: list[str]) -> float:
    # 0 when no token is shared, whether or not the lists are empty
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _squad_normalize(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCTUATION)
    return _SQUAD_ARTICLES.sub(" ", text)


def _is_punctuation(ch: str) -> bool:
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


def _mlqa_normalize(text: str, lang: str | None) -> str:
    if lang not in _MLQA_ARTICLES:
        raise ValueError(f"MLQA scores answers in {', '.join(MLQA_LANGUAGES)}; got language {lang!r}")
    text = "".join(ch for ch in text.lower() if not _is_punctuation(ch))
    articles = _MLQA_ARTICLES[lang]
    return articles.sub(" ", text) if articles is not None else text


def _is_mlqa_chinese(ch: str) -> bool:
    return _MLQA_CHINESE_FIRST <= ord(ch) <= _MLQA_CHINESE_LAST


def _mlqa_tokens(text: str, lang: str | None) -> list[str]:
    if lang != "zh":
        return text.split()
    # Chinese is not written with spaces: every character of the script's range is a token, and what lies
    # between two of them is split on whitespace. (The script also cuts out punctuation one by one here, but
    # punctuation is gone by now.)
    tokens: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if _is_mlqa_chinese(ch):
            tokens += text[start:i].split()
            tokens.append(ch)
            start = i + 1
    return tokens + text[start:].split()

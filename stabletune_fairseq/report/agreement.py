"""Cross-lingual agreement: how often a language's prediction equals the English prediction of the same
example, from the prediction files ``stabletune-evaluate`` writes.

Only where dev sets are parallel: sentence-pair tasks whose language files have the same number of lines
(XNLI and PAWS-X dev are translations of one English set, in the same order), and QA questions that share
an id with an English question (XQuAD; MLQA's parallel questions). For QA the agreement is the token F1
between the two answers (SQuAD normalisation): across scripts only names, numbers and shared words can
match, so read it as a lower bound, comparable between stages, not between languages. Tagging sets
(UD-POS, PAN-X) are not parallel: no agreement; nor is there any without English and another language (GLUE).
"""

from __future__ import annotations

import json
import os

from ..metrics.qa_scores import f1

TAGGING = ("udpos", "panx")


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines()


def agreement(results_dir: str, results: dict) -> dict[str, dict] | None:
    """``{lang: {"agreement": percent, "n": compared examples}}`` for every language but English, or None
    when the task's dev sets are not parallel (or there is no English prediction file)."""
    split, languages = results["split"], [lang for lang in results["per_language"] if lang != "en"]
    if results["task"] in TAGGING or not languages or "en" not in results["per_language"]:
        return None  # GLUE: one dev set (en), or MNLI's m and mm, which are not translations of each other
    folder = os.path.join(results_dir, "predictions")
    json_file, tsv_file = (os.path.join(folder, f"{split}-en{suffix}") for suffix in (".json", ".tsv"))
    out = {}
    if os.path.exists(json_file):
        with open(json_file, encoding="utf-8") as handle:
            english = json.load(handle)
        for lang in languages:
            with open(os.path.join(folder, f"{split}-{lang}.json"), encoding="utf-8") as handle:
                answers = json.load(handle)
            shared = [qid for qid in answers if qid in english]
            if shared:
                score = 100.0 * sum(f1(answers[qid], [english[qid]]) for qid in shared) / len(shared)
                out[lang] = {"agreement": score, "n": len(shared)}
    elif os.path.exists(tsv_file):
        english = _lines(tsv_file)
        for lang in languages:
            predicted = _lines(os.path.join(folder, f"{split}-{lang}.tsv"))
            if len(predicted) == len(english):  # parallel: example i is the translation of English example i
                same = sum(a == b for a, b in zip(predicted, english))
                out[lang] = {"agreement": 100.0 * same / len(english), "n": len(english)}
    return out or None

"""The official SQuAD v2.0 evaluation (``evaluate-v2.0.py``, Rajpurkar, Jia and Liang 2018), re-implemented.

Rule for rule as the official script computes it (its answer normalisation is ``qa_scores``' ``"squad"`` style:
lowercase, ASCII punctuation deleted, the words a/an/the dropped, split on whitespace):

* A question has an answer iff its ``answers`` list is not empty. Its gold texts are those that do not normalise
  to nothing; none left (an unanswerable question) means the one gold answer ``""``.
* Raw scores per question, the best over its gold texts: exact (the normalised strings are equal) and token F1
  (the F1 of the multiset overlap; if either side has no token, 1 iff both have none).
* ``na_prob`` per question and a threshold (default 1.0): a question whose ``na_prob > threshold`` counts as
  answered "no answer" (scores 1 iff it is unanswerable); the others keep their raw scores. Without na_probs every
  question has ``na_prob`` 0.0.
* ``exact, f1, total`` over all questions, ``HasAns_*`` over the answerable and ``NoAns_*`` over the unanswerable
  ones (those keys only when there are such questions), in percent.
* With na_probs, ``best_exact, best_exact_thresh, best_f1, best_f1_thresh``: the best score any threshold gives,
  from the raw scores. Start as if every question were answered "" (the number of unanswerable questions right,
  threshold 0.0); walk the questions by increasing ``na_prob`` (ties in the order of the na_prob mapping), answering
  each with its prediction: an answerable one adds its raw score, an unanswerable one with a non-empty prediction
  string loses 1 (an empty one adds 0); each strict improvement records the score and that question's ``na_prob``
  as the threshold. The best score is divided by the number of questions.

A question without a prediction, or without an ``na_prob`` when na_probs are given, is an error here (the official
script stops on it too, with a ``KeyError``); predictions and na_probs for ids that are not questions are ignored.
Sums run in the order of the questions, so the numbers are the official script's to the last bit.

Command line, as the official script's: ``python -m stabletune_fairseq.metrics.squad_v2 data.json pred.json
[--na-prob-file na_prob.json] [--na-prob-thresh 1.0] [--out-file eval.json]`` prints the results as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from .qa_scores import exact_match, f1, normalize_answer

DEFAULT_NA_PROB_THRESH = 1.0


def gold_texts(answers: list[str]) -> list[str]:
    """The gold texts a question is scored against: those that normalise to something, else ``[""]``."""
    return [text for text in answers if normalize_answer(text)] or [""]


def raw_scores(golds: Mapping[str, list[str]], predictions: Mapping[str, str]) -> tuple[dict, dict]:
    """Per question id of ``golds`` (id -> its answers' texts, ``[]`` when unanswerable): exact and F1, 0..1."""
    missing = [qid for qid in golds if qid not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} of {len(golds)} questions have no prediction (the first: {missing[0]!r})")
    exact, f1_scores = {}, {}
    for qid, answers in golds.items():
        texts = gold_texts(answers)
        exact[qid] = exact_match(predictions[qid], texts)
        f1_scores[qid] = f1(predictions[qid], texts)
    return exact, f1_scores


def apply_threshold(scores: dict, na_probs: Mapping[str, float], has_answer: dict, threshold: float) -> dict:
    """The scores with every question whose ``na_prob > threshold`` answered "no answer"."""
    missing = [qid for qid in scores if qid not in na_probs]
    if missing:
        raise ValueError(f"{len(missing)} questions have no na_prob (the first: {missing[0]!r})")
    return {qid: float(not has_answer[qid]) if na_probs[qid] > threshold else score for qid, score in scores.items()}


def best_threshold(
    predictions: Mapping[str, str], scores: dict, na_probs: Mapping[str, float], has_answer: dict
) -> tuple[float, float]:
    """(best score in percent, its threshold) over all thresholds, from the raw ``scores`` (module docstring)."""
    current = best = sum(not answered for answered in has_answer.values())
    threshold = 0.0
    for qid in sorted(na_probs, key=lambda q: na_probs[q]):  # stable: ties keep the mapping's order
        if qid not in scores:
            continue
        if has_answer[qid]:
            current += scores[qid]
        elif predictions[qid]:  # the prediction string as given, not normalised
            current -= 1
        if current > best:
            best, threshold = current, na_probs[qid]
    return 100.0 * best / len(scores), threshold


def _averages(exact: dict, f1_scores: dict, qids: list[str]) -> tuple[float, float, int]:
    return (
        100.0 * sum(exact[q] for q in qids) / len(qids),
        100.0 * sum(f1_scores[q] for q in qids) / len(qids),
        len(qids),
    )


def evaluate_v2(
    golds: Mapping[str, list[str]],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    na_prob_thresh: float = DEFAULT_NA_PROB_THRESH,
) -> dict:
    """The official SQuAD v2.0 results (module docstring) of ``predictions`` (id -> answer text) against ``golds``
    (id -> the texts of its ``answers``, ``[]`` for an unanswerable question), with the keys in the official order."""
    if not golds:
        raise ValueError("no questions to score")
    has_answer = {qid: bool(answers) for qid, answers in golds.items()}
    exact, f1_scores = raw_scores(golds, predictions)
    given = na_probs is not None
    na_probs = na_probs if given else {qid: 0.0 for qid in predictions}
    exact_t = apply_threshold(exact, na_probs, has_answer, na_prob_thresh)
    f1_t = apply_threshold(f1_scores, na_probs, has_answer, na_prob_thresh)
    results = {}
    for prefix, answered in (("", None), ("HasAns_", True), ("NoAns_", False)):
        qids = [qid for qid in golds if answered is None or has_answer[qid] == answered]
        if qids:
            results.update(zip((prefix + "exact", prefix + "f1", prefix + "total"), _averages(exact_t, f1_t, qids)))
    if given:
        results["best_exact"], results["best_exact_thresh"] = best_threshold(predictions, exact, na_probs, has_answer)
        results["best_f1"], results["best_f1_thresh"] = best_threshold(predictions, f1_scores, na_probs, has_answer)
    return results


def read_golds(path: str) -> dict[str, list[str]]:
    """Question id -> the texts of its ``answers`` (``[]``: unanswerable) of a SQuAD-format JSON file, as the
    official script reads it (``is_impossible`` and ``plausible_answers`` play no part)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    return {
        qa["id"]: [answer["text"] for answer in qa["answers"]]
        for article in data
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stabletune_fairseq.metrics.squad_v2",
        description="The official SQuAD v2.0 evaluation (evaluate-v2.0.py), re-implemented.",
    )
    parser.add_argument("data_file", metavar="data.json", help="SQuAD-format data with the gold answers")
    parser.add_argument("pred_file", metavar="pred.json", help="predictions: {question id: answer text}")
    parser.add_argument(
        "--out-file", "-o", metavar="eval.json", help="write the results there instead of printing them"
    )
    parser.add_argument(
        "--na-prob-file",
        "-n",
        metavar="na_prob.json",
        help="{question id: no-answer score}; stabletune-evaluate writes predictions/<split>-<lang>.na_prob.json",
    )
    parser.add_argument(
        "--na-prob-thresh",
        "-t",
        type=float,
        default=DEFAULT_NA_PROB_THRESH,
        help='predict "" if the no-answer score exceeds this (default 1.0)',
    )
    args = parser.parse_args(argv)
    with open(args.pred_file, encoding="utf-8") as f:
        predictions = json.load(f)
    na_probs = None
    if args.na_prob_file:
        with open(args.na_prob_file, encoding="utf-8") as f:
            na_probs = json.load(f)
    try:
        results = evaluate_v2(read_golds(args.data_file), predictions, na_probs, args.na_prob_thresh)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.out_file:
        with open(args.out_file, "w", encoding="utf-8") as f:
            json.dump(results, f)
    else:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

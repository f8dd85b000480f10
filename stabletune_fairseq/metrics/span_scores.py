"""Per-language EM/F1 of extractive QA during validation, from sums over whole questions.

A validation batch holds every window of its questions, so each question is decoded and scored in the
step that sees it; the steps log ``em_sum_<lang>``, ``f1_sum_<lang>`` and ``nquestions_<lang>``, and
``em_<lang>``/``f1_<lang>`` and their averages ``em_avg``/``f1_avg`` are derived from the sums over
the whole subset (distributed runs sum them across ranks), exactly as scoring the subset at once.
"""

from __future__ import annotations

from .per_language import log_language_sums

EM, F1, COUNT = "em_sum_", "f1_sum_", "nquestions_"


def span_score_counts(scores: dict[str, list[tuple[float, float]]], languages: list[str]) -> dict[str, float]:
    """Sums for every language of the task (zeros included, so every worker logs the same keys);
    ``scores``: language -> [(em, f1) of each question, in 0..1]."""
    counts = {}
    for name in languages:
        pairs = scores.get(name, [])
        counts[EM + name] = float(sum(em for em, _ in pairs))
        counts[F1 + name] = float(sum(f1 for _, f1 in pairs))
        counts[COUNT + name] = len(pairs)
    return counts


def log_span_scores(logging_outputs) -> None:
    log_language_sums(
        logging_outputs, COUNT, (EM, F1), {"em": lambda m, n: _mean(m, EM, n), "f1": lambda m, n: _mean(m, F1, n)}
    )


def _mean(meters, key: str, name: str) -> float:
    # float(): in distributed runs fairseq sums the values as tensors
    return 100.0 * float(meters[key + name].sum) / float(meters[COUNT + name].sum)

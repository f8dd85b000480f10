"""Per-language EM/F1 of extractive QA during validation, from sums over whole questions.

A validation batch holds every window of its questions, so each question is decoded and scored in the
step that sees it; the steps log ``em_sum_<lang>``, ``f1_sum_<lang>`` and ``nquestions_<lang>``, and
``em_<lang>``/``f1_<lang>`` and their averages ``em_avg``/``f1_avg`` are derived from the sums over
the whole subset (distributed runs sum them across ranks), exactly as scoring the subset at once.
"""
from __future__ import annotations

from fairseq.logging import metrics

from .per_language import mean_over_languages

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
    languages = sorted({k[len(COUNT):] for log in logging_outputs for k in log if k.startswith(COUNT)})
    present = []
    for name in languages:
        total = sum(log.get(COUNT + name, 0) for log in logging_outputs)
        if total == 0:
            continue
        present.append(name)
        for key in (EM, F1, COUNT):
            metrics.log_scalar_sum(key + name, sum(log.get(key + name, 0) for log in logging_outputs))
        for metric, key in (("em", EM), ("f1", F1)):
            metrics.log_derived(f"{metric}_{name}", lambda m, n=name, k=key: round(_mean(m, k, n), 3))
    if present:
        for metric, key in (("em", EM), ("f1", F1)):
            metrics.log_derived(f"{metric}_avg",
                                lambda m, k=key: round(mean_over_languages(m, COUNT, lambda ms, n: _mean(ms, k, n)), 3))


def _mean(meters, key: str, name: str) -> float:
    # float(): in distributed runs fairseq sums the values as tensors
    return 100.0 * float(meters[key + name].sum) / float(meters[COUNT + name].sum)

"""Per-language accuracy from summed counts, logged through fairseq's metrics so that validation
over a multilingual subset reports ``acc_<lang>`` for every language and their mean ``acc_avg``."""

from __future__ import annotations

import torch
from fairseq.logging import metrics

CORRECT, TOTAL = "ncorrect_", "nlabelled_"


def accuracy_counts(
    predictions: torch.Tensor, targets: torch.Tensor, lang: torch.Tensor, languages: list[str]
) -> dict[str, int]:
    """``ncorrect_<lang>`` and ``nlabelled_<lang>`` for every language of the task (zeros included,
    so every worker logs the same keys)."""
    known = lang >= 0  # -1: a language without a dev set (translated training rows): counted nowhere
    labelled = (targets >= 0) & known
    correct = (predictions == targets) & labelled
    lang = lang.clamp(min=0)
    # One transfer for all languages: a per-language .item() would stall a GPU once per language and step.
    sums = (
        torch.stack(
            [
                torch.bincount(lang, weights=flags.to(torch.float32), minlength=len(languages))
                for flags in (labelled, correct)
            ]
        )
        .long()
        .tolist()
    )
    counts = {}
    for index, name in enumerate(languages):
        counts[TOTAL + name] = sums[0][index]
        counts[CORRECT + name] = sums[1][index]
    return counts


def log_accuracy(logging_outputs) -> None:
    log_language_sums(logging_outputs, TOTAL, (CORRECT,), {"acc": _accuracy})


def log_language_sums(logging_outputs, count_key: str, other_keys: tuple[str, ...], scores: dict) -> None:
    """For every language whose ``<count_key><lang>`` sum is not zero: log the sums of ``count_key`` and
    ``other_keys`` for it, and each ``<metric>_<lang>`` = ``scores[metric](meters, lang)``; then every
    metric's mean over those languages, ``<metric>_avg``."""
    languages = sorted({k[len(count_key) :] for log in logging_outputs for k in log if k.startswith(count_key)})
    present = False
    for name in languages:
        sums = {key: sum(log.get(key + name, 0) for log in logging_outputs) for key in (count_key, *other_keys)}
        if sums[count_key] == 0:
            continue
        present = True
        for key, value in sums.items():
            metrics.log_scalar_sum(key + name, value)
        for metric, score in scores.items():
            metrics.log_derived(f"{metric}_{name}", lambda m, n=name, s=score: round(s(m, n), 3))
    if present:
        for metric, score in scores.items():
            metrics.log_derived(f"{metric}_avg", lambda m, s=score: round(mean_over_languages(m, count_key, s), 3))


def mean_over_languages(meters, count_key: str, score) -> float:
    """Mean of ``score(meters, lang)`` over the languages whose ``<count_key><lang>`` sum is not zero.

    Read when the metric is derived: fairseq keeps the first derived meter registered under a name, so
    an average built from the languages of the batch at hand would cover only those of the first batch."""
    names = [k[len(count_key) :] for k, meter in meters.items() if k.startswith(count_key) and float(meter.sum) > 0]
    return sum(score(meters, name) for name in names) / len(names)


def _accuracy(meters, name: str) -> float:
    # float(): in distributed runs fairseq sums the counts as tensors
    return 100.0 * float(meters[CORRECT + name].sum) / float(meters[TOTAL + name].sum)

"""GLUE's metrics, as GLUE defines them, over a whole dev subset.

* accuracy: ``per_language.py`` (``acc_<subset>``);
* F1 of the positive class (MRPC, QQP): 2·TP / (predicted positives + gold positives), from counts summed over
  batches: the same counts and formula as entity F1 (``entities.py``, keys ``ntp_/npred_/ngold_``), logged as
  ``f1_<subset>`` by ``log_entity_f1``;
* Matthews correlation (CoLA): (TP·TN - FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)), 0 when a factor is 0
  (as scikit-learn returns), from the same summed counts and the number of labelled rows;
* Pearson and Spearman correlation (STS-B), x100 (``correlation.py``); an undefined one (a constant side) is
  logged as 0, so that checkpoint selection can compare it; it needs the whole subset, so validation batches carry
  their predictions and fairseq concatenates them (``_pred_<subset>``/``_gold_<subset>``, hidden from the log by
  the leading underscore); ``pearson_spearman`` is their mean (AMOS selects STS-B checkpoints by it).

A subset is what the per-language code calls a language: ``en`` for a GLUE dev set, ``m``/``mm`` for MNLI.
"""

from __future__ import annotations

import math

import torch
from fairseq.logging import metrics

from .correlation import pearson, spearman
from .entities import GOLD, PREDICTED, TRUE_POSITIVE
from .per_language import TOTAL, mean_over_languages

BINARY_MARK = "binary_counts"  # present in the logging outputs of binary GLUE tasks: MCC is derived for them
PRED, GOLD_VALUES = "_pred_", "_gold_"


def binary_counts(predictions: torch.Tensor, targets: torch.Tensor, lang: torch.Tensor, languages: list[str]) -> dict:
    """``ntp_/npred_/ngold_<subset>`` of the positive class (label 1) over the labelled rows, every subset."""
    labelled = targets >= 0
    flags = {TRUE_POSITIVE: (predictions == 1) & (targets == 1), PREDICTED: predictions == 1, GOLD: targets == 1}
    counts = {BINARY_MARK: 1}
    for index, name in enumerate(languages):
        in_subset = labelled & (lang == index)
        for key, flag in flags.items():
            counts[key + name] = int((flag & in_subset).sum())
    return counts


def matthews(tp: float, predicted: float, gold: float, total: float) -> float:
    """Matthews correlation x100 from the positives counted over ``total`` labelled rows."""
    fp, fn = predicted - tp, gold - tp
    tn = total - tp - fp - fn
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 100.0 * (tp * tn - fp * fn) / denominator if denominator else 0.0


def regression_values(predictions: torch.Tensor, targets: torch.Tensor, lang: torch.Tensor, languages) -> dict:
    """The labelled rows' predictions and gold scores per subset, for the correlations of the whole subset."""
    labelled = ~torch.isnan(targets)
    out = {}
    for index, name in enumerate(languages):
        rows = labelled & (lang == index)
        out[PRED + name] = predictions[rows].double().tolist()
        out[GOLD_VALUES + name] = targets[rows].double().tolist()
    return out


def log_glue_scores(logging_outputs) -> None:
    """MCC for binary GLUE tasks (the counts themselves are logged by accuracy and F1); the correlations for
    regression. Nothing for other tasks."""
    if any(BINARY_MARK in log for log in logging_outputs):
        languages = sorted({k[len(TOTAL) :] for log in logging_outputs for k in log if k.startswith(TOTAL)})
        for name in languages:
            metrics.log_derived(f"mcc_{name}", lambda m, n=name: round(_mcc(m, n), 3))
        if languages:
            metrics.log_derived("mcc_avg", lambda m: round(mean_over_languages(m, TOTAL, _mcc), 3))
    languages = sorted({k[len(PRED) :] for log in logging_outputs for k in log if k.startswith(PRED)})
    present = []
    for name in languages:
        predicted = [v for log in logging_outputs for v in log.get(PRED + name, [])]
        if not predicted:
            continue
        present.append(name)
        gold = [v for log in logging_outputs for v in log.get(GOLD_VALUES + name, [])]
        metrics.log_concat_tensor(PRED + name, torch.tensor(predicted, dtype=torch.float64))
        metrics.log_concat_tensor(GOLD_VALUES + name, torch.tensor(gold, dtype=torch.float64))
        for metric, score in CORRELATIONS.items():
            metrics.log_derived(f"{metric}_{name}", lambda m, n=name, s=score: round(_correlation(m, n, s), 3))
    if present:
        for metric, score in CORRELATIONS.items():
            metrics.log_derived(f"{metric}_avg", lambda m, s=score: round(_mean_correlation(m, s), 3))


CORRELATIONS = {
    "pearson": pearson,
    "spearman": spearman,
    "pearson_spearman": lambda x, y: (pearson(x, y) + spearman(x, y)) / 2,
}


def _mcc(meters, name: str) -> float:
    # float(): in distributed runs fairseq sums the counts as tensors
    return matthews(*(float(meters[key + name].sum) for key in (TRUE_POSITIVE, PREDICTED, GOLD, TOTAL)))


def _correlation(meters, name: str, score) -> float:
    value = score(meters[PRED + name].tensor.numpy(), meters[GOLD_VALUES + name].tensor.numpy())
    return 0.0 if math.isnan(value) else value  # fairseq's best-checkpoint comparison would keep a NaN for ever


def _mean_correlation(meters, score) -> float:
    names = [k[len(PRED) :] for k in meters if k.startswith(PRED)]
    return sum(_correlation(meters, name, score) for name in names) / len(names)

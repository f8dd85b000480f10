"""GLUE's metrics against hand computations: Matthews correlation, F1 of class 1, Pearson and Spearman (ties),
and the same numbers derived from counts summed over batches, as validation logs them."""

import math

import pytest
import torch
from fairseq.logging import metrics

from stabletune_fairseq.metrics.correlation import average_ranks as ranks
from stabletune_fairseq.metrics.correlation import pearson, spearman
from stabletune_fairseq.metrics.entities import f1_score, log_entity_f1
from stabletune_fairseq.metrics.glue_scores import binary_counts, log_glue_scores, matthews, regression_values
from stabletune_fairseq.metrics.per_language import accuracy_counts, log_accuracy

# 10 labelled rows: gold 1 1 1 1 0 0 0 0 0 0, predicted 1 1 1 0 1 0 0 0 0 0
#   TP 3, FN 1, FP 1, TN 5. F1 = 2*3 / (4 + 4) = 0.75.
#   MCC = (3*5 - 1*1) / sqrt((3+1)(3+1)(5+1)(5+1)) = 14 / sqrt(4*4*6*6) = 14 / 24 = 0.58333
GOLD = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
PREDICTED = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]


def test_mcc_and_f1_by_hand():
    assert matthews(tp=3, predicted=4, gold=4, total=10) == pytest.approx(100 * 14 / 24)
    assert f1_score(3, 4, 4) == pytest.approx(75.0)
    assert matthews(0, 0, 4, 10) == 0.0  # nothing predicted positive: a zero factor, 0 as scikit-learn returns
    assert matthews(4, 4, 4, 10) == pytest.approx(100.0) and matthews(0, 6, 4, 10) == pytest.approx(-100.0)


def test_spearman_with_ties_by_hand():
    assert ranks([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert ranks([5, 5, 5]).tolist() == [2.0, 2.0, 2.0]
    # x = 1 2 3 4, y = 1 3 3 2 -> ranks of y: 1, 3.5, 3.5, 2. Pearson of (1 2 3 4) and (1 3.5 3.5 2):
    #   dx = -1.5 -0.5 0.5 1.5; dy = -1.5 1 1 -0.5; sum dx*dy = 2.25 - 0.5 + 0.5 - 0.75 = 1.5
    #   sum dx^2 = 5, sum dy^2 = 2.25 + 1 + 1 + 0.25 = 4.5 -> 1.5 / sqrt(22.5) = 0.316228
    assert spearman([1, 2, 3, 4], [1, 3, 3, 2]) == pytest.approx(100 * 1.5 / math.sqrt(22.5))
    # Pearson of x and y itself: dy = -1.25 0.75 0.75 -0.25 -> sum dx*dy = 1.875 - 0.375 + 0.375 - 0.375 = 1.5;
    #   sum dy^2 = 1.5625 + 0.5625 + 0.5625 + 0.0625 = 2.75 -> 1.5 / sqrt(5 * 2.75)
    assert pearson([1, 2, 3, 4], [1, 3, 3, 2]) == pytest.approx(100 * 1.5 / math.sqrt(13.75))
    assert math.isnan(spearman([1, 2, 3], [7, 7, 7]))  # a constant side: undefined, as scipy says


def _validate(batches):
    """reduce_metrics' GLUE part, over batches as validation logs them: the derived values at the end."""
    with metrics.aggregate(new_root=True) as agg:
        for logging_output in batches:
            log_accuracy([logging_output])
            log_entity_f1([logging_output])
            log_glue_scores([logging_output])
        return agg.get_smoothed_values()


def test_counts_summed_over_batches_give_the_whole_set_scores():
    predictions, targets = torch.tensor(PREDICTED), torch.tensor(GOLD)
    lang = torch.zeros(10, dtype=torch.long)
    batches = []
    for rows in (slice(0, 3), slice(3, 7), slice(7, 10)):  # any split into batches gives the same scores
        batches.append(
            {
                **accuracy_counts(predictions[rows], targets[rows], lang[rows], ["en"]),
                **binary_counts(predictions[rows], targets[rows], lang[rows], ["en"]),
            }
        )
    values = _validate(batches)
    assert values["acc_en"] == pytest.approx(80.0)
    assert values["f1_en"] == pytest.approx(75.0)
    assert values["mcc_en"] == pytest.approx(round(100 * 14 / 24, 3))


def test_correlations_over_the_whole_dev_set_not_per_batch():
    predicted = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.7, 0.2])
    gold = torch.tensor([0.0, 0.5, 0.5, 1.0, float("nan"), 0.1])  # an unlabelled row: not scored
    lang = torch.zeros(6, dtype=torch.long)
    batches = [
        regression_values(predicted[rows], gold[rows], lang[rows], ["en"]) for rows in (slice(0, 2), slice(2, 6))
    ]
    values = _validate(batches)
    kept = [0, 1, 2, 3, 5]
    assert values["pearson_en"] == pytest.approx(round(pearson(predicted[kept].tolist(), gold[kept].tolist()), 3))
    assert values["spearman_en"] == pytest.approx(round(spearman(predicted[kept].tolist(), gold[kept].tolist()), 3))
    # by hand: predicted ranks 1 4 3 5 2, gold 0 .5 .5 1 .1 -> ranks 1 3.5 3.5 5 2; d = 0 .5 -.5 0 0
    #   Pearson of the ranks: dx = -2 1 0 2 -1, dy = -2 .5 .5 2 -1 -> sum dx*dy = 4 + .5 + 0 + 4 + 1 = 9.5;
    #   sum dx^2 = 10, sum dy^2 = 4 + .25 + .25 + 4 + 1 = 9.5 -> 9.5 / sqrt(95) = 0.97468
    assert values["spearman_en"] == pytest.approx(round(100 * 9.5 / math.sqrt(95), 3))
    assert values["pearson_spearman_en"] == pytest.approx((values["pearson_en"] + values["spearman_en"]) / 2, abs=1e-3)
    assert not any(key.startswith("_") for key in values)  # the concatenated predictions stay out of the log


def test_an_undefined_correlation_is_nan_and_validates_as_zero():
    """A constant prediction (a collapsed regression head) has no correlation: NaN from the one implementation,
    logged as 0 by validation, because fairseq's best-checkpoint comparison would keep a NaN as the best for ever."""
    predicted, gold = torch.full((4,), 0.5), torch.tensor([0.0, 0.5, 0.7, 1.0])
    assert math.isnan(pearson(predicted.tolist(), gold.tolist()))
    values = _validate([regression_values(predicted, gold, torch.zeros(4, dtype=torch.long), ["en"])])
    assert values["pearson_en"] == 0.0 and values["spearman_en"] == 0.0 and values["pearson_spearman_en"] == 0.0

"""Every task family logs its own metrics through fairseq's task hook ``reduce_metrics`` (after the criterion's loss
terms); the criterion alone logs its loss terms only. Metrics read back as fairseq logs them, from an aggregator."""

import math

import pytest
import torch
from conftest import TOY_DEV_PAIRS
from fairseq.logging import metrics
from test_train_glue import glue  # noqa: F401  (RTE for binary classification, STS-B for regression)

from stabletune_fairseq.criterions.stability_consistency import StabilityConsistencyCriterion
from stabletune_fairseq.criterions.stability_distillation import StabilityDistillationCriterion
from stabletune_fairseq.tasks.glue import GlueConfig, GlueTask
from stabletune_fairseq.tasks.xtreme_qa import XtremeQAConfig, XtremeQATask
from stabletune_fairseq.tasks.xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask
from stabletune_fairseq.tasks.xtreme_tagging import XtremeTaggingConfig, XtremeTaggingTask

# A batch's loss terms: 1 bit per unit for the loss and 0.5 for the task loss once divided by 4 units and ln 2.
TERMS = {
    "loss": 4 * math.log(2),
    "task_loss": 2 * math.log(2),
    "r1": 0.0,
    "r2": 0.0,
    "sample_size": 4,
    "ntokens": 40,
    "nsentences": 4,
}


def logged(reduce, logging_outputs) -> dict:
    with metrics.aggregate(new_root=True) as agg:
        reduce(logging_outputs)
        return dict(agg.get_smoothed_values())


def check_family(task, counts: dict, expected: dict) -> dict:
    """The task logs ``expected`` (and the criterion's terms) from a batch with ``counts``; the criterion alone logs
    its terms and nothing else."""
    criterion = StabilityConsistencyCriterion(task)
    logging_outputs = [{**TERMS, **counts}]
    by_task = logged(lambda logs: task.reduce_metrics(logs, criterion), logging_outputs)
    assert {key: by_task.get(key) for key in expected} == pytest.approx(expected, abs=1e-3)
    assert by_task["loss"] == 1.0 and by_task["task_loss"] == 0.5
    alone = logged(type(criterion).reduce_metrics, logging_outputs)
    assert set(alone) == {"loss", "task_loss", "r1", "r2"} and alone["loss"] == 1.0
    return by_task


def one_hot(classes: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(classes.clamp(min=0), width).float()


def test_sentence_task_logs_accuracy_per_language(toy_data):
    task = XtremeSentenceTask.setup_task(XtremeSentenceConfig(data=str(toy_data), seed=1))
    dataset = task.load_dataset("valid")  # the toy's TOY_DEV_PAIRS examples of every language in turn
    n = TOY_DEV_PAIRS
    sample = dataset.collater([dataset[i] for i in (0, 1, 2, 3, n, n + 1)])
    first, second = (task.languages[int(sample["lang"][i])] for i in (0, 4))
    assert first != second
    predicted = sample["target"].clone()
    predicted[[3, 5]] = (predicted[[3, 5]] + 1) % len(task.labels)  # wrong for one row of each language
    logits = one_hot(predicted, len(task.labels))
    counts = task.metric_counts(logits, sample, training=False)
    assert task.metric_counts(logits, sample, training=True) == counts  # accuracy is logged in training too
    values = check_family(task, counts, {f"acc_{first}": 75.0, f"acc_{second}": 50.0, "acc_avg": 62.5})
    assert sorted(k for k in values if k.startswith("acc_")) == sorted([f"acc_{first}", f"acc_{second}", "acc_avg"])


def test_tagging_task_logs_entity_f1_and_word_accuracy(toy_panx):
    task = XtremeTaggingTask.setup_task(XtremeTaggingConfig(data=str(toy_panx), seed=1))
    dataset = task.load_dataset("valid")
    by_language = {}
    for index in range(len(dataset)):
        by_language.setdefault(int(dataset[index]["lang"]), []).append(index)
    (a, rows_a), (b, rows_b) = sorted(by_language.items())[:2]
    sample = dataset.collater([dataset[i] for i in rows_a[:3] + rows_b[:3]])
    gold, words = sample["target"], sample["word_mask"]
    assert (gold[words] < len(task.labels)).all() and (gold[words] >= 0).all()  # every dev tag seen in training
    # language a: every tag right; language b: every word "O", so no entity found
    outside = torch.full_like(gold, task.labels.index("O"))
    predicted = torch.where((sample["lang"] == a).unsqueeze(1), gold, outside)
    logits = one_hot(predicted, len(task.labels))
    counts = task.metric_counts(logits, sample, training=False)
    in_b = words & (sample["lang"] == b).unsqueeze(1)
    accuracy_b = 100.0 * float((gold[in_b] == outside[in_b]).sum()) / int(in_b.sum())
    name_a, name_b = task.languages[a], task.languages[b]
    check_family(
        task,
        counts,
        {
            f"f1_{name_a}": 100.0,
            f"f1_{name_b}": 0.0,
            "f1_avg": 50.0,
            f"acc_{name_a}": 100.0,
            f"acc_{name_b}": round(accuracy_b, 3),
        },
    )
    training = task.metric_counts(logits, sample, training=True)
    assert not any(k.startswith("ngold_") for k in training)  # entity F1 in validation only
    assert training[f"nlabelled_{name_a}"] > 0


def test_qa_task_logs_em_and_f1_per_language(toy_xquad):
    task = XtremeQATask.setup_task(XtremeQAConfig(data=str(toy_xquad), seed=1))
    counts = {f"{key}{lang}": 0 for key in ("em_sum_", "f1_sum_", "nquestions_") for lang in task.languages}
    lang = task.languages[0]
    counts.update({f"em_sum_{lang}": 1.0, f"f1_sum_{lang}": 1.5, f"nquestions_{lang}": 2})
    check_family(task, counts, {f"em_{lang}": 50.0, f"f1_{lang}": 75.0, "em_avg": 50.0, "f1_avg": 75.0})
    assert task.metric_counts(torch.zeros(2, 5, 2), {}, training=True) == {}  # scored in validation only


def test_glue_binary_task_logs_accuracy_f1_and_mcc(glue):  # noqa: F811
    task = GlueTask.setup_task(GlueConfig(data=str(glue / "RTE"), seed=1))
    assert task.loss_family == "labels" and len(task.labels) == 2
    # 10 labelled rows: 3 true positives, 4 predicted positives, 5 gold positives, so 4 true negatives
    counts = {"binary_counts": 1, "nlabelled_en": 10, "ncorrect_en": 7, "ntp_en": 3, "npred_en": 4, "ngold_en": 5}
    mcc = 100.0 * (3 * 4 - 1 * 2) / math.sqrt(4 * 5 * 5 * 6)
    check_family(task, counts, {"acc_en": 70.0, "f1_en": 200.0 * 3 / 9, "mcc_en": mcc, "mcc_avg": mcc})
    dataset = task.load_dataset("valid")
    sample = dataset.collater([dataset[i] for i in range(6)])
    logits = one_hot(sample["target"], 2)
    assert task.metric_counts(logits, sample, training=False)["ntp_en"] == int((sample["target"] == 1).sum())
    assert "binary_counts" not in task.metric_counts(logits, sample, training=True)


def test_glue_regression_task_logs_the_correlations(glue):  # noqa: F811
    task = GlueTask.setup_task(GlueConfig(data=str(glue / "STS-B"), seed=1))
    assert task.loss_family == "regression"
    # (1, 2, 3) against (1, 3, 2): Pearson 0.5, and the same for the ranks
    counts = {"_pred_en": [1.0, 2.0, 3.0], "_gold_en": [1.0, 3.0, 2.0]}
    check_family(task, counts, {"pearson_en": 50.0, "spearman_en": 50.0, "pearson_spearman_en": 50.0})
    dataset = task.load_dataset("valid")
    sample = dataset.collater([dataset[i] for i in range(4)])
    scores = sample["target"].float().unsqueeze(1)
    assert task.metric_counts(scores, sample, training=False)["_gold_en"] == sample["target"].double().tolist()
    assert task.metric_counts(scores, sample, training=True) == {}  # the correlations need the whole dev set


def test_the_distillation_criterion_logs_its_own_terms_and_teacher_counts():
    kd = {"kd": 2 * math.log(2), "pkd": 0.0, "contrastive": 0.0}
    training = [{**TERMS, **kd, "teacher_banked": 0, "teacher_live": 4}]
    base = logged(StabilityConsistencyCriterion.reduce_metrics, training)
    assert set(base) == {"loss", "task_loss", "r1", "r2"}
    distilled = logged(StabilityDistillationCriterion.reduce_metrics, training)
    assert distilled == {**base, "kd": 0.5, "pkd": 0.0, "contrastive": 0.0, "teacher_banked": 0, "teacher_live": 4}
    validation = [{**TERMS, "kd": 0.0, "pkd": 0.0, "contrastive": 0.0}]  # the teacher does not run on dev data
    assert set(logged(StabilityDistillationCriterion.reduce_metrics, validation)) == set(base) | set(kd)

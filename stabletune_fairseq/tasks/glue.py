"""``glue``: GLUE's classification tasks and STS-B regression on a folder written by preprocess/glue/process.sh.

The sentence-pair task of XTREME with GLUE's differences: single-sentence tasks (CoLA, SST-2) read
``<s> a </s>``; STS-B has one output and a squared-error loss (its 0-5 scores are divided by
``--regression-scale`` for training, as AMOS stores them in [0, 1], and predictions are multiplied back);
validation reports GLUE's metrics over the whole dev set (``metrics/glue_scores.py``): ``acc_en`` everywhere,
``f1_en`` for MRPC and QQP, ``mcc_en`` for CoLA, ``pearson_en``/``spearman_en``/``pearson_spearman_en`` for
STS-B; MNLI's two dev sets are ``m`` and ``mm`` (``acc_m``, ``acc_mm``, ``acc_avg``). Stored splits
``train``, ``valid_<subset>``, ``test_<subset>`` (subset ``en``; MNLI ``m``/``mm``).

R-Drop and R3F are R1 with ``--view-augmentation dropout`` / ``noise`` (criterion options in docs/glue.md).
"""

from dataclasses import dataclass, field

import numpy as np
from fairseq.tasks import register_task

from ..metrics.entities import log_entity_f1
from ..metrics.glue_scores import binary_counts, log_glue_scores, regression_values
from ..models.heads import HEAD_OF_KIND
from .xtreme_sentence import XtremeSentenceConfig, XtremeSentenceTask


@dataclass
class GlueConfig(XtremeSentenceConfig):
    regression_scale: float = field(
        default=5.0,
        metadata={
            "help": "regression (STS-B): gold scores are divided by this for training and predictions multiplied by "
            "it (AMOS trains on scores / 5); the correlations do not depend on it"
        },
    )


@register_task("glue", dataclass=GlueConfig)
class GlueTask(XtremeSentenceTask):
    kind = "glue"
    head_name, head_kind = HEAD_OF_KIND[kind]

    def __init__(self, cfg, dictionary, metadata):
        super().__init__(cfg, dictionary, metadata)
        self.regression: bool = bool(metadata.get("regression"))
        self.pair: bool = bool(metadata.get("pair", True))
        if self.regression and cfg.copy_augmentation != "none":
            raise ValueError("a regression task has no stage 2 (R2 needs a distribution): --copy-augmentation none")
        if cfg.view_augmentation == "translation" or cfg.copy_augmentation == "translation":
            raise ValueError("GLUE has no translate-train data: translation views are not possible")

    @property
    def num_outputs(self) -> int:
        return 1 if self.regression else len(self.labels)

    @property
    def loss_family(self) -> str:
        return "regression" if self.regression else "labels"

    def _labels(self, names: list[str]) -> np.ndarray:
        labels = super()._labels(names)
        return labels.astype(np.float64) / self.cfg.regression_scale if self.regression else labels

    def _second_texts(self, names: list[str]):
        return self._stored("input1", names) if self.pair else None

    def metric_counts(self, row_logits, sample, training: bool) -> dict:
        """Regression: in validation, every labelled row's prediction and gold score (the correlations need the whole
        dev set). Classification: accuracy counts and, in validation of a binary task, the positive class's (F1,
        MCC)."""
        if self.regression:
            return (
                {}
                if training
                else regression_values(
                    row_logits.squeeze(-1).float(), sample["target"].float(), sample["lang"], self.languages
                )
            )
        counts = super().metric_counts(row_logits, sample, training)
        if not training and len(self.labels) == 2:
            counts.update(binary_counts(row_logits.argmax(-1), sample["target"], sample["lang"], self.languages))
        return counts

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)  # the criterion's loss terms, accuracy
        log_entity_f1(logging_outputs)  # F1 of the positive class: entity F1's counts and formula
        log_glue_scores(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed(criterion) -> bool:
        # fairseq calls this on the class. Regression validation carries every row's prediction (Spearman needs the
        # whole dev set): such logging outputs are gathered from the workers, not summed.
        return not getattr(criterion.task, "regression", False) and criterion.logging_outputs_can_be_summed()

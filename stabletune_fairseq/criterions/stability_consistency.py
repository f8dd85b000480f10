"""``stability_consistency``: the task loss plus xTune's consistency regularisers.

loss = task loss + r1_lambda * R1 + r2_lambda * R2, where R1 is the symmetric KL between the
predictions of an example's two views and R2 the KL from a frozen teacher's predictions on the
augmented view. This version implements the task loss (plain fine-tuning); the regularisers and the
augmented views they need arrive with the consistency feature, and their weights are refused until then.
"""

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..metrics.per_language import accuracy_counts, log_accuracy


@dataclass
class StabilityConsistencyConfig(FairseqDataclass):
    r1_lambda: float = field(default=0.0, metadata={"help": "weight of R1, example consistency between an example's two views"})
    r2_lambda: float = field(default=0.0, metadata={"help": "weight of R2, model consistency with a frozen teacher"})


@register_criterion("stability_consistency", dataclass=StabilityConsistencyConfig)
class StabilityConsistencyCriterion(FairseqCriterion):
    def __init__(self, task, r1_lambda: float = 0.0, r2_lambda: float = 0.0):
        super().__init__(task)
        if r1_lambda or r2_lambda:
            raise NotImplementedError("R1/R2 consistency is not available in this version: use --r1-lambda 0 --r2-lambda 0")
        self.r1_lambda, self.r2_lambda = r1_lambda, r2_lambda

    def forward(self, model, sample, reduce: bool = True):
        logits = model(**sample["net_input"], head=self.task.head_name)
        targets = sample["target"]
        labelled = targets >= 0  # unlabelled test rows are predicted, never trained on
        if labelled.any():
            loss = F.cross_entropy(logits[labelled].float(), targets[labelled], reduction="sum")
        else:
            loss = logits.sum() * 0.0
        sample_size = int(labelled.sum())
        logging_output = {
            "loss": loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
            **accuracy_counts(logits.argmax(-1), targets, sample["lang"], self.task.languages),
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        loss = sum(log.get("loss", 0) for log in logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        metrics.log_scalar("loss", loss / max(sample_size, 1) / math.log(2), sample_size, round=3)
        log_accuracy(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

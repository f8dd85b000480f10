"""``stability_consistency``: the task loss plus xTune's consistency regularisers.

    loss = task loss + r1_lambda * R1 + r2_lambda * R2

R1 (example consistency) is the symmetric KL between the predictions of every training row and of its
second view, with stop-gradient on the target side; R2 (model consistency) is KL(p_teacher || p_student)
on the augmented copies of stage 2, the teacher being the frozen stage-1 model. Rows and views come in
one batch (rows first), so a consistency step is one forward pass over twice the rows.

Reductions: every term is a sum over rows of a per-row quantity (the KL summed over classes), divided
by the number of rows, like the task loss. The reference implementation averages KL over classes too
(``kl_div(reduction="mean")``), so its lambda corresponds to ``lambda / number of classes`` here;
run_xtreme.sh applies that conversion to the reference defaults. With both lambdas 0 the views are not
even computed: the step is exactly plain fine-tuning.
"""
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..metrics.per_language import accuracy_counts, log_accuracy
from ..models.teacher import load_teacher
from .kl_terms import kl_to_target, symmetric_consistency

TERMS = ("task_loss", "r1", "r2")


@dataclass
class StabilityConsistencyConfig(FairseqDataclass):
    r1_lambda: float = field(default=0.0, metadata={"help": "weight of R1, the symmetric KL between a row's two views (per row, summed over classes)"})
    r2_lambda: float = field(default=0.0, metadata={"help": "weight of R2, KL from the frozen teacher on augmented copies"})
    teacher: Optional[str] = field(default=None, metadata={"help": "checkpoint of the frozen teacher (stage-1 best) for R2"})


def trim_padding(tokens: torch.Tensor, pad: int) -> torch.Tensor:
    """Drop the trailing columns that are padding in every row."""
    width = int(tokens.ne(pad).sum(1).max())
    return tokens[:, :width]


@register_criterion("stability_consistency", dataclass=StabilityConsistencyConfig)
class StabilityConsistencyCriterion(FairseqCriterion):
    def __init__(self, task, r1_lambda: float = 0.0, r2_lambda: float = 0.0, teacher: Optional[str] = None):
        super().__init__(task)
        if r1_lambda and not getattr(task, "uses_views", False):
            raise ValueError("--r1-lambda needs a second view: set the task's --view-augmentation")
        if r2_lambda and not teacher:
            raise ValueError("--r2-lambda needs --teacher (the stage-1 checkpoint)")
        self.r1_lambda, self.r2_lambda = r1_lambda, r2_lambda
        # Kept outside the module tree: not trained, not in the optimizer, not saved in checkpoints.
        object.__setattr__(self, "teacher", load_teacher(teacher, task) if teacher and r2_lambda else None)

    def _teacher_logits(self, model, tokens):
        student, teacher = next(model.parameters()), next(self.teacher.parameters())
        if (teacher.device, teacher.dtype) != (student.device, student.dtype):  # follow the student (GPU, fp16)
            self.teacher.to(device=student.device, dtype=student.dtype)
        with torch.no_grad():
            return self.teacher(trim_padding(tokens, self.padding_idx), head=self.task.head_name)

    def forward(self, model, sample, reduce: bool = True):
        tokens = sample["net_input"]["src_tokens"]
        targets = sample["target"]
        n_rows = targets.numel()
        use_views = sample.get("has_views", False) and self.r1_lambda > 0
        if use_views:
            noise_std = self.task.cfg.noise_std if self.task.cfg.view_augmentation == "noise" else 0.0
            noise_rows = torch.arange(tokens.size(0), device=tokens.device) >= n_rows
            logits = model(tokens, head=self.task.head_name, noise_std=noise_std, noise_rows=noise_rows)
            row_logits, view_logits = logits[:n_rows], logits[n_rows:]
        else:
            row_logits = model(trim_padding(tokens[:n_rows], self.padding_idx), head=self.task.head_name)

        labelled = targets >= 0  # unlabelled rows are predicted (and regularised), never trained on
        zero = row_logits.sum() * 0.0
        terms = {"task_loss": F.cross_entropy(row_logits[labelled].float(), targets[labelled], reduction="sum")
                 if labelled.any() else zero, "r1": zero, "r2": zero}
        if use_views:
            terms["r1"] = symmetric_consistency(row_logits, view_logits).sum()
        teacher_rows = sample.get("teacher_rows")
        if self.teacher is not None and teacher_rows is not None and teacher_rows.any():
            row_tokens = tokens[:n_rows][teacher_rows]
            terms["r2"] = kl_to_target(row_logits[teacher_rows], self._teacher_logits(model, row_tokens)).sum()
        loss = terms["task_loss"] + self.r1_lambda * terms["r1"] + self.r2_lambda * terms["r2"]
        logging_output = {
            "loss": loss.data, **{k: v.data for k, v in terms.items()},
            "ntokens": sample["ntokens"], "nsentences": sample["nsentences"], "sample_size": n_rows,
            "views_truncated": sample.get("views_truncated", 0),
            **accuracy_counts(row_logits.argmax(-1), targets, sample["lang"], self.task.languages),
        }
        return loss, n_rows, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        sample_size = max(sum(log.get("sample_size", 0) for log in logging_outputs), 1)
        for key in ("loss", *TERMS):
            total = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(key, total / sample_size / math.log(2), sample_size, round=5 if key in ("r1", "r2") else 3)
        truncated = sum(log.get("views_truncated", 0) for log in logging_outputs)
        if truncated:
            metrics.log_scalar_sum("views_truncated", truncated)
        log_accuracy(logging_outputs)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

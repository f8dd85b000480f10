"""``stability_consistency``: the task loss plus xTune's consistency regularisers.

    loss = task loss + r1_lambda * R1 + r2_lambda * R2

R1 (example consistency) is the symmetric KL between the predictions of every training row and of its
second view, with stop-gradient on the target side; R2 (model consistency) is KL(p_teacher || p_student)
on the augmented copies of stage 2, the teacher being the frozen stage-1 model. Rows and views come in
one batch (rows first), so a consistency step is one forward pass over twice the rows.

Units: a sentence task's unit is a row; a tagging task's unit is a word of a row (batches carry
``word_mask``, and views are word-aligned with their rows). Reductions, as the reference implementation
takes them, per batch: the task loss is the mean over the labelled units (translated tagging rows carry no
labels), R1 the mean over every unit, R2 the mean over the units of the augmented rows only (the rows the
teacher sees); each per-unit quantity is a KL summed over classes. fairseq divides the loss by the
sample size (every unit of the batch), so the task and R2 sums are scaled by units / labelled units and
units / teacher units before it does. ``--r2-hard-labels`` replaces R2's KL by cross-entropy on the teacher's
argmax (PAN-X). QA's unit is a
window: its terms are the means of the start- and end-position terms, R1 over the common support of the
window and its view (``span_terms.py``).

A batch whose loss is not finite is logged with its example ids and skipped (zero gradient, counted as
``nonfinite_skipped``): one bad batch must not put NaN into the weights. A regression task (STS-B: one output per
row, the "regression" family) takes the summed squared error as its task loss and the squared difference of the two
predictions as R1.

R-Drop and R3F are R1 with views that keep the row's tokens (``--view-augmentation dropout`` / ``noise``); their
references differ from xTune's R1 in two ways, each an option here: the KL's gradient flows through both sides
(``--r1-full-gradient``), and R-Drop trains the task loss on both passes (``--task-loss-on-views``: the mean of the
row's and the view's task loss). docs/glue.md gives each reference's formula and the lambda that matches it. The
reference implementation averages KL over classes too
(``kl_div(reduction="mean")``), so its lambda corresponds to ``lambda / number of classes`` here;
run_xtreme.sh applies that conversion to the reference defaults. With both lambdas 0 the views are not
even computed: the step is exactly plain fine-tuning.

The task names its family (``loss_family``: "labels", "regression" or "spans"; ``FAMILY_TERMS`` gives the terms of
each) and owns its metrics: the criterion puts the task's ``metric_counts`` of every batch into the logging output,
and the task's ``reduce_metrics`` logs them (accuracy, entity F1, EM/F1, GLUE's scores) after the loss terms logged
here.
"""

import logging
import math
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics

from ..models.teacher import load_teacher
from .kl_terms import kl_to_target, squared_difference, symmetric_consistency
from .span_terms import span_consistency, span_loss, span_teacher_term

logger = logging.getLogger(__name__)

# The terms of every task family, by the family's name (the task's ``loss_family``): methods of the criterion.
FAMILY_TERMS = {"labels": "_label_terms", "regression": "_regression_terms", "spans": "_span_terms"}


@dataclass
class StabilityConsistencyConfig(FairseqDataclass):
    r1_lambda: float = field(
        default=0.0,
        metadata={
            "help": "weight of R1, the symmetric KL between a row's two views (summed over classes, mean over every "
            "unit)"
        },
    )
    r2_lambda: float = field(
        default=0.0,
        metadata={
            "help": "weight of R2, KL from the frozen teacher (summed over classes, mean over the units of the "
            "augmented rows)"
        },
    )
    teacher: Optional[str] = field(
        default=None, metadata={"help": "checkpoint of the frozen teacher (stage-1 best) for R2"}
    )
    r2_hard_labels: bool = field(
        default=False,
        metadata={"help": "R2 as cross-entropy on the teacher's argmax instead of KL (the reference's PAN-X choice)"},
    )
    r1_full_gradient: bool = field(
        default=False,
        metadata={
            "help": "R1's gradient flows through both distributions, as R-Drop and R3F (default: stop-gradient on the "
            "target side of each KL, as xTune)"
        },
    )
    task_loss_on_views: bool = field(
        default=False,
        metadata={
            "help": "the task loss is the mean over a row and its view, as R-Drop trains both passes (only with views "
            "that keep the row's tokens: --view-augmentation dropout or noise)"
        },
    )


def trim_padding(tokens: torch.Tensor, pad: int) -> torch.Tensor:
    """Drop the trailing columns that are padding in every row."""
    width = int(tokens.ne(pad).sum(1).max())
    return tokens[:, :width]


def select_rows(tokens: torch.Tensor, head_input: dict, rows, pad: int) -> tuple[torch.Tensor, dict]:
    """``rows`` of the batch, without the columns that are padding in all of them; per-token head
    inputs (e.g. ``word_index``) are cut alike."""
    tokens = trim_padding(tokens[rows], pad)
    return tokens, {k: v[rows][:, : tokens.size(1)] for k, v in head_input.items()}


def log_terms(logging_outputs, keys, decimals: int) -> None:
    """Each term of ``keys``, summed over the logging outputs, in bits per unit (fairseq's sample size)."""
    sample_size = max(sum(log.get("sample_size", 0) for log in logging_outputs), 1)
    for key in keys:
        total = sum(log.get(key, 0) for log in logging_outputs)
        metrics.log_scalar(key, total / sample_size / math.log(2), sample_size, round=decimals)


@register_criterion("stability_consistency", dataclass=StabilityConsistencyConfig)
class StabilityConsistencyCriterion(FairseqCriterion):
    def __init__(
        self,
        task,
        r1_lambda: float = 0.0,
        r2_lambda: float = 0.0,
        teacher: Optional[str] = None,
        r2_hard_labels: bool = False,
        r1_full_gradient: bool = False,
        task_loss_on_views: bool = False,
    ):
        super().__init__(task)
        if getattr(task, "loss_family", None) not in FAMILY_TERMS:
            raise ValueError(
                f"--criterion stability_consistency trains the XTREME and GLUE tasks (loss_family one of "
                f"{', '.join(FAMILY_TERMS)}): {type(task).__name__} has none"
            )
        if r1_lambda and not getattr(task, "uses_views", False):
            raise ValueError("--r1-lambda needs a second view: set the task's --view-augmentation")
        if r2_lambda and not teacher:
            raise ValueError("--r2-lambda needs --teacher (the stage-1 checkpoint)")
        if task_loss_on_views and not (r1_lambda and getattr(task, "views_are_rows", False)):
            raise ValueError(
                "--task-loss-on-views trains on views that keep the row's tokens: it needs "
                "--view-augmentation dropout or noise and a positive --r1-lambda"
            )
        self.r1_lambda, self.r2_lambda, self.r2_hard_labels = r1_lambda, r2_lambda, r2_hard_labels
        self.r1_stop_gradient, self.task_loss_on_views = not r1_full_gradient, task_loss_on_views
        self.weights = {"task_loss": 1.0, "r1": r1_lambda, "r2": r2_lambda}  # loss = sum of weight * term
        # Kept outside the module tree: not trained, not in the optimizer, not saved in checkpoints.
        object.__setattr__(self, "teacher", load_teacher(teacher, task) if teacher and r2_lambda else None)

    def _teacher_logits(self, model, tokens, head_input, layer_states=None):
        student, teacher = next(model.parameters()), next(self.teacher.parameters())
        if (teacher.device, teacher.dtype) != (student.device, student.dtype):  # follow the student (GPU, fp16)
            self.teacher.to(device=student.device, dtype=student.dtype)
        with torch.no_grad():
            return self.teacher(tokens, head=self.task.head_name, layer_states=layer_states, **head_input)

    wants_layer_states = False  # the student's <s> state after every layer (distillation's hidden-state terms)

    def _row_and_view_logits(self, model, sample, layer_states=None):
        """Logits of the rows and, when R1 is on and the batch has views, of their views (one pass); the ``<s>``
        states of every layer go to the list ``layer_states`` when one is given."""
        tokens, head_input = sample["net_input"]["src_tokens"], sample.get("head_input", {})  # e.g. word_index
        n_rows = sample["target"].size(0)
        if sample.get("has_views", False) and self.r1_lambda > 0:
            noise_rows = torch.arange(tokens.size(0), device=tokens.device) >= n_rows
            logits = model(
                tokens,
                head=self.task.head_name,
                noise=self.task.embedding_noise,
                noise_rows=noise_rows,
                layer_states=layer_states,
                **head_input,
            )
            return logits[:n_rows], logits[n_rows:]
        row_tokens, row_input = select_rows(tokens, head_input, slice(0, n_rows), self.padding_idx)
        return model(row_tokens, head=self.task.head_name, layer_states=layer_states, **row_input), None

    def _teacher_pair(self, model, sample, row_logits):
        """Student and teacher logits of the rows marked for R2 (augmented copies, translations)."""
        rows = sample["teacher_rows"]
        n_rows = row_logits.size(0)
        head_input = {k: v[:n_rows] for k, v in sample.get("head_input", {}).items()}
        tokens, head_input = select_rows(sample["net_input"]["src_tokens"][:n_rows], head_input, rows, self.padding_idx)
        teacher = self._teacher_logits(model, tokens, head_input)
        student = row_logits[rows]
        if self.task.loss_family == "spans":
            student = student[:, : teacher.size(1)]  # the same positions: padding columns trimmed alike
        return student, teacher

    @staticmethod
    def _teacher_units(sample) -> int:
        """Units of the rows marked for the teacher (words for tagging), R2's denominator."""
        rows = sample.get("teacher_rows")
        if rows is None:
            return 0
        units = sample.get("word_mask")
        return int(rows.sum()) if units is None else int(units[rows].sum())

    def _wants_r2(self, sample) -> bool:
        teacher_rows = sample.get("teacher_rows")
        return self.teacher is not None and teacher_rows is not None and bool(teacher_rows.any())

    def _label_terms(self, model, sample, row_logits, view_logits):
        """Sentence and tagging tasks: one label per unit (a row, or a word of a row)."""
        units = sample.get("word_mask")
        per_unit = (lambda x: x) if units is None else (lambda x: x[units])
        unit_logits, unit_targets = per_unit(row_logits), per_unit(sample["target"])
        # Unlabelled units (and dev tags never seen in training) are predicted and regularised, not trained on.
        labelled = (unit_targets >= 0) & (unit_targets < unit_logits.size(-1))
        zero = unit_logits.float().sum() * 0.0  # float: an fp16 sum can overflow, and inf * 0 is nan
        task_loss = lambda logits: (
            F.cross_entropy(logits[labelled].float(), unit_targets[labelled], reduction="sum")
            if labelled.any()
            else zero
        )
        terms = {"task_loss": task_loss(unit_logits), "r1": zero, "r2": zero}
        if view_logits is not None:
            terms["r1"] = symmetric_consistency(unit_logits, per_unit(view_logits), self.r1_stop_gradient).sum()
            if self.task_loss_on_views:
                terms["task_loss"] = (terms["task_loss"] + task_loss(per_unit(view_logits))) / 2
        if self._wants_r2(sample):
            student, teacher = self._teacher_pair(model, sample, row_logits)
            if units is not None:
                rows = sample["teacher_rows"]
                student, teacher = student[units[rows]], teacher[units[rows]]
            terms["r2"] = (
                F.cross_entropy(student.float(), teacher.argmax(-1), reduction="sum")
                if self.r2_hard_labels
                else kl_to_target(student, teacher).sum()
            )
        teacher_units = self._teacher_units(sample)
        return terms, unit_targets.numel(), {"task_loss": int(labelled.sum()), "r2": teacher_units}

    def _regression_terms(self, model, sample, row_logits, view_logits):
        """Regression (STS-B): one score per row; squared error, and R1 the squared difference of the two views'.
        No R2: a teacher's score is no distribution (and xTune's stage 2 is not defined for regression)."""
        predicted, targets = row_logits.squeeze(-1).float(), sample["target"].float()
        labelled = ~torch.isnan(targets)
        zero = predicted.sum() * 0.0
        task_loss = lambda scores: (scores[labelled] - targets[labelled]).pow(2).sum() if labelled.any() else zero
        terms = {"task_loss": task_loss(predicted), "r1": zero, "r2": zero}
        if view_logits is not None:
            terms["r1"] = squared_difference(row_logits, view_logits).sum()
            if self.task_loss_on_views:
                terms["task_loss"] = (terms["task_loss"] + task_loss(view_logits.squeeze(-1).float())) / 2
        n_rows = predicted.size(0)
        return terms, n_rows, {"task_loss": int(labelled.sum())}

    def _span_terms(self, model, sample, row_logits, view_logits):
        """QA: start and end distributions per row (window); see ``span_terms.py``."""
        zero = row_logits.float().sum() * 0.0  # float: the masked positions (-1e4) overflow an fp16 sum
        terms = {"task_loss": span_loss(row_logits, sample["target"]).sum(), "r1": zero, "r2": zero}
        if view_logits is not None:
            terms["r1"] = span_consistency(row_logits, view_logits, sample["support"], self.r1_stop_gradient).sum()
            if self.task_loss_on_views:
                terms["task_loss"] = (terms["task_loss"] + span_loss(view_logits, sample["target"]).sum()) / 2
        if self._wants_r2(sample):
            student, teacher = self._teacher_pair(model, sample, row_logits)
            terms["r2"] = span_teacher_term(student, teacher, self.r2_hard_labels).sum()
        n_rows = row_logits.size(0)
        return terms, n_rows, {"task_loss": n_rows, "r2": self._teacher_units(sample)}

    @property
    def unit_terms(self):
        """The terms of the task's family: labels (rows or words), a regression's scores, or spans (QA); each returns
        the terms, the units (fairseq's sample size) and the denominators of the terms that are means over fewer."""
        return getattr(self, FAMILY_TERMS[self.task.loss_family])

    def _extra_terms(self, model, sample, row_logits, view_logits, layer_states, terms, denominators, n_units) -> dict:
        """More terms, added to ``terms`` (and their denominators): distillation's, in stability_distillation.py;
        returns counts to log (summed over batches)."""
        return {}

    def loss_weights(self, training: bool) -> dict:
        """The weight of every term in the loss."""
        return self.weights

    def forward(self, model, sample, reduce: bool = True):
        layer_states = [] if self.wants_layer_states else None
        row_logits, view_logits = self._row_and_view_logits(model, sample, layer_states)
        terms, n_units, denominators = self.unit_terms(model, sample, row_logits, view_logits)
        counts = self.task.metric_counts(row_logits.detach().float(), sample, model.training)  # what its metrics sum up
        counts.update(
            self._extra_terms(model, sample, row_logits, view_logits, layer_states, terms, denominators, n_units)
        )
        for key, denominator in denominators.items():
            if 0 < denominator < n_units:  # a mean over these units once fairseq divides by n_units
                terms[key] = terms[key] * (n_units / denominator)
        weights = self.loss_weights(model.training)
        loss = sum(weights[key] * value for key, value in terms.items())
        skipped = not bool(torch.isfinite(loss))
        if skipped:
            loss, terms = self._skip_batch(model, sample, terms)
        logging_output = {
            "loss": loss.data,
            **{k: v.data for k, v in terms.items()},
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": n_units,
            "views_truncated": sample.get("views_truncated", 0),
            "nonfinite_skipped": int(skipped),
            **counts,
        }
        return loss, n_units, logging_output

    @staticmethod
    def _skip_batch(model, sample, terms):
        """A non-finite loss is reported with its examples and replaced by a zero that still touches every
        trainable parameter (so every rank of a distributed run reduces the same gradients: all zero)."""
        values = {k: float(v.detach()) for k, v in terms.items()}
        logger.warning(
            "non-finite loss %s in the batch of examples %s: batch skipped (zero gradient)",
            values,
            sample["id"].tolist(),
        )
        zero = sum((p * 0.0).sum() for p in model.parameters() if p.requires_grad)
        return zero, {k: zero.detach() for k in terms}

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """The loss and its terms, and the cut views and skipped batches when there are any; the task's
        ``reduce_metrics`` calls this first, then logs its own metrics."""
        log_terms(logging_outputs, ("loss", "task_loss"), 3)
        log_terms(logging_outputs, ("r1", "r2"), 5)
        for key in ("views_truncated", "nonfinite_skipped"):
            total = sum(log.get(key, 0) for log in logging_outputs)
            if total:
                metrics.log_scalar_sum(key, total)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

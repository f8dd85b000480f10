"""``stability_distillation``: ``stability_consistency`` plus knowledge distillation from a frozen teacher.

    loss = (1 - kd_alpha) * task loss + kd_alpha * KD + pkd_mu * PKD + contrastive_weight * CON
           + r1_lambda * R1 + r2_lambda * R2

The teacher (``--teacher``) is any fine-tuned checkpoint of the same task folder (so the same labels and
vocabulary), of any ``stabletune_xlmr`` architecture: the student may be smaller (``stabletune-convert shrink``).
KD is soft-target distillation per unit (a row, a word, or a QA window's start and end distributions; a
regression's squared difference to the teacher's score), a mean over every unit like the task loss; with R1
views the student is distilled on its views too (the two halves averaged). PKD and CON are batch means (the
reference's reductions). The terms are in ``distillation_terms.py``; docs/distillation.md gives the formulas,
references and settings.

``--teacher-bank``: the teacher's outputs of the stored training rows, read from a bank
(``models/teacher_bank.py``) instead of running the teacher; the teacher still runs for rows drawn afresh every
epoch (copies, translations, text views) and for PKD and CON, which need its hidden states.
"""

import logging
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
from fairseq.criterions import register_criterion
from fairseq.logging import metrics

from ..models.heads import SpanHead
from ..models.teacher import load_teacher
from ..models.teacher_bank import TeacherBank, token_checksums
from .distillation_terms import contrastive_distillation, patient_hidden_loss, soft_target_kd, span_soft_target_kd
from .stability_consistency import StabilityConsistencyConfig, StabilityConsistencyCriterion, log_terms, select_rows

logger = logging.getLogger(__name__)

DISTILLATION_TERMS = ("kd", "pkd", "contrastive")
TEACHER_COUNTS = ("teacher_banked", "teacher_live")  # training rows whose teacher outputs were read / run


@dataclass
class StabilityDistillationConfig(StabilityConsistencyConfig):
    kd_alpha: float = field(
        default=0.5,
        metadata={
            "help": "weight of the soft-target KD term; the task loss gets 1 - alpha (Hinton et al.; 0.5 as the BERT "
            "distillation recipes start)"
        },
    )
    kd_temperature: float = field(
        default=10.0, metadata={"help": "temperature T of both softmaxes; KD is scaled by T^2"}
    )
    kd_class_mean: bool = field(
        default=False,
        metadata={
            "help": "KD's KL divided by the number of classes, as the PKD reference code's "
            "nn.KLDivLoss(reduction='mean') "
            "takes it (default: the KL summed over classes, as the formula)"
        },
    )
    pkd_mu: float = field(
        default=0.0,
        metadata={
            "help": "weight of Patient KD: MSE between L2-normalised <s> states of student layers and their teacher "
            "layers (mean over batch x layers x hidden), as intersun's PKD code (its kd.cls run: 500). Not BERT-gang's mu, which "
            "weighs an unnormalised full-sequence MSE: docs/distillation.md"
        },
    )
    pkd_layers: str = field(
        default="skip",
        metadata={
            "help": "student:teacher layer pairs, 1-based, e.g. '1:2,2:4,3:6,4:8,5:10'; 'skip': every student layer "
            "but "
            "the last against teacher layer k * teacher_layers / student_layers (PKD-skip), 'last': "
            "the last k-1 teacher layers before the top (PKD-last)"
        },
    )
    contrastive_weight: float = field(
        default=0.0,
        metadata={
            "help": "weight of the in-batch InfoNCE on the last layer's <s> states: the teacher's state of the same "
            "row against the teacher's states of the batch's rows with another label (no reference reproduced: "
            "docs/distillation.md; --layer-contrast-weight is BERT-gang's bank version)"
        },
    )
    contrastive_temperature: float = field(default=0.07, metadata={"help": "temperature of the contrastive term"})
    kd_on_views: bool = field(
        default=True,
        metadata={"help": "with R1 views, distil the views too (the teacher's outputs for the view's text)"},
    )
    teacher_bank: Optional[str] = field(
        default=None,
        metadata={
            "help": "folder written by stabletune-teacher-bank: the teacher's outputs of the stored training rows, "
            "read "
            "instead of running the teacher for them"
        },
    )


def layer_pairs(spec: str, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student, teacher) layer numbers, 1-based, of ``--pkd-layers``."""
    k = student_layers - 1
    if spec == "skip":
        if teacher_layers % student_layers:
            raise ValueError(
                f"--pkd-layers skip maps {student_layers} student layers onto {teacher_layers} teacher "
                "layers only when the second is a multiple of the first: give the pairs"
            )
        step = teacher_layers // student_layers
        return [(i, i * step) for i in range(1, k + 1)]
    if spec == "last":
        return [(i, teacher_layers - k - 1 + i) for i in range(1, k + 1)]
    try:
        pairs = [tuple(int(x) for x in pair.split(":")) for pair in spec.split(",")]
    except ValueError:
        raise ValueError(f"--pkd-layers {spec!r}: 'skip', 'last' or student:teacher pairs such as 1:2,2:4") from None
    for s, t in pairs:
        if not (1 <= s <= student_layers and 1 <= t <= teacher_layers):
            raise ValueError(
                f"--pkd-layers {s}:{t}: the student has layers 1..{student_layers}, the teacher 1..{teacher_layers}"
            )
    return pairs


@register_criterion("stability_distillation", dataclass=StabilityDistillationConfig)
class StabilityDistillationCriterion(StabilityConsistencyCriterion):
    def __init__(
        self,
        task,
        r1_lambda=0.0,
        r2_lambda=0.0,
        teacher=None,
        r2_hard_labels=False,
        r1_full_gradient=False,
        task_loss_on_views=False,
        kd_alpha=0.5,
        kd_temperature=10.0,
        kd_class_mean=False,
        pkd_mu=0.0,
        pkd_layers="skip",
        contrastive_weight=0.0,
        contrastive_temperature=0.07,
        kd_on_views=True,
        teacher_bank=None,
    ):
        super().__init__(task, r1_lambda, r2_lambda, teacher, r2_hard_labels, r1_full_gradient, task_loss_on_views)
        if not 0 <= kd_alpha <= 1 or kd_temperature <= 0:
            raise ValueError(
                f"--kd-alpha must be in [0, 1] and --kd-temperature positive (got {kd_alpha}, {kd_temperature})"
            )
        hidden_terms = pkd_mu > 0 or contrastive_weight > 0
        if not teacher and (hidden_terms or not teacher_bank or r2_lambda):
            raise ValueError(
                "distillation needs the teacher: --teacher <fine-tuned checkpoint> (a --teacher-bank alone "
                "serves KD on the stored rows only, without views, copies, PKD or the contrastive term)"
            )
        self.kd_alpha, self.kd_temperature, self.kd_class_mean = kd_alpha, kd_temperature, kd_class_mean
        self.kd_on_views, self.contrastive_temperature = kd_on_views, contrastive_temperature
        self.weights.update(
            {"task_loss": 1 - kd_alpha, "kd": kd_alpha, "pkd": pkd_mu, "contrastive": contrastive_weight}
        )
        if teacher and self.teacher is None:  # the base class loads it for R2 only
            object.__setattr__(self, "teacher", load_teacher(teacher, task))
        self.bank = TeacherBank(teacher_bank) if teacher_bank else None
        if self.bank is not None:
            self.bank.check_run(task.identity, task.num_outputs, teacher)
            logger.info("teacher bank %s: %d stored training rows", teacher_bank, self.bank.rows)
        self.wants_layer_states = hidden_terms
        self.pairs, self.projection = [], None
        if hidden_terms:
            self._build_hidden_terms(task, pkd_layers if pkd_mu > 0 else None)

    def _build_hidden_terms(self, task, pkd_layers: Optional[str]) -> None:
        """Layer pairs and, for a student narrower than its teacher, the projection of its states (trained with
        the student: a parameter of this criterion, saved in its checkpoints)."""
        teacher_cfg = self.teacher.cfg
        student_cfg = self._student_shape(task)
        if pkd_layers is not None:
            self.pairs = layer_pairs(pkd_layers, student_cfg[0], teacher_cfg.encoder_layers)
            logger.info("PKD layer pairs (student:teacher): %s", ",".join(f"{s}:{t}" for s, t in self.pairs))
        if student_cfg[1] != teacher_cfg.encoder_embed_dim:
            self.projection = nn.Linear(student_cfg[1], teacher_cfg.encoder_embed_dim)

    @staticmethod
    def _student_shape(task) -> tuple[int, int]:
        """(layers, hidden) of the model this run trains, from fairseq's model settings."""
        cfg = task.trained_model_cfg
        return cfg.encoder_layers, cfg.encoder_embed_dim

    def loss_weights(self, training: bool) -> dict:
        # Validation scores the student alone: its loss is the task loss, not (1 - alpha) of it.
        return self.weights if training else {**self.weights, "task_loss": 1.0}

    # --- the teacher's side ------------------------------------------------------------------
    @property
    def _fill(self) -> float:
        """The value of an output position no row has (padding): masked for QA's positions, else 0."""
        return SpanHead.MASKED if self.task.loss_family == "spans" else 0.0

    def _blank_like(self, logits: torch.Tensor) -> torch.Tensor:
        """float32 outputs shaped like ``logits``, each position ``_fill`` until written."""
        return torch.full_like(logits.detach(), self._fill, dtype=torch.float32)

    def _run_teacher(
        self, model, sample, part: slice, rows: torch.Tensor, out: torch.Tensor, layer_states=None
    ) -> None:
        """Run the teacher on ``rows`` (boolean) of the batch's ``part`` (its rows, or its views) and write its logits
        into ``out``; a QA or tagging output narrower than ``out`` (trimmed padding) leaves the rest as it is."""
        tokens = sample["net_input"]["src_tokens"][part]
        head_input = {k: v[part] for k, v in sample.get("head_input", {}).items()}
        selected, selected_input = select_rows(tokens, head_input, rows, self.padding_idx)
        logits = self._teacher_logits(model, selected, selected_input, layer_states).float()
        if out.dim() == 2:
            out[rows] = logits
        else:
            block = out[rows]
            width = min(block.size(1), logits.size(1))
            block[:, :width] = logits[:, :width]
            out[rows] = block

    def _teacher_outputs(self, model, sample, row_logits, layer_states: Optional[list]) -> torch.Tensor:
        """The teacher's logits of the batch's rows, shaped like ``row_logits``: from the bank for the rows it holds,
        else live; with ``layer_states`` (its ``<s>`` states per layer, for PKD and CON) every row runs live."""
        n_rows = row_logits.size(0)
        out = self._blank_like(row_logits)
        live = torch.ones(n_rows, dtype=torch.bool, device=row_logits.device)
        self._banked_rows = 0
        if self.bank is not None and layer_states is None:
            tokens = sample["net_input"]["src_tokens"][:n_rows]
            banked = self.bank.covers(sample["id"].to(tokens.device), sample.get("teacher_rows"))
            if banked.any():
                checksums = token_checksums(tokens[banked], self.padding_idx)
                out[banked] = self.bank.lookup(sample["id"][banked.cpu()], checksums, out[banked], self._fill)
            live, self._banked_rows = ~banked, int(banked.sum())
        if live.any():
            self._run_teacher(model, sample, slice(0, n_rows), live, out, layer_states)
        return out

    def _teacher_view_outputs(self, model, sample, view_logits, row_teacher) -> torch.Tensor:
        """The teacher's logits of the views: its row logits when a view keeps the row's text (dropout, noise),
        else a live run on the views' tokens."""
        if self.task.views_are_rows:
            return row_teacher
        n_rows = view_logits.size(0)
        out = self._blank_like(view_logits)
        self._run_teacher(
            model,
            sample,
            slice(n_rows, 2 * n_rows),
            torch.ones(n_rows, dtype=torch.bool, device=view_logits.device),
            out,
        )
        return out

    # --- the terms ------------------------------------------------------------------------------
    def _kd(self, student, teacher, sample) -> torch.Tensor:
        """Summed KD over the units of ``student`` (rows or views) against the teacher's logits, by task family."""
        family = self.task.loss_family
        if family == "spans":
            return span_soft_target_kd(
                student[:, : teacher.size(1)], teacher[:, : student.size(1)], self.kd_temperature, self.kd_class_mean
            ).sum()
        if family == "regression":
            return (student.float() - teacher).pow(2).sum()
        units = sample.get("word_mask")
        if units is not None:
            student, teacher = student[units], teacher[units]
        return soft_target_kd(student, teacher, self.kd_temperature, self.kd_class_mean).sum()

    def _extra_terms(self, model, sample, row_logits, view_logits, layer_states, terms, denominators, n_units):
        n_rows = row_logits.size(0)
        if not model.training:  # validation scores the student alone: the teacher is not run on dev data
            zero = row_logits.float().sum() * 0.0
            terms.update(kd=zero, pkd=zero, contrastive=zero)
            return {}
        teacher_states = [] if self.wants_layer_states else None
        teacher = self._teacher_outputs(model, sample, row_logits, teacher_states)
        kd = self._kd(row_logits, teacher, sample)
        views_run = view_logits is not None and self.kd_on_views and not self.task.views_are_rows
        if view_logits is not None and self.kd_on_views:
            kd = (
                kd + self._kd(view_logits, self._teacher_view_outputs(model, sample, view_logits, teacher), sample)
            ) / 2
        terms["kd"] = kd
        zero = kd * 0.0
        terms["pkd"], terms["contrastive"] = zero, zero
        # rows the teacher was run for (views of another text count as rows too) and rows read from the bank
        counts = {
            "teacher_banked": self._banked_rows,
            "teacher_live": n_rows - self._banked_rows + (n_rows if views_run else 0),
        }
        if not self.wants_layer_states:
            return counts
        student_states = [states[:n_rows] for states in layer_states]  # the rows' (views come after them)
        project = self.projection if self.projection is not None else (lambda x: x)
        if self.pairs:
            s = torch.stack([project(student_states[i - 1]) for i, _ in self.pairs], dim=1)
            t = torch.stack([teacher_states[j - 1] for _, j in self.pairs], dim=1)
            terms["pkd"] = patient_hidden_loss(s, t) * n_units  # a batch mean once fairseq divides by n_units
        if self.weights["contrastive"] > 0:
            labels = sample["target"] if sample["target"].dim() == 1 and self.task.loss_family == "labels" else None
            per_row = contrastive_distillation(
                project(student_states[-1]), teacher_states[-1], labels, self.contrastive_temperature
            )
            terms["contrastive"] = per_row.sum() * (n_units / n_rows)  # a mean over rows, after fairseq's division
        return counts

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """The base criterion's, then KD, PKD and CON and the teacher's row counts (0 included) where the logging
        outputs have them (validation: no teacher counts)."""
        super().reduce_metrics(logging_outputs)
        log_terms(logging_outputs, [k for k in DISTILLATION_TERMS if any(k in log for log in logging_outputs)], 5)
        for key in TEACHER_COUNTS:
            if any(key in log for log in logging_outputs):
                metrics.log_scalar_sum(key, sum(log.get(key, 0) for log in logging_outputs))

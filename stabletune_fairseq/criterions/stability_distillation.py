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
from .distillation_terms import (
    NegativeSampler,
    bank_contrastive_loss,
    contrastive_distillation,
    patient_hidden_loss,
    soft_target_kd,
    span_soft_target_kd,
    supervised_contrastive_loss,
)
from .stability_consistency import StabilityConsistencyConfig, StabilityConsistencyCriterion, log_terms, select_rows

logger = logging.getLogger(__name__)

DISTILLATION_TERMS = ("kd", "pkd", "contrastive", "layer_contrast", "scl")
# training rows whose teacher outputs were read / run; rows trained in the contrast-only phase
TEACHER_COUNTS = ("teacher_banked", "teacher_live", "contrast_only")


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
            "layers (mean over batch x layers x hidden), as intersun's PKD code (its kd.cls run: 500). Not "
            "BERT-gang's mu, which weighs an unnormalised full-sequence MSE: docs/distillation.md"
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
    layer_contrast_weight: float = field(
        default=0.0,
        metadata={
            "help": "weight of BERT-gang's layer-wise contrast with bank negatives (after the contrast-only phase; "
            "1 there): per layer pair, the student's <s> state against the teacher's state of the same row and K "
            "bank states of other rows, cross-entropy on cosine / tau, mean over rows, summed over pairs; needs "
            "--teacher-bank written with --states (run_layerwise_contrast_distill.py --contrast_weight, default 1)"
        },
    )
    layer_contrast_temperature: float = field(
        default=0.07, metadata={"help": "tau of the layer-wise contrast (BERT-gang --contrast_temp 0.07)"}
    )
    layer_contrast_negatives: int = field(
        default=20, metadata={"help": "K bank negatives per row (BERT-gang --neg_num: 20 layer-wise, 10 last-layer)"}
    )
    layer_contrast_any_row: bool = field(
        default=False,
        metadata={
            "help": "negatives among every other row (BERT-gang without --defined_by_label); default: rows of "
            "another label, as its MNLI recipe"
        },
    )
    layer_contrast_layers: str = field(
        default="all",
        metadata={
            "help": "student:teacher pairs, 1-based; 'all': student layer k against teacher layer k * N / M for "
            "k = 1..M, the last included (BERT-gang); 'last': the last layers only; or pairs such as 1:2,2:4"
        },
    )
    contrast_steps: int = field(
        default=0,
        metadata={
            "help": "updates of the layer-wise contrast alone (weight 1, no task loss, no KD) before the other terms "
            "join (BERT-gang --contrast_steps); read from fairseq's update count, so a resumed run switches at the "
            "same update"
        },
    )
    scl_lambda: float = field(
        default=0.0,
        metadata={
            "help": "supervised contrastive loss on the student's last-layer <s>: loss = (1 - lambda) * (the "
            "other terms) + lambda * SCL (BERT-gang distill_mgpu's ce_weights = 1 - lambda; 1: SCL alone, as "
            "train_scl_from_ckpt.py)"
        },
    )
    scl_temperature: float = field(default=0.1, metadata={"help": "tau of SCL (BERT-gang --scl_temp 0.1)"})
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


def contrast_layer_pairs(spec: str, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student, teacher) layer numbers, 1-based, of ``--layer-contrast-layers``: 'all' maps every student layer,
    the last included, onto teacher layer k * N / M (BERT-gang's ``all_mem_files[step - 1::step]``), 'last' the
    last onto the last."""
    if spec == "all":
        if teacher_layers % student_layers:
            raise ValueError(
                f"--layer-contrast-layers all maps {student_layers} student layers onto {teacher_layers} teacher "
                "layers only when the second is a multiple of the first: give the pairs"
            )
        step = teacher_layers // student_layers
        return [(i, i * step) for i in range(1, student_layers + 1)]
    if spec == "last":
        return [(student_layers, teacher_layers)]
    return layer_pairs(spec, student_layers, teacher_layers)


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
        layer_contrast_weight=0.0,
        layer_contrast_temperature=0.07,
        layer_contrast_negatives=20,
        layer_contrast_any_row=False,
        layer_contrast_layers="all",
        contrast_steps=0,
        scl_lambda=0.0,
        scl_temperature=0.1,
    ):
        super().__init__(task, r1_lambda, r2_lambda, teacher, r2_hard_labels, r1_full_gradient, task_loss_on_views)
        if not 0 <= kd_alpha <= 1 or kd_temperature <= 0:
            raise ValueError(
                f"--kd-alpha must be in [0, 1] and --kd-temperature positive (got {kd_alpha}, {kd_temperature})"
            )
        hidden_terms = pkd_mu > 0 or contrastive_weight > 0
        self.layer_contrast = layer_contrast_weight > 0 or contrast_steps > 0
        if not 0 <= scl_lambda <= 1 or contrast_steps < 0:
            raise ValueError(
                f"--scl-lambda must be in [0, 1] and --contrast-steps >= 0 (got {scl_lambda}, {contrast_steps})"
            )
        if (self.layer_contrast or scl_lambda) and (
            task.kind not in ("sentence_pair", "glue") or task.loss_family != "labels"
        ):
            raise ValueError(
                f"--layer-contrast-weight, --contrast-steps and --scl-lambda take negatives and positives by the row's "
                f"label: a {task.kind} task ({task.loss_family}) has no label per row"
            )
        if not teacher and (hidden_terms or r2_lambda or (kd_alpha > 0 and not teacher_bank)):
            raise ValueError(
                "distillation needs the teacher: --teacher <fine-tuned checkpoint> (a --teacher-bank alone "
                "serves KD on the stored rows only, without views, copies, PKD or the contrastive term)"
            )
        if self.layer_contrast and not teacher_bank:
            raise ValueError(
                "--layer-contrast-weight and --contrast-steps read the teacher's states from --teacher-bank"
            )
        self.kd_alpha, self.kd_temperature, self.kd_class_mean = kd_alpha, kd_temperature, kd_class_mean
        self.kd_on_views, self.contrastive_temperature = kd_on_views, contrastive_temperature
        self.weights.update(
            {"task_loss": 1 - kd_alpha, "kd": kd_alpha, "pkd": pkd_mu, "contrastive": contrastive_weight}
        )
        if scl_lambda:  # Gunel et al.'s mix: the other terms take 1 - lambda
            self.weights = {k: (1 - scl_lambda) * w for k, w in self.weights.items()}
            self.weights["scl"] = scl_lambda
        if self.layer_contrast:
            self.weights["layer_contrast"] = layer_contrast_weight
        self.contrast_steps, self.num_updates = contrast_steps, 0
        self.scl_temperature, self.layer_contrast_temperature = scl_temperature, layer_contrast_temperature
        if teacher and self.teacher is None:  # the base class loads it for R2 only
            object.__setattr__(self, "teacher", load_teacher(teacher, task))
        self.bank = TeacherBank(teacher_bank) if teacher_bank else None
        if self.bank is not None:
            self.bank.check_run(task.identity, task.num_outputs, teacher)
            logger.info("teacher bank %s: %d stored training rows", teacher_bank, self.bank.rows)
        self.live_teacher_states = hidden_terms  # PKD and the in-batch term run the teacher for its states
        self.wants_layer_states = hidden_terms or self.layer_contrast or scl_lambda > 0
        self.pairs, self.contrast_pairs, self.projection = [], [], None
        if hidden_terms or self.layer_contrast:
            self._build_hidden_terms(task, pkd_layers if pkd_mu > 0 else None)
        if self.layer_contrast:
            student_layers, _ = self._student_shape(task)
            teacher_layers = self._bank_teacher_layers()
            self.contrast_pairs = contrast_layer_pairs(layer_contrast_layers, student_layers, teacher_layers)
            self.contrast_positions = self.bank.check_states([t for _, t in self.contrast_pairs])
            seed = getattr(task.cfg, "seed", 1)
            self.sampler = NegativeSampler(
                self.bank.labels, layer_contrast_negatives, not layer_contrast_any_row, seed, f"{teacher_bank}"
            )
            logger.info(
                "layer-wise contrast pairs (student:teacher): %s; %d negatives; contrast alone for %d updates",
                ",".join(f"{s}:{t}" for s, t in self.contrast_pairs),
                layer_contrast_negatives,
                contrast_steps,
            )

    def _bank_teacher_layers(self) -> int:
        """The teacher's depth: the loaded teacher's, else the deepest layer the bank has states of."""
        if self.teacher is not None:
            return self.teacher.cfg.encoder_layers
        return int(self.bank.record.get("teacher_layers", max(self.bank.state_layers, default=0)))

    def set_num_updates(self, num_updates: int) -> None:
        """fairseq's update count (restored on resume), given by the task's train_step: the phase and the draw of
        negatives follow it."""
        self.num_updates = num_updates

    @property
    def _contrast_only(self) -> bool:
        return self.num_updates < self.contrast_steps

    def _build_hidden_terms(self, task, pkd_layers: Optional[str]) -> None:
        """Layer pairs and, for a student narrower than its teacher, the projection of its states (trained with
        the student: a parameter of this criterion, saved in its checkpoints)."""
        student_cfg = self._student_shape(task)
        if pkd_layers is not None:
            self.pairs = layer_pairs(pkd_layers, student_cfg[0], self.teacher.cfg.encoder_layers)
            logger.info("PKD layer pairs (student:teacher): %s", ",".join(f"{s}:{t}" for s, t in self.pairs))
        width = self.teacher.cfg.encoder_embed_dim if self.teacher is not None else self.bank.record["hidden"]
        if student_cfg[1] != width:
            self.projection = nn.Linear(student_cfg[1], width)

    @staticmethod
    def _student_shape(task) -> tuple[int, int]:
        """(layers, hidden) of the model this run trains, from fairseq's model settings."""
        cfg = task.trained_model_cfg
        return cfg.encoder_layers, cfg.encoder_embed_dim

    def loss_weights(self, training: bool) -> dict:
        # Validation scores the student alone: its loss is the task loss, not (1 - alpha) of it.
        if not training:
            return {**self.weights, "task_loss": 1.0}
        if self.layer_contrast and self._contrast_only:  # BERT-gang's first phase: the contrast alone, weight 1
            return {**{k: 0.0 for k in self.weights}, "layer_contrast": 1.0}
        return self.weights

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
        zero = row_logits.float().sum() * 0.0
        extra = {key: zero for key in ("layer_contrast", "scl") if key in self.weights}
        if not model.training:  # validation scores the student alone: the teacher is not run on dev data
            terms.update(kd=zero, pkd=zero, contrastive=zero, **extra)
            return {}
        terms.update(extra)
        student_states = [states[:n_rows] for states in layer_states] if layer_states is not None else None
        if "scl" in self.weights:
            per_anchor, has_positive = supervised_contrastive_loss(
                student_states[-1], sample["target"], self.scl_temperature
            )
            anchors = int(has_positive.sum())
            if anchors:  # a mean over the anchors with a positive, after fairseq's division by n_units
                terms["scl"] = per_anchor[has_positive].sum() * (n_units / anchors)
        if self.layer_contrast:
            terms["layer_contrast"] = self._layer_contrast(sample, student_states, n_units)
        if self._contrast_only and self.layer_contrast:  # the first phase: no teacher logits, no other term
            terms.update(kd=zero, pkd=zero, contrastive=zero)
            return {"teacher_banked": 0, "teacher_live": 0, "contrast_only": n_rows}
        if self.teacher is None and self.bank is None:  # SCL alone (--kd-alpha 0): no teacher at all
            terms.update(kd=zero, pkd=zero, contrastive=zero)
            return {"teacher_banked": 0, "teacher_live": 0}
        teacher_states = [] if self.live_teacher_states else None
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
        if self.layer_contrast:
            counts["contrast_only"] = 0
        if not self.live_teacher_states:
            return counts
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

    def _layer_contrast(self, sample, student_states, n_units) -> torch.Tensor:
        """The layer-wise contrast of the batch's stored training rows (summed; a mean over them once fairseq
        divides by ``n_units``): their states and negatives from the bank, checked row by row like its logits."""
        n_rows = student_states[0].size(0)
        tokens = sample["net_input"]["src_tokens"][:n_rows]
        ids = sample["id"].to(tokens.device)
        rows = self.bank.covers(ids, sample.get("teacher_rows"))
        if not rows.any():
            return student_states[0].float().sum() * 0.0
        ids = sample["id"][rows.cpu()].cpu().numpy()
        self.bank.check_rows(ids, token_checksums(tokens[rows], self.padding_idx))
        labels = sample["target"][:n_rows][rows].cpu().numpy()
        if (self.bank.labels[ids] != labels).any():
            raise ValueError(
                f"teacher bank {self.bank.folder}: the rows' labels differ from the bank's: write it again"
            )
        project = self.projection if self.projection is not None else (lambda x: x)
        student = torch.stack([project(student_states[s - 1][rows]) for s, _ in self.contrast_pairs], dim=1)
        device = student.device
        positives = self.bank.states_of(ids, self.contrast_positions).to(device)
        negative_ids = self.sampler.draw(ids, self.num_updates)  # rows x K
        negatives = self.bank.states_of(negative_ids.reshape(-1), self.contrast_positions).to(device)
        negatives = negatives.view(len(ids), negative_ids.shape[1], *positives.shape[1:])
        per_pair = bank_contrastive_loss(student, positives, negatives, self.layer_contrast_temperature)
        return per_pair.sum() * (n_units / len(ids))

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        """The base criterion's, then KD, PKD and CON and the teacher's row counts (0 included) where the logging
        outputs have them (validation: no teacher counts)."""
        super().reduce_metrics(logging_outputs)
        log_terms(logging_outputs, [k for k in DISTILLATION_TERMS if any(k in log for log in logging_outputs)], 5)
        for key in TEACHER_COUNTS:
            if any(key in log for log in logging_outputs):
                metrics.log_scalar_sum(key, sum(log.get(key, 0) for log in logging_outputs))

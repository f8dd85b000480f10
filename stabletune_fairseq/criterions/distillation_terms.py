"""The loss terms of knowledge distillation, shared by every task family (docs/distillation.md).

Soft-target KD (Hinton et al. 2015): ``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` per unit, the
KL summed over the classes (a unit: a row, a word of a tagging row, or a QA window, whose start and end
distributions over its positions each give one KL and the unit their mean). The teacher side is fixed.

Patient KD (Sun et al. 2019, "PKD"): the ``<s>`` states of chosen student layers and of the teacher layers they
map to, each L2-normalised, compared by mean squared error over batch x layers x hidden (as the reference's
``patience_loss``); a student narrower than its teacher is first projected to the teacher's width.

In-batch InfoNCE on ``<s>`` states (ours; it follows neither CoDIR's CRD-style NCE nor BERT-gang's bank): the
student's last-layer ``<s>`` state of a row (projected, normalised) should be closer to the teacher's state of the
same row than to the teacher's states of the other rows of the batch with another label, with temperature ``tau``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.precision import full_precision
from .kl_terms import kl_to_target


def soft_target_kd(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float, class_mean: bool = False
) -> torch.Tensor:
    """``T^2 * KL(p_teacher^T || p_student^T)`` for every unit (the last dimension holds the classes).
    ``class_mean``: the KL divided by the number of classes, as ``nn.KLDivLoss(reduction="mean")`` in the PKD
    reference code takes it."""
    kl = kl_to_target(student.float() / temperature, teacher.float() / temperature)
    return kl * temperature**2 / (student.size(-1) if class_mean else 1)


def span_soft_target_kd(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float, class_mean: bool = False
) -> torch.Tensor:
    """QA: soft-target KD of the start and of the end distributions (batch x time x 2 logits) per window, their
    mean. Masked positions (-1e4) carry no mass on either side."""
    per_boundary = lambda logits: logits.transpose(1, 2).reshape(-1, logits.size(1))
    return soft_target_kd(per_boundary(student), per_boundary(teacher), temperature, class_mean).view(-1, 2).mean(1)


def patient_hidden_loss(student_states: torch.Tensor, teacher_states: torch.Tensor) -> torch.Tensor:
    """PKD: MSE between the L2-normalised states, both batch x layers x hidden (the student's already projected
    to the teacher's width); the mean over every element."""
    student = F.normalize(student_states.float(), p=2, dim=-1)
    teacher = F.normalize(teacher_states.detach().float(), p=2, dim=-1)
    return F.mse_loss(student, teacher, reduction="mean")


def contrastive_distillation(
    student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None, temperature: float
) -> torch.Tensor:
    """InfoNCE per row: the student's state (batch x hidden, projected to the teacher's width) against the
    teacher's state of the same row (positive) and of the rows with another label (negatives; every other row
    when ``labels`` is None), cosine similarities divided by ``temperature``. Rows with no negative give 0."""
    s = F.normalize(student.float(), dim=-1)
    t = F.normalize(teacher.detach().float(), dim=-1)
    with full_precision():  # float32 under bf16 autocast too: a small temperature magnifies rounding
        similarity = s @ t.t() / temperature  # batch x batch: row i against the teacher's row j
    eye = torch.eye(len(s), dtype=torch.bool, device=s.device)
    negative = ~eye if labels is None else labels.view(-1, 1).ne(labels.view(1, -1))
    candidates = similarity.masked_fill(~(negative | eye), float("-inf"))
    loss = candidates.logsumexp(1) - similarity.diagonal()
    return torch.where(negative.any(1), loss, torch.zeros_like(loss))

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

import numpy as np
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


def bank_contrastive_loss(
    student: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, temperature: float
) -> torch.Tensor:
    """BERT-gang's layer-wise contrast (``fine_tune/util/contrast_distill_layerwise.py``), per row and layer pair:
    the cross-entropy of [positive | K negatives] with the positive as the target, on cosine similarities divided
    by ``temperature``. ``student`` rows x pairs x hidden (projected to the teacher's width), ``positives`` the
    teacher's states of the same rows, rows x pairs x hidden, ``negatives`` rows x K x pairs x hidden (from the
    bank). Returns rows x pairs; the reference takes the mean over rows and sums over the pairs."""
    s = F.normalize(student.float(), dim=-1)
    positive = F.normalize(positives.detach().float(), dim=-1)
    negative = F.normalize(negatives.detach().float(), dim=-1)
    with full_precision():  # a temperature of 0.07 magnifies bf16 rounding
        logits = torch.cat([(s * positive).sum(-1, keepdim=True), torch.einsum("bph,bkph->bpk", s, negative)], dim=-1)
        logits = logits / temperature
    return logits.logsumexp(-1) - logits[..., 0]


def supervised_contrastive_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """SCL (Khosla et al. 2020, as BERT-gang's ``contrast_util/supconloss.py`` and Gunel et al. 2021 use it) on the
    rows' ``<s>`` states (rows x hidden): for each anchor i, minus the mean over the other rows p of its label of
    ``log(exp(z_i.z_p / tau) / sum over every row a != i of exp(z_i.z_a / tau))``, z the L2-normalised states.
    Returns per anchor the loss and whether it had a positive: an anchor alone with its label has none (the
    reference raises on the NaN it gives, and its balanced batch sampler keeps it from happening); it is left out
    of the mean here."""
    z = F.normalize(features.float(), dim=-1)
    n = len(z)
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    with full_precision():
        similarity = (z @ z.t() / temperature).masked_fill(eye, float("-inf"))
    log_prob = similarity - similarity.logsumexp(1, keepdim=True)
    positive = labels.view(-1, 1).eq(labels.view(1, -1)) & ~eye
    count = positive.sum(1)
    summed = log_prob.masked_fill(~positive, 0.0).sum(1)
    return -summed / count.clamp(min=1), count > 0


class NegativeSampler:
    """BERT-gang's negatives (``fine_tune/task/_dataset.py`` ``ContrastDataset.__getitem__``): for a row, K other
    rows of the bank drawn without replacement, among the rows of another label (``defined_by_label``) or among
    every other row. Drawn afresh for every row at every update; here from a generator seeded by (seed, update, row
    id), so a run and its resumption draw the same."""

    def __init__(self, labels: np.ndarray, k: int, by_label: bool, seed: int, where: str):
        self.labels, self.k, self.by_label, self.seed = np.asarray(labels), k, by_label, seed
        self.order = np.argsort(self.labels, kind="stable")
        values, starts, counts = np.unique(self.labels[self.order], return_index=True, return_counts=True)
        self.block = {int(v): (int(s), int(c)) for v, s, c in zip(values, starts, counts)}
        fewest = len(self.labels) - (max(counts) if by_label else 1)
        if k < 1 or fewest < k:
            raise ValueError(
                f"{where}: {k} negatives per row, but a row has only {fewest} candidates"
                + (" of another label" if by_label else "")
            )
        if by_label and (self.labels < 0).any():
            raise ValueError(f"{where}: rows without a label (-1) have no negatives of another label")

    def draw(self, row_ids, update: int) -> np.ndarray:
        """rows x K bank row ids."""
        out = np.empty((len(row_ids), self.k), dtype=np.int64)
        n = len(self.labels)
        for i, row in enumerate(np.asarray(row_ids).tolist()):
            rng = np.random.default_rng([self.seed, update, row])
            if self.by_label:
                start, count = self.block[int(self.labels[row])]
                picked = rng.choice(n - count, self.k, replace=False)
                out[i] = self.order[np.where(picked >= start, picked + count, picked)]
            else:
                picked = rng.choice(n - 1, self.k, replace=False)
                out[i] = np.where(picked >= row, picked + 1, picked)
        return out

"""Loss terms for answer spans: the start and end distributions over a window's positions.

Logits are batch x time x 2 (start, end), positions outside the null token and the context already
masked by the span head. Every term is per row (window): the mean of its start and end terms.

Span consistency (R1) compares a row and its view over their common support only: the null position
and the context pieces of the words that are the same in both (``support``: positions in the row and
in the view, -1 padded). The probability of every other position (perturbed words, where the two views
hold different pieces) is folded into one bucket, so both distributions live on the same K + 1 outcomes
and their KL is defined (docs/method.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .kl_terms import kl_to_target, symmetric_consistency


def _per_boundary(logits: torch.Tensor) -> torch.Tensor:
    """batch x time x 2 -> (batch * 2) x time: one distribution per (row, start|end)."""
    return logits.transpose(1, 2).reshape(-1, logits.size(1))


def span_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the start and end positions, per row (their mean)."""
    per_boundary = F.cross_entropy(_per_boundary(logits).float(), target.reshape(-1), reduction="none")
    return per_boundary.view(-1, 2).mean(1)


def fold_to_support(logits: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the ``positions`` (batch x K, -1 padded) and of one bucket holding the rest:
    batch x 2 x (K + 1), padded outcomes at -inf (no mass on either side, so they add 0 to a KL)."""
    log_probs = F.log_softmax(logits.float(), dim=1)  # batch x time x 2
    valid = positions >= 0
    index = positions.clamp(min=0)
    kept = log_probs.gather(1, index.unsqueeze(-1).expand(-1, -1, 2))
    kept = kept.masked_fill(~valid.unsqueeze(-1), float("-inf"))
    # Mark the support; padded entries point at an extra column that is dropped.
    in_support = torch.zeros(logits.size(0), logits.size(1) + 1, dtype=torch.bool, device=logits.device)
    in_support.scatter_(1, torch.where(valid, index, logits.size(1)), True)
    rest = log_probs.masked_fill(in_support[:, :-1].unsqueeze(-1), float("-inf")).logsumexp(1, keepdim=True)
    return torch.cat([kept, rest], dim=1).transpose(1, 2)


def span_consistency(
    row_logits: torch.Tensor, view_logits: torch.Tensor, support: torch.Tensor, stop_gradient: bool = True
) -> torch.Tensor:
    """R1 per row: symmetric KL of the folded start distributions and of the end ones, their mean."""
    rows = fold_to_support(row_logits, support[:, 0])
    views = fold_to_support(view_logits, support[:, 1])
    return (
        symmetric_consistency(rows.reshape(-1, rows.size(-1)), views.reshape(-1, views.size(-1)), stop_gradient)
        .view(-1, 2)
        .mean(1)
    )


def span_teacher_term(student: torch.Tensor, teacher: torch.Tensor, hard_labels: bool) -> torch.Tensor:
    """R2 per row: KL(teacher || student) over the positions (or cross-entropy on the teacher's argmax)."""
    if hard_labels:
        return span_loss(student, teacher.argmax(1))
    return kl_to_target(_per_boundary(student), _per_boundary(teacher)).view(-1, 2).mean(1)

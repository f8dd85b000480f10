"""The KL terms of xTune, shared by every task family.

``kl_to_target(logits, target_logits)`` is KL(p_target || p) per row, summed over the last dimension,
with the target distribution detached (stop-gradient): the gradient flows only through ``logits``.
Both distributions are taken as log-softmax in float32, so extreme logits (±1e4) and one-hot
distributions stay finite, and classes without target mass (masked with -inf) contribute exactly 0.

R1 (example consistency) = KL(p_aug || sg p_orig) + KL(p_orig || sg p_aug), i.e.
``kl_to_target(orig, aug) + kl_to_target(aug, orig)``; R2 (model consistency) = KL(p_teacher || p_student)
on the augmented view, ``kl_to_target(student, teacher)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kl_to_target(logits: torch.Tensor, target_logits: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    """KL(softmax(target) || softmax(logits)) for every row; gradient only through ``logits`` (through both
    with ``stop_gradient=False``, as R-Drop and R3F take it)."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_t = F.log_softmax((target_logits.detach() if stop_gradient else target_logits).float(), dim=-1)
    t = log_t.exp()
    # Classes the target gives no mass (e.g. masked with -inf) add exactly 0, not 0 * inf = nan.
    return torch.where(t > 0, t * (log_t - log_p), torch.zeros_like(t)).sum(-1)


def symmetric_consistency(logits_a: torch.Tensor, logits_b: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    """R1 per row: KL(p_b || sg p_a) + KL(p_a || sg p_b) (without ``sg`` when ``stop_gradient`` is False)."""
    return kl_to_target(logits_a, logits_b, stop_gradient) + kl_to_target(logits_b, logits_a, stop_gradient)


def squared_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """R1 of a regression per row: (a - b)^2. Its gradient, 2(a - b) for a and 2(b - a) for b, is the one of the
    symmetric stop-gradient form (a - sg b)^2 + (b - sg a)^2 too, so there is nothing to choose here."""
    return (a.float() - b.float()).pow(2).reshape(a.size(0), -1).sum(-1)

"""The multilingual contrastive learning (MCL) term of the multi-stage distillation framework (Ding et al., NAACL
2022; docs/compressed-students.md), as its code computes it (``model/multilingual/rec_bottle_mcl.py`` l.195-203,
``formatter/sentence/teacher_sim_formatter.py`` l.28, ``utils/cos.py``):

    MCL = MSE( cos(T(s_i), T(s_j)), cos(S(s_i), S(t_j)) )    over every i, j of the batch

the mean over the n x n entries of the squared difference between the teacher's cosine similarities among the
source sentences and the student's between each source and each translation. No temperature, no softmax; the
framework adds it to the two MSE terms of Reimers & Gurevych with weights 1:1:1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """n x m cosine similarities of the rows of ``a`` and ``b`` (float32)."""
    return F.normalize(a.float(), p=2, dim=1) @ F.normalize(b.float(), p=2, dim=1).t()


def mcl_loss(student_src: torch.Tensor, student_tgt: torch.Tensor, teacher_src: torch.Tensor) -> torch.Tensor:
    """The framework's MCL of n paired rows: a scalar, the mean over n x n entries."""
    target = cosine_matrix(teacher_src, teacher_src).detach()
    return (cosine_matrix(student_src, student_tgt) - target).pow(2).mean()

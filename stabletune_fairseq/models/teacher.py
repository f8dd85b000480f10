"""The frozen teacher of stage 2: the stage-1 best checkpoint, in eval mode, never trained."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def load_teacher(path: str, task):
    from fairseq import checkpoint_utils

    from ..reliability.checkpoint_safety import WrongCheckpoint, fairseq_types_allowed, open_checkpoint
    from ..reliability.run_identity import check_identity, recorded_identity

    if not os.path.exists(path):
        raise WrongCheckpoint(f"teacher {path}: no such file (run stage 1 first, or name one with TEACHER=)")
    state = open_checkpoint(path, "teacher")  # a clear error for a crafted or foreign file, before fairseq reads it
    check_identity(path, "teacher", recorded_identity(state), task.identity)
    with fairseq_types_allowed():  # fairseq's own torch.load (weights_only), also outside fairseq-train
        models, _ = checkpoint_utils.load_model_ensemble([path], task=task)
    teacher = freeze_teacher(models[0])
    logger.info("teacher: %s (frozen, eval mode)", path)
    return teacher


def freeze_teacher(model):
    """``model`` in eval mode (no dropout) with no parameter that takes gradients."""
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model

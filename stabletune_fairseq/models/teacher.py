"""The frozen teacher of stage 2: the stage-1 best checkpoint, in eval mode, never trained."""
from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def load_teacher(path: str, task):
    from fairseq import checkpoint_utils

    from ..checkpoint_safety import load_checkpoint_safely

    if not os.path.isfile(path):
        raise FileNotFoundError(f"teacher checkpoint not found: {path} (run stage 1 first, or name one with TEACHER=)")
    load_checkpoint_safely(path)  # a clear error for a crafted file, before fairseq reads it
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

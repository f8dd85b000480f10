"""Initialise our encoder from an official-format XLM-R ``model.pt`` (read by ``release.py``); skip that when
a run resumes from its own checkpoint."""
from __future__ import annotations

import logging
import os

import torch
from fairseq.distributed import utils as distributed_utils

from ..checkpoint_recovery import recover_last_checkpoint
from ..release import ENCODER_PREFIX, read_release

logger = logging.getLogger(__name__)


def load_pretrained_encoder(model, path: str) -> None:
    """Copy the encoder weights of ``path`` into ``model``; every encoder parameter must be covered."""
    weights = read_release(path)
    own = {k: v for k, v in model.state_dict().items() if k.startswith(ENCODER_PREFIX)}
    # fairseq keeps a constant buffer here in some versions; it is not a learned weight.
    own.pop(ENCODER_PREFIX + "version", None)
    missing = sorted(set(own) - set(weights))
    if missing:
        raise ValueError(f"{path}: {len(missing)} encoder weights missing, e.g. {missing[:3]}")
    for key, value in own.items():
        if weights[key].shape != value.shape:
            raise ValueError(f"{path}: {key} has shape {tuple(weights[key].shape)}, the model needs "
                             f"{tuple(value.shape)} (wrong --arch for this checkpoint?)")
    unused = sorted(k for k in set(weights) - set(own) if not k.endswith((".version", "._float_tensor")))
    if unused:  # e.g. layers the model does not have: a 12-layer checkpoint loaded into a 6-layer model
        raise ValueError(f"{path}: {len(unused)} encoder weights have no place in the model, e.g. {unused[:3]} "
                         "(wrong --arch for this checkpoint?)")
    model.load_state_dict({**model.state_dict(), **{k: weights[k] for k in own}}, strict=True)
    logger.info("loaded pretrained encoder from %s (%d tensors; LM head ignored)", path, len(own))


def maybe_load_pretrained(model, cfg) -> bool:
    """Load ``cfg.pretrained_encoder`` unless the save dir already has a checkpoint to resume from
    (a damaged or missing ``checkpoint_last.pt`` is first restored from the newest sound checkpoint)."""
    save_dir = getattr(cfg, "save_dir", None)
    recover_last_checkpoint(save_dir, is_master=distributed_utils.get_global_rank() == 0)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # every rank sees the restored file before fairseq loads it
    path = getattr(cfg, "pretrained_encoder", None)
    if not path:
        return False
    if save_dir and os.path.exists(os.path.join(save_dir, "checkpoint_last.pt")):
        logger.info("%s has checkpoint_last.pt: resuming from it, not loading %s", save_dir, path)
        return False
    load_pretrained_encoder(model, path)
    return True

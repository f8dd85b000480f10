"""Initialise our encoder from an official-format XLM-R ``model.pt`` (read by ``release.py``); skip that when
a run resumes from its own checkpoint."""

from __future__ import annotations

import logging
import os

import torch
from fairseq.distributed import utils as distributed_utils

from ..release import ENCODER_PREFIX, read_release
from ..reliability.checkpoint_recovery import recover_last_checkpoint
from ..reliability.checkpoint_safety import WrongCheckpoint, open_checkpoint
from ..reliability.run_identity import check_fits_model, check_identity, check_vocabulary, recorded_identity

logger = logging.getLogger(__name__)


def load_pretrained_encoder(model, path: str) -> None:
    """Copy the encoder weights of ``path`` into ``model``; every encoder parameter must be covered."""
    weights = read_release(path)
    own = {k: v for k, v in model.state_dict().items() if k.startswith(ENCODER_PREFIX)}
    # fairseq keeps a constant buffer here in some versions; it is not a learned weight.
    own.pop(ENCODER_PREFIX + "version", None)
    missing = sorted(set(own) - set(weights))
    if missing:
        raise WrongCheckpoint(
            f"pretrained model {path}: {len(missing)} encoder weights missing, e.g. {missing[:3]} "
            "(another architecture than --arch?)"
        )
    embeddings = ENCODER_PREFIX + "embed_tokens.weight"
    check_vocabulary(
        path, "pretrained model", weights[embeddings].shape[0], own[embeddings].shape[0], "the task's dictionary"
    )
    for key, value in own.items():
        if weights[key].shape != value.shape:
            raise WrongCheckpoint(
                f"pretrained model {path}: {key} has shape {tuple(weights[key].shape)}, the model "
                f"needs {tuple(value.shape)} (another architecture than --arch?)"
            )
    unused = sorted(k for k in set(weights) - set(own) if not k.endswith((".version", "._float_tensor")))
    if unused:  # e.g. layers the model does not have: a 12-layer checkpoint loaded into a 6-layer model
        raise WrongCheckpoint(
            f"pretrained model {path}: {len(unused)} encoder weights have no place in the model, "
            f"e.g. {unused[:3]} (another architecture than --arch?)"
        )
    model.load_state_dict({**model.state_dict(), **{k: weights[k] for k in own}}, strict=True)
    logger.info("loaded pretrained encoder from %s (%d tensors; LM head ignored)", path, len(own))


def load_fine_tuned(model, path: str, task) -> None:
    """Copy every weight of the fine-tuned checkpoint ``path`` (encoder and heads) into ``model``: it must be
    ours, of ``task``'s folder (task, labels, vocabulary and data fingerprint) and hold exactly the model's
    weights; anything else is one line naming the file and the reason."""
    role = "checkpoint to initialise from (--init-checkpoint)"
    if not os.path.isfile(path):
        raise WrongCheckpoint(f"{role} {path}: no such file")
    state = open_checkpoint(path, role)
    recorded = recorded_identity(state)
    if task is None or recorded is None:
        raise WrongCheckpoint(
            f"{role} {path}: records no task folder (not a checkpoint fine-tuned here), so it cannot be checked "
            "against this run's data"
        )
    # Another task, label list or vocabulary raises; other data of the same task only warns there, and is
    # refused here: the head was fit to other rows, which is a different experiment than KD from a checkpoint.
    other_data = check_identity(path, role, recorded, task.identity)
    if other_data:
        raise WrongCheckpoint(
            f"{role} {path}: fine-tuned on other data of the same task ({recorded['data']}), not this run's "
            f"task folder {task.identity['data']} (data fingerprints differ)"
        )
    check_fits_model(path, role, state, model)
    model.load_state_dict(state["model"], strict=True)
    logger.info("initialised from the fine-tuned checkpoint %s (%d tensors, heads included)", path, len(state["model"]))


def maybe_load_pretrained(model, cfg, task=None) -> bool:
    """Load ``cfg.pretrained_encoder`` unless the save dir already has a checkpoint to resume from
    (a damaged or missing ``checkpoint_last.pt`` is first restored from the newest sound checkpoint; one
    trained on another task, label list or vocabulary than ``task.identity`` describes is an error)."""
    save_dir = getattr(cfg, "save_dir", None)
    recover_last_checkpoint(save_dir, is_master=distributed_utils.get_global_rank() == 0)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # every rank sees the restored file before fairseq loads it
    last = os.path.join(save_dir, "checkpoint_last.pt") if save_dir else None
    resuming = bool(last) and os.path.exists(last)
    if resuming:  # read weights-only here: a crafted file is refused with a clear message before fairseq loads it
        state = open_checkpoint(last, "checkpoint to resume from")
        if task is not None:
            check_identity(last, "checkpoint to resume from", recorded_identity(state), task.identity)
        check_fits_model(last, "checkpoint to resume from", state, model)
    init = getattr(cfg, "init_checkpoint", None)
    path = init or getattr(cfg, "pretrained_encoder", None)
    if not path:
        return False
    if resuming:
        logger.info("%s has checkpoint_last.pt: resuming from it, not loading %s", save_dir, path)
        return False
    if init:  # the fine-tuned weights replace the pretrained encoder's (which would be overwritten anyway)
        load_fine_tuned(model, init, task)
    else:
        load_pretrained_encoder(model, path)
    return True

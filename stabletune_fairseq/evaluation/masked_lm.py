"""Masked-LM loss of any checkpoint of our encoder on a folder written by ``process.sh <text> mlm``: what
``stabletune-mlm-eval`` measures (its page: docs/long-context.md). The split's blocks with the task's fixed validation
masks, dropout off, and the criterion's own sums (``criterions/masked_lm.py``); a checkpoint without an LM head gets
a new one (``lm_head_seed``), which says nothing about the encoder.
"""

from __future__ import annotations

import dataclasses
import math


def model_config(state: dict, weights: dict):
    """A ``StabletuneXLMRConfig`` with the checkpoint's shape: its stored settings, the sizes of its weights, and
    the rows of its position table."""
    from ..models.stabletune_xlmr import StabletuneXLMRConfig
    from ..release import encoder_shape, positions_of, stored_settings

    stored = stored_settings(state)
    known = {f.name for f in dataclasses.fields(StabletuneXLMRConfig)} - {
        "pretrained_encoder",
        "save_dir",
        "freeze_embeddings",
    }
    cfg = StabletuneXLMRConfig(**{k: v for k, v in stored.items() if k in known and v is not None})
    shape = encoder_shape(weights, stored)
    cfg.encoder_embed_dim, cfg.encoder_layers = shape.hidden, shape.layers
    cfg.encoder_ffn_embed_dim, cfg.encoder_attention_heads = shape.ffn, shape.heads
    cfg.max_positions = positions_of(state)
    return cfg


def load_for_mlm(checkpoint: str, task, lm_head_seed: int = 1, attention_window: int | None = None):
    """(model in eval mode, where its LM head came from) of any checkpoint of our encoder; ``attention_window``:
    Longformer's sliding window of W tokens (0: full attention; None: the checkpoint's own setting)."""
    import torch

    from ..models.lm_head import add_lm_head, load_lm_head
    from ..models.pretrained import load_pretrained_encoder
    from ..models.stabletune_xlmr import StabletuneXLMRModel, XLMREncoder
    from ..release import read_release
    from ..reliability.checkpoint_safety import WrongCheckpoint, open_checkpoint

    state = open_checkpoint(checkpoint, "checkpoint")
    cfg = model_config(state, read_release(checkpoint))
    if attention_window is not None:
        cfg.attention_window = attention_window
    if task.max_positions() > cfg.max_positions:
        raise WrongCheckpoint(
            f"checkpoint {checkpoint}: {cfg.max_positions} positions, but {task.cfg.data} holds blocks "
            f"of {task.max_positions()} tokens"
        )
    model = StabletuneXLMRModel(cfg, XLMREncoder(cfg, task.dictionary))
    load_pretrained_encoder(model, checkpoint)
    torch.manual_seed(lm_head_seed)  # a new head, when needed, is the same every time
    add_lm_head(model)
    found = load_lm_head(model, state["model"], checkpoint)
    return model.eval(), "loaded" if found else f"initialised (seed {lm_head_seed}; the checkpoint has none)"


def evaluate_mlm(
    checkpoint: str,
    data: str,
    split: str = "valid",
    mask_seed: int = 1,
    batch_size: int = 8,
    cpu: bool = False,
    lm_head_seed: int = 1,
    attention_window: int | None = None,
    precision: str = "fp32",
) -> dict:
    """Bits per masked token of ``checkpoint`` on ``split`` (fixed masks); ``precision`` bf16: the model's matrix
    products under CPU autocast (``models/precision.py``), the cross-entropy in float32."""
    import torch
    from fairseq import utils

    from ..criterions.masked_lm import masked_lm_sums
    from ..models.checkpoint_loading import choose_device
    from ..models.precision import autocast, check_precision
    from ..tasks.masked_lm import StabletuneMLMConfig, StabletuneMLMTask

    task = StabletuneMLMTask.setup_task(StabletuneMLMConfig(data=data, valid_mask_seed=mask_seed, seed=mask_seed))
    if split == "train":
        raise ValueError("evaluate a held-out split (train's masks change every epoch)")
    dataset = task.load_dataset(split)
    device = choose_device("cpu" if cpu else None)
    check_precision(precision, "--precision", device)  # before the checkpoint is read
    model, head = load_for_mlm(checkpoint, task, lm_head_seed, attention_window)
    model.to(device)
    total, masked, tokens = 0.0, 0, 0
    with torch.no_grad(), autocast(precision):
        for start in range(0, len(dataset), batch_size):
            sample = dataset.collater([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            sample = utils.move_to_cuda(sample, device) if device.type == "cuda" else sample
            loss, count = masked_lm_sums(model, sample, task.dictionary.pad())
            total, masked, tokens = total + float(loss), masked + count, tokens + int(sample["ntokens"])
    nats = total / max(masked, 1)
    return {
        "checkpoint": str(checkpoint),
        "data": str(data),
        "split": split,
        "mask_seed": mask_seed,
        "blocks": len(dataset),
        "tokens": tokens,
        "masked_tokens": masked,
        "loss_nats": total,
        "nats_per_masked_token": nats,
        "bits_per_masked_token": nats / math.log(2),
        "perplexity": math.exp(nats),
        "lm_head": head,
        "attention_window": model.encoder.attention_window,
        "precision": precision,
    }

"""The masked-LM head of a ``stabletune_xlmr`` model (``heads["lm"]``, kind ``lm``): created tied to the token
embeddings, and loaded from a checkpoint that has one.

Where an LM head is found in a checkpoint's ``model`` dict:
  ``heads.lm.*``                   ours (a ``stabletune_mlm`` run)
  ``encoder.lm_head.*``            official XLM-R / RoBERTa releases (``decoder.lm_head.*`` in the 2019 ones)
Their ``weight`` (the output projection) is the token embeddings themselves and is not read: the head is tied.
A checkpoint without one (the embedded e5-small, a fine-tuned task checkpoint) gets a new head: dense and layer
norm initialised as BERT's, bias zero, output tied to the embeddings; a log line says so.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

HEAD = "lm"
PARTS = ("dense.weight", "dense.bias", "layer_norm.weight", "layer_norm.bias", "bias")
PREFIXES = ("heads.lm.", "encoder.lm_head.", "decoder.lm_head.")


def stored_lm_head(model_state: dict) -> tuple[dict, str] | tuple[None, None]:
    """(the head's tensors under ``PARTS`` names, the prefix they were found under), or (None, None)."""
    for prefix in PREFIXES:
        if all(prefix + part in model_state for part in PARTS):
            return {part: model_state[prefix + part] for part in PARTS}, prefix
    return None, None


def add_lm_head(model) -> None:
    """Create ``model.heads["lm"]`` (unless there is one) with its output tied to the token embeddings."""
    embeddings = model.encoder.sentence_encoder.embed_tokens.weight
    model.add_head(HEAD, "lm", embeddings.shape[0])
    model.heads[HEAD].out_proj.tie(embeddings)


def load_lm_head(model, model_state: dict, source: str) -> bool:
    """Copy a stored LM head of ``model_state`` (read from ``source``) into ``model``'s; False when it has none."""
    weights, prefix = stored_lm_head(model_state)
    head = model.heads[HEAD]
    if weights is None:
        logger.info(
            "%s has no LM head: a new one is initialised (dense and layer norm as BERT's, bias 0), its output "
            "tied to the token embeddings",
            source,
        )
        return False
    with torch.no_grad():
        for part, value in weights.items():
            target = head.get_parameter(part)
            if tuple(target.shape) != tuple(value.shape):
                raise ValueError(
                    f"{source}: {prefix}{part} has shape {tuple(value.shape)}, the model's LM head needs "
                    f"{tuple(target.shape)}"
                )
            target.copy_(value)
    logger.info("loaded the LM head of %s (%s*; output tied to the token embeddings)", source, prefix)
    return True

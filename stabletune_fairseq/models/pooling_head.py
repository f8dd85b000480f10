"""The "head" of a sentence-embedding model: the pooling of the last layer's states, no parameters.

Kept in ``model.heads`` so that training calls the model's own ``forward`` (as fairseq's distributed wrappers
need) and gets the embeddings; being parameterless, it adds nothing to a checkpoint, which stays an encoder that
``stabletune-embed-eval`` reads with the same pooling (``pool_states``, below).
"""

from __future__ import annotations

import torch
import torch.nn as nn

HEAD_NAME = "embedding"
POOLINGS = ("mean", "cls")


def pool_states(states: torch.Tensor, tokens: torch.Tensor, pad: int, pooling: str) -> torch.Tensor:
    """Batch x hidden sentence embeddings of batch x time x hidden ``states``: ``mean`` over every non-padding token
    (``<s>`` and ``</s>`` included), or ``cls``, the ``<s>`` state. The one pooling of evaluation and distillation."""
    if pooling == "cls":
        return states[:, 0]
    if pooling != "mean":
        raise ValueError(f"pooling {pooling!r}: one of {', '.join(POOLINGS)}")
    mask = tokens.ne(pad).unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1)


class PoolingHead(nn.Module):
    def __init__(self, pooling: str, pad: int):
        super().__init__()
        self.pooling, self.pad = pooling, pad
        # cls pooling reads the <s> state only: the encoder may compute the last layer there alone
        self.reads_first_position_only = pooling == "cls"

    def forward(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return pool_states(features, tokens, self.pad, self.pooling)


def add_pooling_head(model, pooling: str, pad: int) -> None:
    model.heads[HEAD_NAME] = PoolingHead(pooling, pad)


def embed(model, tokens: torch.Tensor) -> torch.Tensor:
    """Batch x hidden embeddings of a right-padded batch, through the model's forward."""
    return model(tokens, head=HEAD_NAME, tokens=tokens)

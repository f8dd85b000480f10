"""Prediction heads on top of the XLM-R encoder's final hidden states."""
from __future__ import annotations

import torch
import torch.nn as nn


class SentenceHead(nn.Module):
    """Classify a whole input from its ``<s>`` state: dense -> tanh -> dropout -> projection.

    The ``dense``/``out_proj`` names match fairseq's RoBERTa classification head, so weights of a
    fairseq-trained head carry over by name.
    """

    def __init__(self, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor, **unused) -> torch.Tensor:
        x = self.dropout(features[:, 0, :])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


HEAD_TYPES = {"sentence": SentenceHead}

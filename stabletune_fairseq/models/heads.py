"""Prediction heads on top of the XLM-R encoder's final hidden states."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .precision import full_precision


class SentenceHead(nn.Module):
    """Classify a whole input from its ``<s>`` state: dense -> tanh -> dropout -> projection.

    The ``dense``/``out_proj`` names match fairseq's RoBERTa classification head, so weights of a
    fairseq-trained head carry over by name.
    """

    reads_first_position_only = True  # the encoder may then skip the last layer's other positions

    def __init__(self, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden, num_classes)

    def forward(self, features: torch.Tensor, **unused) -> torch.Tensor:
        x = self.dropout(features[:, 0, :])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


class WordHead(nn.Module):
    """Tag every word: token states pooled into words, dropout, projection.

    ``word_index`` (batch x time) names the word each token belongs to; tokens that feed no word
    (special tokens, padding, and the non-first pieces under first-piece pooling) point at column
    ``W``, the last one, which is dropped. Pooling is a sum, so the dataset chooses first-piece or
    sum-of-pieces pooling by what it writes in ``word_index``. Returns batch x W x labels.
    """

    def __init__(self, hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden, num_labels)

    def forward(self, features: torch.Tensor, word_index: torch.Tensor, **unused) -> torch.Tensor:
        width = int(word_index.max())
        words = features.new_zeros(features.size(0), width + 1, features.size(2))
        words.scatter_add_(1, word_index.unsqueeze(-1).expand_as(features), features)
        return self.out_proj(self.dropout(words[:, :width]))


class SpanHead(nn.Module):
    """Start and end logits of an answer span at every token: one projection to two outputs.

    ``span_mask`` (batch x time) marks the positions a span may use (the null position ``<s>`` and the
    context); the others get a large negative logit, so they carry no probability yet stay finite
    (fp16 included). Returns batch x time x 2 (start, end).
    """

    MASKED = -1e4
    # under --attention-window the question (the tokens before the first </s>) gets global attention, as Longformer
    # does for QA: every context token then sees the whole question however long the passage
    global_first_segment = True

    def __init__(self, hidden: int, num_outputs: int, dropout: float):
        super().__init__()
        if num_outputs != 2:
            raise ValueError(f"a span head has 2 outputs (start, end), not {num_outputs}")
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden, 2)

    def forward(self, features: torch.Tensor, span_mask: torch.Tensor, **unused) -> torch.Tensor:
        logits = self.out_proj(self.dropout(features))
        return logits.masked_fill(~span_mask.unsqueeze(-1), self.MASKED)


class TiedOutput(nn.Module):
    """The output projection of an LM head: no weight of its own until ``tie`` gives it the token embeddings
    (one tensor, as RoBERTa and XLM-R tie them). ``out_features`` is the vocabulary size, as ``nn.Linear``'s."""

    def __init__(self, out_features: int):
        super().__init__()
        self.out_features = out_features
        self.register_parameter("weight", None)

    def tie(self, embeddings: nn.Parameter) -> None:
        if embeddings.shape[0] != self.out_features:
            raise ValueError(
                f"an LM head of {self.out_features} outputs cannot be tied to {embeddings.shape[0]} embeddings"
            )
        self.weight = embeddings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None:
            raise RuntimeError("the LM head's output is not tied to the token embeddings (call tie)")
        # Outside CPU autocast, in the weight's dtype: bf16 autocast would round the 250k logits a masked token gets
        # before the loss sees them (docs/precision.md measured +0.2-0.4 bits); fp16 on GPU keeps its half weights.
        with full_precision():
            return F.linear(x.to(self.weight.dtype), self.weight)


class LMHead(nn.Module):
    """Masked-LM logits: dense -> gelu -> layer norm -> the token embeddings (tied) + a bias per token, the layout
    of fairseq's ``RobertaLMHead`` (``encoder.lm_head.{dense,layer_norm,bias}`` of an official XLM-R checkpoint).

    ``masked_tokens`` (batch x time, boolean): only those positions are projected onto the vocabulary (250k rows
    for XLM-R: the projection dominates the cost otherwise). Returns (masked positions) x vocabulary, or batch x time
    x vocabulary without ``masked_tokens``. The owner must ``tie`` ``out_proj`` to the token embeddings.
    """

    # under --attention-window no token is global, <s> included: Longformer continues its MLM with the window alone
    global_first_token = False

    def __init__(self, hidden: int, vocabulary: int, dropout: float):  # dropout: unused, as in RoBERTa's LM head
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.layer_norm = nn.LayerNorm(hidden)
        self.out_proj = TiedOutput(vocabulary)
        self.bias = nn.Parameter(torch.zeros(vocabulary))

    def forward(self, features: torch.Tensor, masked_tokens: torch.Tensor | None = None, **unused) -> torch.Tensor:
        if masked_tokens is not None:
            features = features[masked_tokens]
        x = self.layer_norm(F.gelu(self.dense(features)))
        return self.out_proj(x) + self.bias


HEAD_TYPES = {"sentence": SentenceHead, "word": WordHead, "span": SpanHead, "lm": LMHead}

# The head each task family trains, by the ``kind`` of its task folder (metadata.json): (its name in the model's
# ``heads``, its type above). The tasks take theirs from here; so do the checks of a checkpoint that records no
# run (``checkpoint_loading.py``) and the Hugging Face export, so a new family is added once, here.
HEAD_OF_KIND = {
    "sentence_pair": ("sentence", "sentence"),  # XNLI, PAWS-X
    "glue": ("sentence", "sentence"),
    "tagging": ("tags", "word"),  # UD-POS, PAN-X
    "qa": ("span", "span"),
}
HEAD_TYPE_OF_NAME = {name: head_type for name, head_type in HEAD_OF_KIND.values()}  # e.g. "tags" -> "word"

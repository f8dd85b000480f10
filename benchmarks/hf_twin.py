"""Hugging Face's ``XLMRobertaForSequenceClassification`` with exactly our model's configuration and weights.

Names map one to one (``stabletune_fairseq/convert/hf_names.py``, shared with the exporter); HF's token-type
embedding, which XLM-R never uses, is set to zero so both models compute the same function. Positions
follow the same rule in both (padding index 1, first position 2), so a table of 514 rows matches.
"""

from __future__ import annotations

import sys

import torch

sys.modules.setdefault("torchaudio", None)  # fairseq-fixed pulls a torchaudio built for another torch; no audio here

from stabletune_fairseq.convert.hf_names import hf_config as shape_config  # noqa: E402
from stabletune_fairseq.convert.hf_names import hf_state_from_ours  # noqa: E402


def hf_config(shape, vocab_size: int, n_classes: int, positions: int = 514):
    """Our model's configuration in HF's terms (dropouts 0.1, LayerNorm eps 1e-5, exact GELU)."""
    return shape_config(
        shape.layers,
        shape.hidden,
        shape.ffn,
        shape.heads,
        vocab_size,
        positions,
        labels=[str(i) for i in range(n_classes)],
    )


def hf_twin(model, shape, n_classes: int):
    """A Hugging Face model equal to our ``model`` (same weights, same dropout), in float32."""
    from transformers import XLMRobertaForSequenceClassification

    embed_positions = model.encoder.sentence_encoder.embed_positions.weight
    vocab = model.encoder.sentence_encoder.embed_tokens.num_embeddings
    twin = XLMRobertaForSequenceClassification(hf_config(shape, vocab, n_classes, embed_positions.size(0)))
    state = hf_state_from_ours(
        {k: v.detach().float() for k, v in model.state_dict().items()}, shape.layers, "sentence", "sentence"
    )
    missing, unexpected = twin.load_state_dict(state, strict=False)
    leftovers = [k for k in missing if "position_ids" not in k and "token_type_ids" not in k]
    if leftovers or unexpected:
        raise RuntimeError(f"weights do not map one to one: missing {leftovers}, unexpected {unexpected}")
    return twin.to(device=embed_positions.device)


def max_logit_difference(model, twin, tokens: torch.Tensor, precision: str = "fp32") -> float:
    """Largest |logit difference| between the two models in eval mode on ``tokens`` (float32 logits; with
    ``precision="bf16"`` both run under the same CPU autocast)."""
    from stabletune_fairseq.models.precision import autocast

    was_training = model.training, twin.training
    model.eval(), twin.eval()
    with torch.no_grad(), autocast(precision):
        ours = model(tokens, head="sentence").float()
        theirs = twin(input_ids=tokens, attention_mask=tokens.ne(1).long()).logits.float()
    model.train(was_training[0]), twin.train(was_training[1])
    return float((ours - theirs).abs().max())

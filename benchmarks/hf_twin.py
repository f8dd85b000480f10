"""Hugging Face's ``XLMRobertaForSequenceClassification`` with exactly our model's configuration and weights.

Names map one to one (fairseq ``encoder.sentence_encoder.*`` -> ``roberta.*``); HF's token-type
embedding, which XLM-R never uses, is set to zero so both models compute the same function. Positions
follow the same rule in both (padding index 1, first position 2), so a table of 514 rows matches.
"""
from __future__ import annotations

import sys

import torch

sys.modules.setdefault("torchaudio", None)  # fairseq-fixed pulls a torchaudio built for another torch; no audio here


def _layer_names(i: int) -> dict[str, str]:
    ours, theirs = f"encoder.sentence_encoder.layers.{i}.", f"roberta.encoder.layer.{i}."
    pairs = {
        "self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
        "self_attn.v_proj": "attention.self.value", "self_attn.out_proj": "attention.output.dense",
        "self_attn_layer_norm": "attention.output.LayerNorm", "fc1": "intermediate.dense",
        "fc2": "output.dense", "final_layer_norm": "output.LayerNorm",
    }
    return {f"{ours}{a}.{kind}": f"{theirs}{b}.{kind}" for a, b in pairs.items() for kind in ("weight", "bias")}


def hf_state_from_ours(state: dict, layers: int, head: str = "sentence") -> dict:
    names = {
        "encoder.sentence_encoder.embed_tokens.weight": "roberta.embeddings.word_embeddings.weight",
        "encoder.sentence_encoder.embed_positions.weight": "roberta.embeddings.position_embeddings.weight",
        "encoder.sentence_encoder.layernorm_embedding.weight": "roberta.embeddings.LayerNorm.weight",
        "encoder.sentence_encoder.layernorm_embedding.bias": "roberta.embeddings.LayerNorm.bias",
        **{f"heads.{head}.{a}.{kind}": f"classifier.{a}.{kind}" for a in ("dense", "out_proj") for kind in ("weight", "bias")},
    }
    for i in range(layers):
        names.update(_layer_names(i))
    return {theirs: state[ours] for ours, theirs in names.items()}


def hf_config(shape, vocab_size: int, n_classes: int, positions: int = 514):
    """Our model's configuration in HF's terms (dropouts 0.1, LayerNorm eps 1e-5, exact GELU)."""
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=vocab_size, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, intermediate_size=shape.ffn, max_position_embeddings=positions,
        type_vocab_size=1, layer_norm_eps=1e-5, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        classifier_dropout=0.1, pad_token_id=1, bos_token_id=0, eos_token_id=2, num_labels=n_classes,
        hidden_act="gelu",
    )


def hf_twin(model, shape, n_classes: int):
    """A Hugging Face model equal to our ``model`` (same weights, same dropout), in float32."""
    from transformers import XLMRobertaForSequenceClassification

    embed_positions = model.encoder.sentence_encoder.embed_positions.weight
    vocab = model.encoder.sentence_encoder.embed_tokens.num_embeddings
    twin = XLMRobertaForSequenceClassification(hf_config(shape, vocab, n_classes, embed_positions.size(0)))
    state = hf_state_from_ours({k: v.detach().float() for k, v in model.state_dict().items()}, shape.layers)
    state["roberta.embeddings.token_type_embeddings.weight"] = torch.zeros(1, shape.hidden)
    missing, unexpected = twin.load_state_dict(state, strict=False)
    leftovers = [k for k in missing if "position_ids" not in k and "token_type_ids" not in k]
    if leftovers or unexpected:
        raise RuntimeError(f"weights do not map one to one: missing {leftovers}, unexpected {unexpected}")
    return twin.to(device=embed_positions.device)


def max_logit_difference(model, twin, tokens: torch.Tensor) -> float:
    """Largest |logit difference| between the two models in eval mode on ``tokens`` (float32)."""
    was_training = model.training, twin.training
    model.eval(), twin.eval()
    with torch.no_grad():
        ours = model(tokens, head="sentence").float()
        theirs = twin(input_ids=tokens, attention_mask=tokens.ne(1).long()).logits.float()
    model.train(was_training[0]), twin.train(was_training[1])
    return float((ours - theirs).abs().max())

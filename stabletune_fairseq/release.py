"""What an official-format XLM-R ``model.pt`` holds: its encoder weights under our names, its shape (layers, sizes,
positions) and the registered ``stabletune_xlmr`` architecture of that shape. The one place a checkpoint's shape is
read: the recipes, preprocessing (how long a row may be), the MLM evaluation and the sentence embedder use it.

Official releases are fairseq RoBERTa checkpoints: the encoder under ``decoder.sentence_encoder.*``
(2019 releases) or ``encoder.sentence_encoder.*`` (later ones), older ones with ``emb_layer_norm``
for today's ``layernorm_embedding`` or packed ``in_proj_weight`` attention. The LM head is ignored.

Needs torch only, not fairseq: the recipes (``recipes/devices.py``) learn the architecture, the depth and (for a
longer position table) the positions with it before they build a command; run by path
(``python stabletune_fairseq/release.py <model.pt>``) it prints them and the GPU count without the package's import
of fairseq, which costs seconds.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch

if __package__:
    from .reliability.checkpoint_safety import WrongCheckpoint, allow_fairseq_checkpoints, open_checkpoint
    from .reliability.exit_status import BAD_INPUT, BadInput
    from .reliability.run_identity import check_vocabulary, vocabulary_rows
else:  # run by path: reliability/checkpoint_safety.py and exit_status.py are torch-only too
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reliability"))
    from checkpoint_safety import WrongCheckpoint, allow_fairseq_checkpoints, open_checkpoint
    from exit_status import BAD_INPUT, BadInput
    from run_identity import check_vocabulary, vocabulary_rows

ENCODER_PREFIX = "encoder.sentence_encoder."

ARCHITECTURE_SHAPES = {  # (layers, hidden) -> architecture registered in models/stabletune_xlmr.py
    (12, 768): "stabletune_xlmr_base",
    (24, 1024): "stabletune_xlmr_large",
    (12, 384): "stabletune_xlmr_e5_small",
}


def encoder_state_from_release(state: dict) -> dict:
    """Map an official checkpoint's ``model`` dict to our ``encoder.sentence_encoder.*`` keys."""
    out = {}
    for key, value in state.items():
        for old in ("decoder.sentence_encoder.", ENCODER_PREFIX):
            if key.startswith(old):
                name = key[len(old) :].replace("emb_layer_norm.", "layernorm_embedding.")
                if name.endswith("self_attn.in_proj_weight") or name.endswith("self_attn.in_proj_bias"):
                    base, kind = name.rsplit(".in_proj_", 1)
                    for part, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                        out[f"{ENCODER_PREFIX}{base}.{part}.{kind}"] = chunk
                else:
                    out[ENCODER_PREFIX + name] = value
    return out


def read_release(path: str, state: dict | None = None) -> dict:
    """The encoder weights of an official-format checkpoint, memory-mapped and under our names (``state``: the file
    already opened, so that it is read once)."""
    weights = encoder_state_from_release((state or open_checkpoint(path, "pretrained model"))["model"])
    if ENCODER_PREFIX + "embed_tokens.weight" not in weights:
        raise WrongCheckpoint(
            f"pretrained model {path}: a fairseq checkpoint, but not of an XLM-R/RoBERTa encoder "
            f"(no {{encoder,decoder}}.sentence_encoder.embed_tokens.weight)"
        )
    return weights


ARCHITECTURE_OF_HIDDEN = {hidden: arch for (_, hidden), arch in ARCHITECTURE_SHAPES.items()}
DEFAULT_LAYERS = {arch: layers for (layers, _), arch in ARCHITECTURE_SHAPES.items()}
HEADS_OF_HIDDEN = {384: 12, 768: 12, 1024: 16}  # attention heads of the registered shapes, when a file stores none


BOTTLENECK_PROJECTION = ENCODER_PREFIX + "embed_tokens.projection.weight"  # hidden x d (--embedding-bottleneck d)


def hidden_and_bottleneck(weights: dict) -> tuple[int, int]:
    """(hidden width, embedding bottleneck) of ``read_release``'s weights: a factorised token table (vocabulary x d,
    then ``BOTTLENECK_PROJECTION``) has its width d, not the hidden one; bottleneck 0: a plain table."""
    table = weights[ENCODER_PREFIX + "embed_tokens.weight"]
    if BOTTLENECK_PROJECTION in weights:
        return int(weights[BOTTLENECK_PROJECTION].shape[0]), int(table.shape[1])
    return int(table.shape[1]), 0


def layer_repeat_of(stored: dict | None) -> int:
    """How many times the distinct layers run (``--layer-repeat``), from a checkpoint's ``stored_settings``: no
    weight tells it, so a file of a recurrent model must store it (``stabletune-convert compress`` does); 1 if not."""
    return int((stored or {}).get("layer_repeat") or 1)


POSITION_OFFSET_ROWS = 2  # fairseq's learned position table: rows 0..1 (padding index + 1) precede position 0
DEFAULT_MAX_POSITIONS = 512  # XLM-R's, and the model option's default
POSITION_TABLES = (ENCODER_PREFIX + "embed_positions.weight", "decoder.sentence_encoder.embed_positions.weight")


def layer_count(weights: dict) -> int:
    """The transformer layers of ``read_release``'s weights (fewer than the architecture's for a ``shrink`` student)."""
    return len({k.split(".")[3] for k in weights if k.startswith(ENCODER_PREFIX + "layers.")})


def max_positions_of(weights: dict) -> int:
    """The positions of an encoder's learned table (``read_release``'s weights): 512 for XLM-R, more for a model
    of ``stabletune-convert extend-positions`` (fine-tuning it needs ``--max-positions`` of that length)."""
    return weights[ENCODER_PREFIX + "embed_positions.weight"].shape[0] - POSITION_OFFSET_ROWS


def stored_settings(state: dict) -> dict:
    """The model settings a checkpoint stores: ``cfg.model`` (a dict), or the ``args`` of an older one."""
    cfg = state.get("cfg") or {}
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if model:
        return dict(model)
    return dict(vars(state["args"])) if state.get("args") is not None else {}


def positions_of(state: dict) -> int:
    """The positions of an opened checkpoint: the rows of its learned table (so a model made longer needs no
    setting to be trusted), else the ``max_positions`` it stores, else XLM-R's 512."""
    for key in POSITION_TABLES:
        if key in state["model"]:
            return int(state["model"][key].shape[0]) - POSITION_OFFSET_ROWS
    return int(stored_settings(state).get("max_positions") or DEFAULT_MAX_POSITIONS)


def folder_positions(model_dir: str) -> tuple[int, str]:
    """(positions, where the number came from) of the model in a release folder: its ``model.pt`` when there is
    one, else XLM-R's 512 (a folder of dict.txt and the sentencepiece model only, which process.sh may be given)."""
    path = os.path.join(model_dir, "model.pt")
    if os.path.isfile(path):
        return positions_of(open_checkpoint(path, "pretrained model")), path
    return DEFAULT_MAX_POSITIONS, f"{model_dir} has no model.pt: XLM-R's {DEFAULT_MAX_POSITIONS} assumed"


@dataclass(frozen=True)
class EncoderShape:
    """The sizes an encoder is built with, read from its weights (``encoder_shape``)."""

    layers: int
    hidden: int
    ffn: int
    heads: int
    positions: int
    bottleneck: int = 0  # --embedding-bottleneck (0: a plain token table)
    repeat: int = 1  # --layer-repeat


def encoder_shape(weights: dict, stored: dict | None = None) -> EncoderShape:
    """The shape of ``read_release``'s ``weights``; the attention heads (which no weight's size tells) from the
    checkpoint's ``stored_settings`` when it has them, else those of the registered shape of that width."""
    hidden, bottleneck = hidden_and_bottleneck(weights)
    heads = (stored or {}).get("encoder_attention_heads") or HEADS_OF_HIDDEN.get(hidden, hidden // 64)
    layers = layer_count(weights)
    ffn_key = ENCODER_PREFIX + "layers.0.fc1.weight"
    ffn = weights[ffn_key].shape[0] if ffn_key in weights else (stored or {}).get("encoder_ffn_embed_dim") or 4 * hidden
    return EncoderShape(
        layers=layers,
        hidden=hidden,
        ffn=ffn,  # an encoder of no layers (the framework's stage-2 student) has none to read it from
        heads=heads,
        positions=max_positions_of(weights),
        bottleneck=bottleneck,
        repeat=layer_repeat_of(stored),
    )


def architecture_and_layers(path: str, dictionary_file: str | None = None) -> tuple[str, int]:
    """The registered architecture of ``path``'s hidden size and its number of layers (which differs from the
    architecture's for a ``stabletune-convert shrink`` student: ``--encoder-layers`` then says it). The vocabulary
    must be the one of ``dictionary_file`` when given."""
    return model_shape(path, dictionary_file)[:2]


def model_shape(path: str, dictionary_file: str | None = None) -> tuple[str, int, int, EncoderShape]:
    """``architecture_and_layers``, the number of positions of the model's table (``max_positions_of``) and its
    ``encoder_shape`` (a compressed student's bottleneck and repeat), the file opened once."""
    state = open_checkpoint(path, "pretrained model")
    weights = read_release(path, state)
    rows = weights[ENCODER_PREFIX + "embed_tokens.weight"].shape[0]
    hidden = hidden_and_bottleneck(weights)[0]
    if dictionary_file:
        check_vocabulary(path, "pretrained model", rows, vocabulary_rows(dictionary_file), dictionary_file)
    layers = layer_count(weights)
    if hidden not in ARCHITECTURE_OF_HIDDEN:
        raise WrongCheckpoint(
            f"pretrained model {path}: no architecture for {layers} layers of size {hidden}; pass ARCH= explicitly"
        )
    if ENCODER_PREFIX + "embed_positions.weight" not in weights:
        raise WrongCheckpoint(
            f"pretrained model {path}: no learned position table ({ENCODER_PREFIX}embed_positions.weight)"
        )
    return (
        ARCHITECTURE_OF_HIDDEN[hidden],
        layers,
        max_positions_of(weights),
        encoder_shape(weights, stored_settings(state)),
    )


def architecture_of(path: str, dictionary_file: str | None = None) -> str:
    """The registered architecture with the shape of ``path``'s encoder (its hidden size)."""
    return architecture_and_layers(path, dictionary_file)[0]


def main(argv: list[str]) -> int:
    """``<model.pt> [<data dict.txt>]`` -> ``<architecture> <number of GPUs torch sees> <layers>`` on one line, and
    a fourth word, the model's positions, when its table is longer or shorter than XLM-R's 512 (a model of
    ``stabletune-convert extend-positions``: run_xtreme.sh passes it as ``--max-positions``)."""
    if len(argv) not in (1, 2):
        print("usage: python stabletune_fairseq/release.py <model.pt> [<dict.txt of the data>]", file=sys.stderr)
        return BAD_INPUT
    allow_fairseq_checkpoints()
    try:
        architecture, layers, positions, _ = model_shape(*argv)
    except BadInput as err:
        print(f"error: {err}", file=sys.stderr)
        return BAD_INPUT
    print(architecture, torch.cuda.device_count(), layers, *([positions] if positions != DEFAULT_MAX_POSITIONS else []))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``stabletune-convert compress``: a compressed student of a model, as the multi-stage distillation framework
builds them (Ding et al., NAACL 2022; docs/compressed-students.md).

- ``--bottleneck d``: the vocabulary x hidden token table becomes a vocabulary x d table and a d -> hidden linear map
  (the framework's ``Small_Embeddings``). Initialised from the model's own table by its best rank-d approximation
  (``--bottleneck-init svd``, the default: table x V_d and V_d, V_d the top-d right singular vectors), or at random
  as the framework does (``random``: torch's defaults for ``nn.Embedding`` and ``nn.Linear``, seeded).
- ``--layers``: the distinct layers kept, in order (``none``: no layer, the framework's stage-2 student, which is the
  embedding layer alone); ``--repeat r``: they run r times in turn (parameter recurrence, the framework's stage 3).
- ``--embeddings-from <model>``: the embedding layer (token table, its projection, positions, embedding layer norm)
  of another model of the same vocabulary and width, e.g. the stage-2 student trained to match the assistant's
  embedding layer, which the framework's stage 3 puts under the kept layers (``rec_bottle_distill.py`` l.35-45).

The result is an official-format release (model.pt with its settings, dict.txt, the sentencepiece model) that
``run_distill_embeddings.sh`` and ``stabletune-embed-eval`` read; a fine-tuned checkpoint is accepted as the source
(its heads are left out), so a stage's result becomes the next stage's student with no options at all.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

import torch

from ..release import (
    BOTTLENECK_PROJECTION,
    ENCODER_PREFIX,
    encoder_shape,
    layer_repeat_of,
    read_release,
    stored_settings,
)
from ..reliability.checkpoint_safety import WrongCheckpoint, open_checkpoint
from .release_files import PAD_IDX, write_checkpoint
from .shrink import _model_config, _vocabulary_folder, shrunk_state

logger = logging.getLogger(__name__)

TABLE = ENCODER_PREFIX + "embed_tokens.weight"
EMBEDDING_LAYER = re.compile(
    re.escape(ENCODER_PREFIX) + r"(embed_tokens\..+|embed_positions\..+|layernorm_embedding\..+)"
)
INITS = ("svd", "random")


def parse_layer_list(text: str | None) -> list[int] | None:
    """``"0,1,2"`` -> ``[0, 1, 2]``; ``"none"`` -> ``[]`` (the embedding layer alone); None -> every layer."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return []
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--layers {text!r}: comma-separated layer numbers (0-based), e.g. 0,1,2, or none") from None


def svd_factors(table: torch.Tensor, bottleneck: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(vocabulary x d table, hidden x d projection weight, share of the table's squared norm kept): the best rank-d
    approximation of ``table`` (Eckart-Young), from the eigenvectors of its hidden x hidden Gram matrix (float64,
    summed in chunks: the vocabulary x hidden SVD itself would need several copies of the table)."""
    gram = torch.zeros(table.shape[1], table.shape[1], dtype=torch.float64)
    for start in range(0, table.shape[0], 65536):
        chunk = table[start : start + 65536].double()
        gram += chunk.t() @ chunk
    values, vectors = torch.linalg.eigh(gram)  # ascending
    top = vectors[:, -bottleneck:].flip(-1)  # hidden x d, largest first
    kept = float(values[-bottleneck:].clamp(min=0).sum() / values.clamp(min=0).sum())
    return (table.double() @ top).float(), top.float().contiguous(), kept


def random_factors(rows: int, bottleneck: int, hidden: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The framework's initialisation: a fresh ``nn.Embedding`` (N(0, 1), padding row zero) and ``nn.Linear`` without
    bias (torch's Kaiming-uniform default), ``seed`` fixing both."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        table = torch.nn.Embedding(rows, bottleneck, padding_idx=PAD_IDX).weight.detach()
        projection = torch.nn.Linear(bottleneck, hidden, bias=False).weight.detach()
    return table.clone(), projection.clone()


def factorised(weights: dict, bottleneck: int, init: str, seed: int, source: str) -> tuple[dict, dict]:
    """``weights`` with a vocabulary x ``bottleneck`` table and its projection (0: a plain table, the product of a
    factorised one), and what the conversion records about it."""
    table = weights[TABLE]
    current = table.shape[1] if BOTTLENECK_PROJECTION in weights else 0
    out = dict(weights)
    if bottleneck == current:
        return out, {"bottleneck": bottleneck, "init": "kept"}
    if current:  # back to a plain table, or to another width through it
        out[TABLE] = table.float() @ weights[BOTTLENECK_PROJECTION].float().t()
        del out[BOTTLENECK_PROJECTION]
        if not bottleneck:
            return out, {"bottleneck": 0, "init": f"product of the {current}-wide table and its projection"}
    hidden = out[TABLE].shape[1]
    if not 0 < bottleneck < hidden:
        raise ValueError(f"{source}: --bottleneck {bottleneck}: between 1 and the hidden width {hidden} (exclusive)")
    if init == "svd":
        out[TABLE], out[BOTTLENECK_PROJECTION], kept = svd_factors(out[TABLE].float(), bottleneck)
        record = {"bottleneck": bottleneck, "init": "svd", "squared_norm_kept": round(kept, 6)}
    elif init == "random":
        out[TABLE], out[BOTTLENECK_PROJECTION] = random_factors(out[TABLE].shape[0], bottleneck, hidden, seed)
        record = {"bottleneck": bottleneck, "init": "random", "seed": seed}
    else:
        raise ValueError(f"--bottleneck-init {init!r}: one of {', '.join(INITS)}")
    return out, record


def with_embedding_layer(weights: dict, donor_path: str, source: str) -> dict:
    """``weights`` with the embedding layer of ``donor_path`` (a release or a fine-tuned checkpoint)."""
    donor = read_release(donor_path)
    theirs = {k: v for k, v in donor.items() if EMBEDDING_LAYER.match(k)}
    ours = {k: v for k, v in weights.items() if EMBEDDING_LAYER.match(k)}
    if theirs[TABLE].shape[0] != ours[TABLE].shape[0]:
        raise WrongCheckpoint(
            f"--embeddings-from {donor_path}: {theirs[TABLE].shape[0]} vocabulary rows, {source} has "
            f"{ours[TABLE].shape[0]}: another vocabulary"
        )
    hidden = encoder_shape(donor).hidden
    if hidden != encoder_shape(weights).hidden:
        raise WrongCheckpoint(
            f"--embeddings-from {donor_path}: hidden width {hidden}, {source} has {encoder_shape(weights).hidden}"
        )
    out = {k: v for k, v in weights.items() if not EMBEDDING_LAYER.match(k)}
    return out | theirs


def compress(
    model: str | Path,
    out_dir: str | Path,
    *,
    layers: list[int] | None = None,
    repeat: int | None = None,
    bottleneck: int | None = None,
    init: str = "svd",
    embeddings_from: str | None = None,
    seed: int = 1,
) -> Path:
    """Write the compressed student of ``model`` to ``out_dir`` and return ``out_dir``. None keeps the model's own:
    every layer, its repeat, its token table."""
    from ..data.encoding import model_files

    model, out_dir = Path(model), Path(out_dir)
    state = open_checkpoint(str(model), "model to compress")
    weights = read_release(str(model))
    shape = encoder_shape(weights, stored_settings(state))
    repeat = layer_repeat_of(stored_settings(state)) if repeat is None else repeat
    if repeat < 1:
        raise ValueError(f"--repeat {repeat}: at least 1")
    if layers is None:
        layers = list(range(shape.layers))
    if layers:
        student = shrunk_state(weights, layers, str(model))
    else:  # the embedding layer alone
        student = {k: v for k, v in weights.items() if not k.startswith(ENCODER_PREFIX + "layers.")}
    record: dict = {}
    if embeddings_from:
        student = with_embedding_layer(student, embeddings_from, str(model))
        record["embeddings_from"] = str(Path(embeddings_from).resolve())
    bottleneck = encoder_shape(student).bottleneck if bottleneck is None else bottleneck
    student, record["embedding"] = factorised(student, bottleneck, init, seed, str(model))
    dictionary, sentencepiece = model_files(_vocabulary_folder(model, state))
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dictionary, out_dir / "dict.txt")
    shutil.copyfile(sentencepiece, out_dir / "sentencepiece.bpe.model")
    settings = _model_config(state, str(model), len(layers))
    settings.update(
        encoder_embed_dim=shape.hidden,
        encoder_ffn_embed_dim=shape.ffn,
        encoder_attention_heads=shape.heads,
        embedding_bottleneck=bottleneck,
        layer_repeat=repeat,
        source=f"stabletune-convert compress of {model.resolve()}",
    )
    extra = {
        "compressed_from": str(model.resolve()),
        "layers": layers,
        "repeat": repeat,
        **record,
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
    }
    write_checkpoint(out_dir, student, settings, extra)
    logger.info(
        "wrote %s: layers %s of %s run %d times, embedding %s", out_dir, layers, model, repeat, record["embedding"]
    )
    return out_dir

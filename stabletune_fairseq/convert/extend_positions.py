"""``stabletune-convert extend-positions``: a model with a longer learned position table (e.g. 4096 positions).

As the Longformer conversion of RoBERTa does, the new table is filled by repeating the trained rows: position
``k`` gets the row of position ``k mod 512``, so the model starts from what it knows about local order, and
inputs of up to 512 tokens give exactly the original outputs. fairseq's table starts with two offset rows (learned
positions are offset by the padding index: position ``p`` is row ``p + 2``); they stay where they are:
``new[0:2] = old[0:2]``, ``new[2 + k] = old[2 + (k % n)]`` for ``n`` trained positions. Every other weight is
kept as it is (an LM head too, for continued masked-LM training on long text), under its own name; the stored model
settings get the new ``max_positions`` so that the model builds with the longer table. The result is an
official-format release (``model.pt``, ``dict.txt``, ``sentencepiece.bpe.model``) for ``run_xtreme.sh``, which
reads the length from the table.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
from pathlib import Path

import torch

from ..release import read_release
from ..reliability.checkpoint_safety import WrongCheckpoint, open_checkpoint
from .release_files import PAD_IDX, write_checkpoint

logger = logging.getLogger(__name__)

OFFSET_ROWS = PAD_IDX + 1  # rows 0..1 of fairseq's learned position table precede position 0
POSITIONS_KEY = "sentence_encoder.embed_positions.weight"


def extended_table(table: torch.Tensor, max_positions: int) -> torch.Tensor:
    """``table`` ((n + 2) x hidden, n trained positions) grown to ``max_positions + 2`` rows by repeating the
    trained rows, the two offset rows kept in front."""
    trained = table.size(0) - OFFSET_ROWS
    index = torch.cat([torch.arange(OFFSET_ROWS), OFFSET_ROWS + torch.arange(max_positions) % trained])
    return table[index].clone()


def positions_key(state: dict, source: str) -> str:
    keys = [key for key in state if key.endswith(POSITIONS_KEY)]
    if len(keys) != 1:
        raise WrongCheckpoint(
            f"{source}: not an XLM-R/RoBERTa checkpoint with one learned position table "
            f"(found {len(keys)} *.{POSITIONS_KEY})"
        )
    return keys[0]


def _model_config(state: dict, max_positions: int, source: str) -> dict:
    """The source's model settings (``cfg.model``, or an old checkpoint's argparse ``args``) with the new length."""
    cfg = state.get("cfg") or {}
    model = dict(cfg.get("model") or {}) if isinstance(cfg, dict) else {}
    if not model and isinstance(state.get("args"), argparse.Namespace):
        model = {
            k: v
            for k, v in vars(state["args"]).items()
            if k.startswith(
                (
                    "encoder_",
                    "activation_",
                    "max_positions",
                    "arch",
                    "dropout",
                    "attention_",
                    "pooler_",
                    "untie_weights",
                )
            )
        }
    # fairseq's RoBERTa reads max_positions (and builds max_positions + 2 rows); tokens_per_sample is a task setting
    model["max_positions"] = max_positions
    model["source"] = f"stabletune-convert extend-positions of {os.path.abspath(source)}"
    return model


def extend_positions(model: str | Path, out_dir: str | Path, max_positions: int) -> Path:
    """Write ``model`` with a ``max_positions``-long position table to ``out_dir``; return ``out_dir``."""
    from ..data.encoding import model_files
    from .shrink import _vocabulary_folder

    model, out_dir = Path(model), Path(out_dir)
    state = open_checkpoint(str(model), "model to extend")  # a clear error for a missing or non-checkpoint file
    read_release(str(model))  # and for a checkpoint of something else than an XLM-R encoder
    weights = dict(state["model"])
    key = positions_key(weights, str(model))
    old = weights[key]
    trained = old.size(0) - OFFSET_ROWS
    if trained < 1:
        raise WrongCheckpoint(f"{model}: its position table {key} has {old.size(0)} rows, no trained position")
    if max_positions <= trained:
        raise ValueError(
            f"{model}: --max-positions {max_positions} is not longer than the model's {trained} "
            "positions (extend-positions only makes the table longer)"
        )
    if out_dir.resolve() == model.parent.resolve():
        raise ValueError(f"{out_dir}: the folder of {model} itself; write the extended model to another folder")
    dictionary, sentencepiece = model_files(_vocabulary_folder(model, state))
    weights[key] = extended_table(old, max_positions)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dictionary, out_dir / "dict.txt")
    shutil.copyfile(sentencepiece, out_dir / "sentencepiece.bpe.model")
    extra = {
        "extended_from": str(model.resolve()),
        "max_positions": max_positions,
        "trained_positions": trained,
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
    }
    write_checkpoint(out_dir, weights, _model_config(state, max_positions, str(model)), extra)
    logger.info("wrote %s: %d positions (the %d trained rows repeated) from %s", out_dir, max_positions, trained, model)
    return out_dir

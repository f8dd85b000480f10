"""How many positions a model has: the length process.sh may binarise for it and the recipes pass as
``--max-positions``.

Read from the checkpoint itself: the rows of its learned position table (``embed_positions.weight`` has
``positions + padding_idx + 1`` rows, fairseq's offset), else the ``max_positions`` of its stored settings
(``cfg.model`` of our and fairseq-fixed checkpoints, ``args`` of older releases), else XLM-R's 512. A model made
longer (``stabletune-convert extend-positions``) has a longer table, so no setting has to be trusted alone.

(``release.py`` reads the table too, for run_xtreme.sh; this module adds the stored-settings fallback and
the folder without a model.pt that process.sh may be given.)
"""
from __future__ import annotations

import os

from .reliability.checkpoint_safety import open_checkpoint

XLMR_POSITIONS = 512
POSITION_OFFSET = 2  # fairseq's learned positions start at padding_idx + 1 = 2
POSITION_TABLES = ("encoder.sentence_encoder.embed_positions.weight", "decoder.sentence_encoder.embed_positions.weight")


def stored_settings(state: dict) -> dict:
    """The model settings a checkpoint stores: ``cfg.model`` (a dict), or the ``args`` of an older one."""
    cfg = state.get("cfg") or {}
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if model:
        return dict(model)
    return dict(vars(state["args"])) if state.get("args") is not None else {}


def positions_of(state: dict) -> int:
    for key in POSITION_TABLES:
        if key in state["model"]:
            return int(state["model"][key].shape[0]) - POSITION_OFFSET
    return int(stored_settings(state).get("max_positions") or XLMR_POSITIONS)


def model_positions(path: str) -> int:
    """The positions of the model at ``path``."""
    return positions_of(open_checkpoint(path, "pretrained model"))


def folder_positions(model_dir: str) -> tuple[int, str]:
    """(positions, where the number came from) of the model in a release folder: its ``model.pt`` when there is
    one, else XLM-R's 512 (a folder of dict.txt and the sentencepiece model only)."""
    path = os.path.join(model_dir, "model.pt")
    if os.path.isfile(path):
        return model_positions(path), path
    return XLMR_POSITIONS, f"{model_dir} has no model.pt: XLM-R's {XLMR_POSITIONS} assumed"

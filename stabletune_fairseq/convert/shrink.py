"""``stabletune-convert shrink``: a smaller student encoder made of chosen layers of a model.

Patient KD initialises its student from layers of the teacher (its "skip" choice: every other layer); the
same is done here for any of our models, a pretrained release or a fine-tuned checkpoint: the embeddings and the
chosen layers are kept, renumbered 0..k-1 in the order given, everything else (the other layers, task heads, an
LM head) is left out. The result is an official-format release (``model.pt``, ``dict.txt``, sentencepiece model)
for ``run_xtreme.sh``'s ``<model.pt>``: its task heads are created afresh when it is fine-tuned.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from pathlib import Path

from ..release import ENCODER_PREFIX, read_release
from ..reliability.checkpoint_safety import WrongCheckpoint, open_checkpoint
from .release_files import write_checkpoint

logger = logging.getLogger(__name__)

_LAYER = re.compile(re.escape(ENCODER_PREFIX) + r"layers\.(\d+)\.(.+)")


def parse_layers(text: str) -> list[int]:
    """``"0,2,4"`` -> ``[0, 2, 4]``; a clear error for anything else."""
    try:
        layers = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--layers {text!r}: comma-separated layer numbers (0-based), e.g. 0,2,4,6,8,10") from None
    return layers


def shrunk_state(weights: dict, layers: list[int], source: str) -> dict:
    """The encoder weights of ``layers`` (0-based, in the order given), renumbered 0..len(layers)-1, with
    the embeddings; a ``WrongCheckpoint`` for a layer the model does not have or one chosen twice."""
    available = sorted({int(m.group(1)) for m in map(_LAYER.match, weights) if m})
    if not layers or len(set(layers)) != len(layers):
        raise WrongCheckpoint(f"{source}: --layers {layers}: give each layer once, at least one")
    outside = [layer for layer in layers if layer not in available]
    if outside:
        raise WrongCheckpoint(f"{source}: has layers 0..{available[-1]}, not {outside}")
    new_index = {old: new for new, old in enumerate(layers)}
    out = {}
    for key, value in weights.items():
        match = _LAYER.match(key)
        if match is None:
            out[key] = value  # embeddings, positions, embedding layer norm
        elif int(match.group(1)) in new_index:
            out[f"{ENCODER_PREFIX}layers.{new_index[int(match.group(1))]}.{match.group(2)}"] = value
    return out


def _model_config(state: dict, source: str, layers: int) -> dict:
    """The source's model settings (a release's or a fine-tuned run's ``cfg.model``) with ``layers`` layers."""
    cfg = state.get("cfg") or {}
    model = dict(cfg.get("model") or {}) if isinstance(cfg, dict) else {}
    if not model and state.get("args") is not None:  # an old-style checkpoint with an argparse Namespace
        model = {
            k: v
            for k, v in vars(state["args"]).items()
            if k.startswith(("encoder_", "activation_fn", "max_positions", "arch"))
        }
    keep = (
        "_name",
        "arch",
        "encoder_embed_dim",
        "encoder_ffn_embed_dim",
        "encoder_attention_heads",
        "max_positions",
        "activation_fn",
        "embedding_bottleneck",  # a compressed student stays one (stabletune-convert compress)
        "layer_repeat",
    )
    out = {k: model[k] for k in keep if k in model}
    out["encoder_layers"] = layers
    out["source"] = f"stabletune-convert shrink of {os.path.abspath(source)}"
    return out


def _vocabulary_folder(model_path: Path, state: dict) -> Path:
    """Where ``dict.txt`` and the sentencepiece model of ``model_path`` are: beside it (a release), else in the
    task folder it was fine-tuned on."""
    from ..models.checkpoint_loading import recorded_task_folder

    if (model_path.parent / "dict.txt").is_file():
        return model_path.parent
    return Path(recorded_task_folder(str(model_path), state))


def shrink(model: str | Path, out_dir: str | Path, layers: list[int]) -> Path:
    """Write the student made of ``layers`` of ``model`` to ``out_dir``; return ``out_dir``."""
    from ..data.encoding import model_files

    model, out_dir = Path(model), Path(out_dir)
    state = open_checkpoint(str(model), "model to shrink")
    weights = read_release(str(model))
    student = shrunk_state(weights, layers, str(model))
    dictionary, sentencepiece = model_files(_vocabulary_folder(model, state))
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(dictionary, out_dir / "dict.txt")
    shutil.copyfile(sentencepiece, out_dir / "sentencepiece.bpe.model")
    extra = {
        "shrunk_from": str(model.resolve()),
        "layers": layers,
        "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
    }
    write_checkpoint(out_dir, student, _model_config(state, str(model), len(layers)), extra)
    logger.info("wrote %s: layers %s of %s", out_dir, layers, model)
    return out_dir

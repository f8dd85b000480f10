"""``stabletune-convert shrink``: a smaller student encoder made of chosen layers of a model.

Distillation students start from layers of a bigger model; the same is done here for any of our models, a
pretrained release or a fine-tuned checkpoint: the embeddings and the chosen layers are kept, renumbered 0..k-1
in the order given, everything else (the other layers, task heads, an LM head) is left out. The result
is an official-format release (``model.pt``, ``dict.txt``, sentencepiece model) for
``run_xtreme.sh``'s ``<model.pt>``: its task heads are created afresh when it is fine-tuned.

``--layers`` takes the layers (0-based) or a named choice of a reference (docs/distillation.md):
``first:K``       layers 0..K-1: Patient KD's student (intersun/PKD-for-BERT-Model-Compression loads the
                  pretrained checkpoint into a K-layer model, ``src/utils.py`` ``load_model`` mode ``student``);
``block-last:K``  the last layer of each of K equal blocks (1,3,5,7,9,11 of 12 for K=6): BERT-gang's students
                  (``fine_tune/model/_student_bert.py`` ``init_from_pre_trained``, teacher indices
                  ``range(skip - 1, 12, skip)``). BERT-gang leaves the student's embeddings at random; here they
                  are kept.
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


LAYER_CHOICES = ("first", "block-last")  # Patient KD's, BERT-gang's (the module's docstring)


def parse_layers(text: str, source_layers: int | None = None) -> list[int]:
    """``"0,2,4"`` -> ``[0, 2, 4]``; ``"first:K"`` and ``"block-last:K"`` (the references' choices) need the
    source's ``source_layers``; a clear error for anything else."""
    name, _, count = text.partition(":")
    if name in LAYER_CHOICES:
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--layers {text!r}: {name}:K with K a positive number of layers, e.g. {name}:6")
        k = int(count)
        if source_layers is None:
            raise ValueError(f"--layers {text!r}: needs the source model's number of layers")
        if k > source_layers or (name == "block-last" and source_layers % k):
            raise ValueError(
                f"--layers {text!r}: the model has {source_layers} layers"
                + (f", not a multiple of {k}" if k <= source_layers else "")
            )
        if name == "first":
            return list(range(k))
        step = source_layers // k
        return list(range(step - 1, source_layers, step))
    try:
        layers = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--layers {text!r}: comma-separated layer numbers (0-based), e.g. 0,2,4,6,8,10, or first:K "
            "(Patient KD) or block-last:K (BERT-gang)"
        ) from None
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


def shrink(model: str | Path, out_dir: str | Path, layers: list[int] | str) -> Path:
    """Write the student made of ``layers`` of ``model`` to ``out_dir`` (a list, or ``--layers``'s text, named
    choices included); return ``out_dir``."""
    from ..data.encoding import model_files

    model, out_dir = Path(model), Path(out_dir)
    state = open_checkpoint(str(model), "model to shrink")
    weights = read_release(str(model))
    if isinstance(layers, str):
        layers = parse_layers(layers, len({int(m.group(1)) for m in map(_LAYER.match, weights) if m}))
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

"""Export one of our checkpoints as a Hugging Face folder that ``transformers`` loads offline.

    stabletune-export hf <save>/checkpoint_best.pt <out> [--task-dir <data>/<task>]

A fine-tuned checkpoint becomes the HF model class whose head computes ours (``hf_names.HF_HEADS``):
``XLMRobertaForSequenceClassification`` for sentence tasks, ``...ForTokenClassification`` for tagging,
``...ForQuestionAnswering`` for QA, with ``id2label``/``label2id`` from the run record; a release
(``model.pt`` without a head) becomes a bare ``XLMRobertaModel``. The tokenizer is built from the data's
``sentencepiece.bpe.model`` (pieces, scores and its normaliser's character map) as HF's XLM-R tokenizer,
whose ids are sentencepiece's + 1: exported only when ``dict.txt`` is in that order (XLM-R's and e5's are).
Needs ``transformers`` (``bash install.sh --hf``) at export time only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch

from ..data.binarize.atomic_dir import atomic_output_dir, check_replaceable
from ..reliability.checkpoint_safety import open_checkpoint
from ..reliability.exit_status import BadInput
from ..reliability.run_identity import recorded_identity
from .hf_names import HF_HEADS, OURS, hf_config, hf_state_from_ours, import_transformers
from .release_files import FAIRSEQ_SPECIALS
from .sentencepiece_proto import precompiled_charsmap

logger = logging.getLogger(__name__)


class NotExportable(BadInput, ValueError):
    """A checkpoint (or its data folder) that has no exact Hugging Face equivalent."""


def _section(cfg, name: str) -> dict:
    section = (cfg or {}).get(name) or {}
    return dict(section) if not isinstance(section, dict) else section


def _vocabulary_folder(checkpoint: Path, saved: dict, task_dir: str | None) -> Path:
    """Where dict.txt and sentencepiece.bpe.model are: the named folder, the task folder the run was trained on,
    or the checkpoint's own folder (a release)."""
    from ..models.checkpoint_loading import recorded_task_folder

    candidates = [Path(task_dir)] if task_dir else []
    if not task_dir:
        try:
            candidates.append(Path(recorded_task_folder(str(checkpoint), saved)))
        except (BadInput, FileNotFoundError):
            pass  # a release, or a run whose data has moved: its own folder, else --task-dir
        candidates.append(checkpoint.parent)
    for folder in candidates:
        if (folder / "dict.txt").is_file() and (folder / "sentencepiece.bpe.model").is_file():
            return folder
    raise NotExportable(
        f"{checkpoint}: no dict.txt and sentencepiece.bpe.model in {' or '.join(map(str, candidates))}; "
        "name the data folder with --task-dir"
    )


def tokenizer_vocabulary(folder: Path) -> tuple[list[tuple[str, float]], bytes]:
    """HF's XLM-R vocabulary (fairseq's order: specials, pieces, ``<mask>``) with scores, and the normaliser's
    character map; refused unless dict.txt holds the sentencepiece pieces in their own order."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(folder / "sentencepiece.bpe.model"))
    pieces = [sp.id_to_piece(i) for i in range(3, sp.get_piece_size())]
    with open(folder / "dict.txt", encoding="utf-8") as handle:
        words = [line.rstrip("\n").rsplit(" ", 1)[0] for line in handle if line.strip()]
    if words != pieces:
        first = next((i for i, (a, b) in enumerate(zip(words, pieces)) if a != b), min(len(words), len(pieces)))
        raise NotExportable(
            f"{folder}/dict.txt is not the sentencepiece model's pieces in order (first difference at "
            f"line {first + 1}; {len(words)} lines, {len(pieces)} pieces): HF's XLM-R tokenizer "
            "assumes fairseq id = sentencepiece id + 1"
        )
    vocab = [(s, 0.0) for s in FAIRSEQ_SPECIALS] + [(p, sp.get_score(i + 3)) for i, p in enumerate(pieces)]
    charsmap = precompiled_charsmap((folder / "sentencepiece.bpe.model").read_bytes())
    return vocab + [("<mask>", 0.0)], charsmap


def _head(state: dict, cfg) -> tuple[str | None, str | None]:
    from ..models.heads import HEAD_TYPE_OF_NAME as head_kinds  # e.g. "tags" -> "word"

    names = sorted({key.split(".")[1] for key in state if key.startswith("heads.")})
    if not names:
        return None, None
    if len(names) > 1 or names[0] not in head_kinds:
        raise NotExportable(f"heads {names}: one head of {sorted(head_kinds)} can be exported")
    kind = head_kinds[names[0]]
    if kind == "word" and _section(cfg, "task").get("pooling", "first") != "first":
        raise NotExportable(
            "trained with --pooling sum: a word is tagged from the sum of its pieces' states, which "
            "HF's token classification does not compute (it tags each piece); train with --pooling first"
        )
    return names[0], kind


def _shape(state: dict, cfg) -> dict:
    model = _section(cfg, "model")
    layers = len({k.split(".")[3] for k in state if k.startswith(OURS + "layers.")})
    hidden = state[OURS + "embed_tokens.weight"].shape[1]
    return {
        "layers": layers,
        "hidden": hidden,
        "ffn": state[f"{OURS}layers.0.fc1.weight"].shape[0],
        "heads": model.get("encoder_attention_heads") or hidden // 64,
        "vocab_size": state[OURS + "embed_tokens.weight"].shape[0],
        "positions": state[OURS + "embed_positions.weight"].shape[0],
        "activation": model.get("activation_fn", "gelu"),
        "dropout": model.get("dropout", 0.1),
        "attention_dropout": model.get("attention_dropout", 0.1),
        "head_dropout": model.get("head_dropout", 0.1),
    }


def _refuse_compression(checkpoint: Path, state: dict, cfg) -> None:
    """A compressed student (docs/compressed-students.md) has no XLMRobertaModel equivalent: refused, one line."""
    if OURS + "embed_tokens.projection.weight" in state:
        raise NotExportable(
            f"{checkpoint}: --embedding-bottleneck (a factorised token table): Hugging Face's XLM-R has one "
            "vocabulary x hidden table and cannot represent it"
        )
    repeat = int(_section(cfg, "model").get("layer_repeat") or 1)
    if repeat > 1:
        raise NotExportable(
            f"{checkpoint}: --layer-repeat {repeat} (layers run {repeat} times): Hugging Face's XLM-R runs each "
            "layer once and cannot represent it"
        )


def export_hf(checkpoint: str | Path, out_dir: str | Path, task_dir: str | None = None) -> Path:
    """Write the HF folder (config.json, model.safetensors, the tokenizer files, stabletune_export.json)."""
    transformers = import_transformers()
    checkpoint, out_dir = Path(checkpoint), Path(out_dir)
    check_replaceable(out_dir, "stabletune_export.json")
    saved = open_checkpoint(str(checkpoint), "checkpoint")
    cfg, record = saved.get("cfg"), recorded_identity(saved) or {}
    state = {k: v.float() for k, v in saved["model"].items() if torch.is_tensor(v)}
    if OURS + "embed_tokens.weight" not in state:
        raise NotExportable(f"{checkpoint}: no {OURS}embed_tokens.weight: not one of our XLM-R checkpoints")
    _refuse_compression(checkpoint, state, cfg)
    head, kind = _head(state, cfg)
    labels = list(record.get("labels") or []) if kind in ("sentence", "word") else None
    if kind in ("sentence", "word") and not labels:
        raise NotExportable(
            f"{checkpoint}: records no label list (written by an older version?); cannot name the outputs"
        )
    vocab_folder = _vocabulary_folder(checkpoint, saved, task_dir)
    vocab, charsmap = tokenizer_vocabulary(vocab_folder)
    shape = _shape(state, cfg)
    if len(vocab) != shape["vocab_size"]:
        raise NotExportable(
            f"{checkpoint}: {shape['vocab_size']} embedding rows, but {vocab_folder} has a vocabulary of {len(vocab)}"
        )
    config = hf_config(**shape, labels=labels)
    class_name = HF_HEADS[kind][0] if kind else "XLMRobertaModel"
    config.architectures = [class_name]
    model = getattr(transformers, class_name)(config, **({} if kind else {"add_pooling_layer": False}))
    weights = hf_state_from_ours(state, shape["layers"], kind, head, prefix="roberta." if kind else "")
    missing, unexpected = model.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise NotExportable(
            f"{checkpoint}: weights do not map one to one (missing {missing[:4]}, unexpected {unexpected[:4]})"
        )
    tokenizer = transformers.XLMRobertaTokenizer(
        vocab=vocab, _spm_precompiled_charsmap=charsmap or None, model_max_length=shape["positions"] - 2
    )
    record_out = {
        "exported_from": str(checkpoint.resolve()),
        "class": class_name,
        "task": record.get("task"),
        "labels": labels,
        "vocabulary": str(vocab_folder.resolve()),
    }
    with atomic_output_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.copyfile(vocab_folder / "sentencepiece.bpe.model", tmp / "sentencepiece.bpe.model")
        (tmp / "stabletune_export.json").write_text(json.dumps(record_out, indent=1, ensure_ascii=False))
        umask = os.umask(0)
        os.umask(umask)
        for path in tmp.iterdir():  # safetensors writes 0600: the other users of a shared machine could not read it
            path.chmod(0o666 & ~umask)
    logger.info("wrote %s (%s%s)", out_dir, class_name, f", {len(labels)} labels" if labels else "")
    return out_dir

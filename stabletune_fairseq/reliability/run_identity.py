"""What a fine-tuned checkpoint was trained on, stored in every checkpoint we write and compared wherever one
is read against data (evaluation, resume, the stage-2 teacher).

The record (``extra_state["stabletune_run"]``, written through fairseq's ``task.get_checkpoint_dict`` hook):
the task, its label list in the order of the head's outputs, the vocabulary (a hash of ``dict.txt``), the
data folder, and its fingerprint: a hash of ``metadata.json`` without the source paths (the same download
preprocessed in another place has the same fingerprint). Another task, label list or vocabulary is an
error: the head's outputs would be read as the wrong labels, or the tokens as other tokens, and the scores
would be garbage even when the shapes agree (two tag sets of 7). Another fingerprint alone (same task and
labels, other data, e.g. a re-preprocessed test set) is only a warning, and so is another QA dataset (a
TyDiQA-GoldP model scored on XQuAD: the same span labels).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

if __package__:
    from .checkpoint_safety import WrongCheckpoint
else:  # run by path (release.py): checkpoint_safety.py is next to this file
    from checkpoint_safety import WrongCheckpoint

logger = logging.getLogger(__name__)

KEY = "stabletune_run"


def data_fingerprint(metadata: dict) -> str:
    """A hash of the metadata that says what the data is (task, labels, splits and their counts), not where."""
    content = {
        **metadata,
        "splits": {
            name: {k: v for k, v in split.items() if k != "source"}
            for name, split in metadata.get("splits", {}).items()
        },
    }
    content.pop("translations", None)  # where translate-train files came from, not what is evaluated
    return hashlib.sha256(json.dumps(content, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def vocabulary_hash(data_dir: str) -> str:
    with open(os.path.join(data_dir, "dict.txt"), "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()[:16]


def vocabulary_rows(dictionary_file: str) -> int:
    """The embedding rows an XLM-R model needs for ``dict.txt``: fairseq's 4 special symbols, one per line,
    and RoBERTa's ``<mask>``."""
    with open(dictionary_file, encoding="utf-8") as handle:
        return 4 + sum(1 for line in handle if line.strip()) + 1


def check_vocabulary(path: str, role: str, rows: int, needed: int, dictionary: str) -> None:
    """The one check that a model's embedding rows are those of the data's dictionary (``needed`` rows, from
    ``dictionary``: a file, or words saying which)."""
    if rows != needed:
        raise WrongCheckpoint(
            f"{role} {path}: a vocabulary of {rows} tokens, but the data was preprocessed with "
            f"another dictionary ({dictionary}: {needed} tokens); preprocess with this model's "
            "dict.txt and sentencepiece model"
        )


def data_identity(data_dir: str, metadata: dict) -> dict:
    return {
        "task": metadata["task"],
        "kind": metadata["kind"],
        "labels": list(metadata["labels"]),
        "vocabulary": vocabulary_hash(data_dir),
        "data": os.path.abspath(data_dir),
        "fingerprint": data_fingerprint(metadata),
    }


def recorded_identity(checkpoint: dict) -> dict | None:
    """The record of a checkpoint we wrote; None for others (releases, older versions, plain fairseq)."""
    return (checkpoint.get("extra_state") or {}).get(KEY)


def _labels(labels: list) -> str:
    shown = ", ".join(map(str, labels[:8])) + (", ..." if len(labels) > 8 else "")
    return f"{len(labels)} labels: {shown}"


def check_identity(path: str, role: str, recorded: dict | None, current: dict) -> str | None:
    """Raise ``WrongCheckpoint`` when the checkpoint at ``path`` was trained on another task, label list or
    vocabulary than ``current`` describes; log and return a warning when only the data differs (None when all
    agree, or when the checkpoint has no record)."""
    if recorded is None:
        return None
    data = current["data"]
    same_task = recorded["task"] == current["task"]
    # Every extractive-QA folder (XQuAD, MLQA, TyDiQA-GoldP, SQuAD) has the same span head and labels: a model
    # trained on one and scored on another is XTREME's zero-shot protocol, so that is only a warning.
    other_qa_data = recorded["kind"] == current["kind"] == "qa"
    if recorded["kind"] != current["kind"] or not (same_task or other_qa_data):
        raise WrongCheckpoint(
            f"{role} {path}: fine-tuned on {recorded['task']} ({_labels(recorded['labels'])}), but "
            f"{data} holds {current['task']} ({_labels(current['labels'])})"
        )
    if recorded["labels"] != current["labels"]:
        raise WrongCheckpoint(
            f"{role} {path}: fine-tuned on {recorded['task']} with {_labels(recorded['labels'])}, "
            f"but {data} has {_labels(current['labels'])}: its outputs would be read as other labels"
        )
    if recorded["vocabulary"] != current["vocabulary"]:
        raise WrongCheckpoint(
            f"{role} {path}: trained with another vocabulary (dict.txt {recorded['vocabulary']}) than "
            f"{data} was preprocessed with ({current['vocabulary']}): preprocess with the model's dict.txt"
        )
    if not same_task:
        warning = (
            f"{role} {path} was trained on {recorded['task']} ({recorded['data']}); {data} holds "
            f"{current['task']}: another QA dataset with the same span labels (zero-shot transfer)"
        )
        logger.warning("%s", warning)
        return warning
    if recorded["fingerprint"] != current["fingerprint"]:
        warning = (
            f"{role} {path} was trained on {recorded['data']} (fingerprint {recorded['fingerprint']}); {data} "
            f"is other data of the same task and labels (fingerprint {current['fingerprint']})"
        )
        logger.warning("%s", warning)
        return warning
    return None


def check_shapes(path: str, role: str, model_state: dict, head: str, labels: list, dictionary_file: str) -> None:
    """For checkpoints without a record: the head's outputs and the vocabulary must at least fit the data."""
    embeddings = model_state.get("encoder.sentence_encoder.embed_tokens.weight")
    if embeddings is not None:
        check_vocabulary(path, role, embeddings.shape[0], vocabulary_rows(dictionary_file), dictionary_file)
    heads = sorted({k.split(".")[1] for k in model_state if k.startswith("heads.")})
    if head not in heads:
        raise WrongCheckpoint(
            f"{role} {path}: has no {head!r} head (heads: {', '.join(heads) or 'none'}): a checkpoint "
            "of another task family, or a pretrained model that was never fine-tuned"
        )
    outputs = model_state[f"heads.{head}.out_proj.weight"].shape[0]
    if outputs != len(labels):
        raise WrongCheckpoint(f"{role} {path}: its {head!r} head has {outputs} outputs, the data has {_labels(labels)}")


def check_fits_model(path: str, role: str, checkpoint: dict, model) -> None:
    """A checkpoint to load into this run's ``model`` must hold exactly its weights, of the same shapes: another
    architecture (or a model option such as the layer count) is one line, not fairseq's size-mismatch traceback."""
    stored, own = checkpoint["model"], model.state_dict()
    trained_as = ((checkpoint.get("cfg") or {}).get("model") or {}).get("_name") or "another architecture"
    hint = f"trained as {trained_as}; another --arch, model option or save dir?"
    for key, value in own.items():
        if key in stored and tuple(stored[key].shape) != tuple(value.shape):
            raise WrongCheckpoint(
                f"{role} {path}: {key} has shape {tuple(stored[key].shape)}, this run's model needs "
                f"{tuple(value.shape)} ({hint})"
            )
    missing = [key for key, _ in model.named_parameters() if key not in stored]
    if missing:
        raise WrongCheckpoint(
            f"{role} {path}: has no {missing[0]} ({len(missing)} weights of this run's model are missing; {hint})"
        )
    unused = sorted(key for key in stored if key not in own)
    if unused:
        raise WrongCheckpoint(
            f"{role} {path}: {len(unused)} weights have no place in this run's model, e.g. {unused[0]} ({hint})"
        )

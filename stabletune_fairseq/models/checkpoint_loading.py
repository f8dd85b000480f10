"""Open a fine-tuned checkpoint for evaluation or prediction: the task folder it belongs to, the check that it
does belong to it, and the model and task loaded as fairseq loads them, with that folder as the data.

A checkpoint is only usable with the task folder it was trained on (its labels and vocabulary): the folder
is found from the checkpoint itself (its run record, else its fairseq ``--data``), so a user names one file,
and a folder named instead is checked before fairseq reads either.
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)


def check_checkpoint_against_data(checkpoint: str, data: str) -> str:
    """A clear error when ``checkpoint`` is no fine-tuned checkpoint of the task, labels and vocabulary of
    ``data``; what was checked (stored in results.json): "same data", a warning, or the shapes only."""
    from ..data.metadata import load_metadata
    from ..reliability.checkpoint_safety import open_checkpoint
    from ..reliability.run_identity import check_identity, check_shapes, data_identity, recorded_identity
    from .heads import HEAD_OF_KIND

    state = open_checkpoint(checkpoint, "checkpoint")
    metadata = load_metadata(data)
    recorded = recorded_identity(state)
    if recorded is not None:
        return check_identity(checkpoint, "checkpoint", recorded, data_identity(data, metadata)) or "same data"
    # Written by an older version or by plain fairseq: the head and the vocabulary must at least fit.
    check_shapes(
        checkpoint,
        "checkpoint",
        state["model"],
        HEAD_OF_KIND[metadata["kind"]][0],
        metadata["labels"],
        os.path.join(data, "dict.txt"),
    )
    logger.warning("%s records no task: only the shapes of its head and vocabulary were checked", checkpoint)
    return "no record in the checkpoint: shapes checked"


def recorded_task_folder(checkpoint: str, state: dict | None = None) -> str:
    """The task folder ``checkpoint`` was trained on: the (absolute) ``data`` of its run record, else the
    ``--data`` of its fairseq settings (as given to fairseq-train: a relative path is read from here).
    ``state``: the checkpoint already opened by the caller, so it is not read again."""
    from ..reliability.checkpoint_safety import WrongCheckpoint, open_checkpoint
    from ..reliability.run_identity import recorded_identity

    state = state if state is not None else open_checkpoint(checkpoint, "checkpoint")
    data = (recorded_identity(state) or {}).get("data")
    if not data:
        settings = state.get("cfg") or {}
        data = (settings.get("task") or {}).get("data") if isinstance(settings, dict) else None
        data = data or getattr(state.get("args"), "data", None)
    if not data:
        raise WrongCheckpoint(
            f"checkpoint {checkpoint}: records no task folder; name the folder process.sh wrote "
            "(--task-dir, or task_dir= of load_model)"
        )
    if not os.path.isfile(os.path.join(data, "metadata.json")):
        raise FileNotFoundError(
            f"checkpoint {checkpoint} was trained on the task folder {data}, which is not there "
            "(any more): name the folder process.sh wrote (--task-dir, or task_dir= of load_model)"
        )
    return str(data)


def choose_device(device=None) -> torch.device:
    """``device`` as given (``"cpu"``, ``"cuda:1"``, a ``torch.device``), else the GPU when there is one."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def load_for_inference(checkpoint: str, data: str, device: torch.device, overrides: dict | None = None):
    """(model on ``device`` in eval mode, task, what was checked) of ``checkpoint`` read with ``data`` as its task
    folder, after ``check_checkpoint_against_data``; ``overrides``: more settings of the run to replace (e.g. the
    task's augmentation). The task's ``cpu_precision`` is set to fp32: a run trained in bf16 loads on any machine, and
    prediction runs in the precision its caller asks for (``models/precision.py``)."""
    from fairseq import checkpoint_utils

    from ..reliability.checkpoint_safety import fairseq_types_allowed

    data_check = check_checkpoint_against_data(checkpoint, data)  # before fairseq reads either
    with fairseq_types_allowed():  # fairseq's own torch.load: an older fairseq's checkpoint holds args, numpy values
        models, _, task = checkpoint_utils.load_model_ensemble_and_task(
            [str(checkpoint)], arg_overrides={"data": str(data), "cpu_precision": "fp32", **(overrides or {})}
        )
    return models[0].to(device).eval(), task, data_check

"""Let ``torch.load(weights_only=True)`` read fairseq checkpoints, and nothing more.

torch >= 2.6 loads with ``weights_only=True`` by default and refuses the Python objects fairseq puts in
its checkpoints. We allow exactly those types (found by saving and loading fairseq, official XLM-R and
our own checkpoints) instead of disabling the check with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``, which
would unpickle anything, including a checkpoint crafted to run code.

The allowance is scoped: ``load_checkpoint_safely`` (every load of the plugin's own) allows the types for its
one ``torch.load``, so importing the plugin changes nothing in torch. ``allow_fairseq_checkpoints`` adds them to
torch's process-wide list; only fairseq-train under the plugin (``train_guard``) and ``release.py`` run by path
call it, for the loads fairseq does itself (``checkpoint_utils.load_checkpoint_to_cpu`` uses torch's default,
``weights_only=True``: ``--restore-file`` or ``--finetune-from-model`` of an official release needs the types).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import zipfile

import numpy as np
import torch

if __package__:
    from .exit_status import BadInput
else:  # run by path (release.py): exit_status.py is next to this file
    from exit_status import BadInput

try:  # numpy 2 moved numpy.core to numpy._core
    from numpy._core.multiarray import scalar as numpy_scalar
except ImportError:
    from numpy.core.multiarray import scalar as numpy_scalar


def fairseq_checkpoint_types() -> list:
    """Types found in fairseq checkpoints beyond tensors and plain containers.

    - ``argparse.Namespace``: the ``args`` of official XLM-R releases and of pre-hydra fairseq
      checkpoints (the cause of torch's "Unsupported global: argparse.Namespace").
    - numpy scalars and their dtypes: statistics such as ``extra_state['val_loss']`` or meter values
      that older fairseq versions stored as ``np.float64``.
    Checkpoints written by fairseq-fixed itself need none of them (its ``cfg`` is a plain dict).
    """
    numpy_scalars = [numpy_scalar, np.dtype]
    numpy_scalars += [type(np.dtype(name)) for name in ("float64", "float32", "int64", "int32", "bool")]
    return [argparse.Namespace, *numpy_scalars]


def allow_fairseq_checkpoints() -> None:
    """For every ``torch.load`` of this process (see the module's docstring for who calls it)."""
    torch.serialization.add_safe_globals(fairseq_checkpoint_types())


def fairseq_types_allowed():
    """A context in which ``weights_only`` loads accept the types, torch's list restored after it. Only types
    not allowed already are added: torch's context removes what it added on exit, even types allowed before."""
    scoped = getattr(torch.serialization, "safe_globals", None)
    if scoped is None:  # torch 2.4 has only the process-wide list
        allow_fairseq_checkpoints()
        return contextlib.nullcontext()
    allowed = torch.serialization.get_safe_globals()
    return scoped([kind for kind in fairseq_checkpoint_types() if kind not in allowed])


class UnsafeCheckpoint(BadInput, RuntimeError):
    """A checkpoint whose pickle holds more than weights and fairseq's settings."""


class NotACheckpoint(BadInput, ValueError):
    """A file that is not a torch checkpoint at all (empty, text, another format, cut short)."""


class WrongCheckpoint(BadInput, ValueError):
    """A path that is no fairseq checkpoint of what is needed: missing, a folder, a Hugging Face model,
    another task's or vocabulary's checkpoint."""


def load_checkpoint_safely(path: str, mmap: bool = True) -> dict:
    """``torch.load`` with ``weights_only=True`` (memory-mapped: cheap even for large files), with a
    clear error naming the file when the pickle asks for anything beyond the allowed types, or when the
    file is no torch checkpoint. Files in torch's legacy format (``torch.save`` before torch 1.6, e.g. the
    2019 XLM-R releases) cannot be memory-mapped and are read whole."""
    import pickle

    zipped = zipfile.is_zipfile(path)
    if not zipped:
        with open(path, "rb") as f:
            head = f.read(4)
        if head.startswith(b"PK"):
            raise NotACheckpoint(
                f"{path}: not a torch checkpoint: a zip archive cut short or damaged (a "
                "checkpoint whose writing was interrupted?)"
            )
        if head[:1] != b"\x80":  # a legacy torch file is a pickle (protocol 2 or later)
            what = "an empty file" if not head else "neither torch's zip format nor its legacy pickle format"
            raise NotACheckpoint(f"{path}: not a torch checkpoint ({what})")
    else:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        if not any(name.endswith("data.pkl") for name in names):
            raise NotACheckpoint(
                f"{path}: not a torch checkpoint: a zip archive of other files "
                f"(e.g. {', '.join(names[:3]) or 'nothing'})"
            )
    try:
        with fairseq_types_allowed():
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipped)
    except (EOFError, IndexError, KeyError, RuntimeError, ValueError) as err:  # a damaged or foreign file
        raise NotACheckpoint(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from None
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        detail = next((line for line in lines if "global" in line.lower()), None)
        if detail is None:  # no object asked for: the pickle itself is broken (e.g. cut short)
            unpickler = next((line for line in lines if "WeightsUnpickler error" not in line), str(err))
            raise NotACheckpoint(
                f"{path}: not a readable torch checkpoint (its pickle is broken: {unpickler})"
            ) from None
        raise UnsafeCheckpoint(
            f"{path}: refusing to load this checkpoint: its pickle holds Python objects that are not weights "
            f"({detail}). Only tensors, containers, numpy values and argparse.Namespace are read; nothing in the "
            "file was executed."
        ) from None


HF_WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors", "tf_model.h5", "flax_model.msgpack")
HF_KEY_PREFIXES = ("roberta.", "bert.", "xlm_roberta.", "embeddings.", "encoder.layer.")


def _what_folder(path: str) -> str:
    names = set(os.listdir(path))
    if "config.json" in names and names & set(HF_WEIGHT_FILES) or any(n.startswith("pytorch_model-") for n in names):
        return (
            "a Hugging Face model folder, not a fairseq checkpoint file (this plugin reads fairseq checkpoints: an "
            "XLM-R release's model.pt, stabletune-convert's output, or a checkpoint it wrote)"
        )
    checkpoints = sorted(n for n in names if n.startswith("checkpoint") and n.endswith(".pt"))
    if checkpoints:
        pick = "checkpoint_best.pt" if "checkpoint_best.pt" in names else checkpoints[0]
        return f"a folder of checkpoints, not a checkpoint file: name one, e.g. {os.path.join(path, pick)}"
    if "model.pt" in names:
        return f"a folder, not a checkpoint file: name the file, e.g. {os.path.join(path, 'model.pt')}"
    return "a folder, not a checkpoint file"


def _what_instead(state) -> str:
    if isinstance(state, dict) and state and all(isinstance(k, str) for k in state):
        keys = sorted(state)
        hf = [k for k in keys if k.startswith(HF_KEY_PREFIXES)]
        if hf and all(isinstance(v, torch.Tensor) for v in state.values()):
            return (
                f"a Hugging Face state dict (keys like '{hf[0]}'), not a fairseq checkpoint (this plugin reads "
                "fairseq checkpoints with a 'model' entry)"
            )
        return f"a torch file, but not a fairseq checkpoint (no 'model' entry; it holds {', '.join(keys[:4])})"
    return f"a torch file, but not a fairseq checkpoint (it holds a {type(state).__name__}, not a dict with 'model')"


def open_checkpoint(path: str, role: str = "checkpoint") -> dict:
    """The fairseq checkpoint at ``path``, read safely (memory-mapped). Anything else is one line naming the
    file, its role (e.g. "pretrained model", "teacher") and what it is instead: a ``BadInput``."""
    path = str(path)
    if os.path.isdir(path):
        raise WrongCheckpoint(f"{role} {path}: {_what_folder(path)}")
    if not os.path.exists(path):
        raise WrongCheckpoint(f"{role} {path}: no such file")
    try:
        state = load_checkpoint_safely(path)
    except (NotACheckpoint, UnsafeCheckpoint) as err:
        raise type(err)(f"{role} {err}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise WrongCheckpoint(f"{role} {path}: {_what_instead(state)}")
    return state

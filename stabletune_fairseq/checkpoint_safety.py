"""Let ``torch.load(weights_only=True)`` read fairseq checkpoints, and nothing more.

torch >= 2.6 loads with ``weights_only=True`` by default and refuses the Python objects fairseq puts in
its checkpoints. We allow exactly those types (found by saving and loading fairseq, official XLM-R and
our own checkpoints) instead of disabling the check with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``, which
would unpickle anything, including a checkpoint crafted to run code.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

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
    torch.serialization.add_safe_globals(fairseq_checkpoint_types())


class UnsafeCheckpoint(RuntimeError):
    """A checkpoint whose pickle holds more than weights and fairseq's settings."""


class NotACheckpoint(ValueError):
    """A file that is not a torch checkpoint at all (empty, text, another format)."""


def load_checkpoint_safely(path: str, mmap: bool = True) -> dict:
    """``torch.load`` with ``weights_only=True`` (memory-mapped: cheap even for large files), with a
    clear error naming the file when the pickle asks for anything beyond the allowed types, or when the
    file is no torch checkpoint. Files in torch's legacy format (``torch.save`` before torch 1.6, e.g. the
    2019 XLM-R releases) cannot be memory-mapped and are read whole."""
    import pickle
    import zipfile

    zipped = zipfile.is_zipfile(path)
    if not zipped:
        with open(path, "rb") as f:
            if f.read(1) != b"\x80":  # a legacy torch file is a pickle (protocol 2 or later)
                raise NotACheckpoint(f"{path}: not a torch checkpoint (neither torch's zip format nor its legacy "
                                     "pickle format)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipped)
    except (EOFError, IndexError, KeyError, RuntimeError, ValueError) as err:  # a damaged or foreign file
        raise NotACheckpoint(f"{path}: not a readable torch checkpoint ({type(err).__name__}: {err})") from None
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
        detail = next((line for line in lines if "global" in line.lower()), None)
        if detail is None:  # no object asked for: the pickle itself is broken (e.g. cut short)
            unpickler = next((line for line in lines if "WeightsUnpickler error" not in line), str(err))
            raise NotACheckpoint(f"{path}: not a readable torch checkpoint (its pickle is broken: {unpickler})") from None
        raise UnsafeCheckpoint(
            f"{path}: refusing to load this checkpoint: its pickle holds Python objects that are not weights "
            f"({detail}). Only tensors, containers, numpy values and argparse.Namespace are read; nothing in the "
            "file was executed.") from None

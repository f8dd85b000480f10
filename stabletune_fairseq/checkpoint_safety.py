"""Let ``torch.load(weights_only=True)`` read fairseq checkpoints, and nothing more.

torch >= 2.6 loads with ``weights_only=True`` by default and refuses the Python objects fairseq puts in
its checkpoints. We allow exactly those types (found by saving and loading fairseq, official XLM-R and
our own checkpoints) instead of disabling the check with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``, which
would unpickle anything, including a checkpoint crafted to run code.
"""
from __future__ import annotations

import argparse
import collections

import numpy as np
import torch


def fairseq_checkpoint_types() -> list:
    from fairseq.logging import meters

    numpy_types = [np.dtype, np.core.multiarray.scalar, np.ndarray, np.core.multiarray._reconstruct]
    numpy_types += [type(np.dtype(name)) for name in ("float64", "float32", "int64", "int32", "bool")]
    fairseq_meters = [meters.AverageMeter, meters.SumMeter, meters.TimeMeter, meters.StopwatchMeter,
                      meters.MetersDict]
    if hasattr(meters, "ConcatTensorMeter"):
        fairseq_meters.append(meters.ConcatTensorMeter)
    return [argparse.Namespace, collections.OrderedDict, collections.defaultdict, *numpy_types, *fairseq_meters]


def allow_fairseq_checkpoints() -> None:
    torch.serialization.add_safe_globals(fairseq_checkpoint_types())

"""Write token id sequences and labels in fairseq's binarised formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from fairseq.data import ListDataset, indexed_dataset


def write_token_dataset(prefix: str | Path, sequences: list[np.ndarray], vocab_size: int) -> None:
    """fairseq ``mmap`` dataset ``<prefix>.bin``/``.idx`` (what ``fairseq-preprocess`` writes)."""
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    builder = indexed_dataset.make_builder(f"{prefix}.bin", impl="mmap", vocab_size=vocab_size)
    for ids in sequences:
        builder.add_item(torch.from_numpy(np.asarray(ids, dtype=np.int64)))
    builder.finalize(f"{prefix}.idx")


def memory_token_dataset(sequences: list[np.ndarray]) -> ListDataset:
    """What ``write_token_dataset`` stores, held in memory (prediction on raw text): items are int64 tensors
    and ``sizes`` their lengths, as the task's datasets read them from a stored folder."""
    items = [torch.from_numpy(np.asarray(ids, dtype=np.int64)) for ids in sequences]
    return ListDataset(items, sizes=np.array([len(item) for item in items], dtype=np.int64))


def write_int_array(path: str | Path, values) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(values, dtype=np.int64))


PAIR_SPECIAL_TOKENS = 4  # <s> a </s> </s> b </s>
SINGLE_SPECIAL_TOKENS = 2  # <s> a </s>


def truncate_pair(a: np.ndarray, b: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Cut the longer of two sequences, piece by piece, until both fit ``budget`` pieces together."""
    if len(a) + len(b) <= budget:
        return a, b, False
    keep_a, keep_b = len(a), len(b)
    while keep_a + keep_b > budget:
        if keep_a >= keep_b:
            keep_a -= 1
        else:
            keep_b -= 1
    return a[:keep_a], b[:keep_b], True

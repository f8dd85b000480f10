"""Rows of multilingual distillation: a source sentence and, for a parallel pair, its translation.

Each side is fed as ``<s> prefix pieces </s>``, cut to ``max_positions`` tokens (the prefix's pieces, e.g.
multilingual-e5's ``query: ``, computed once: sentencepiece segments whitespace-separated words independently, so
for a prefix ending in a space they are what encoding ``prefix + sentence`` would give). A batch holds
``net_input.src_tokens`` (every row's source), ``target_tokens`` (the targets of the rows that have one) and
``target_rows`` (which rows those are).
"""

from __future__ import annotations

import numpy as np
import torch
from fairseq.data import FairseqDataset, data_utils

SPECIAL_TOKENS = 2  # <s> and </s>


class ParallelPairsDataset(FairseqDataset):
    """``sources``: a token dataset of every row (pairs first); ``targets``: the pairs' targets (row i < len(targets)
    has target i). ``shuffle``: random order among rows of equal length, re-drawn every epoch (training)."""

    def __init__(
        self,
        sources,
        targets,
        prefix: np.ndarray,
        bos: int,
        eos: int,
        pad: int,
        max_positions: int,
        shuffle: bool = False,
        seed: int = 1,
    ):
        if len(targets) > len(sources):
            raise ValueError(f"{len(targets)} targets for {len(sources)} sources")
        self.sources, self.targets = sources, targets
        self.prefix = torch.as_tensor(prefix, dtype=torch.long)
        self.bos, self.eos, self.pad = bos, eos, pad
        self.limit = max_positions - SPECIAL_TOKENS - len(prefix)  # pieces of a sentence that fit
        if self.limit < 1:
            raise ValueError(f"a prefix of {len(prefix)} pieces leaves no room in {max_positions} positions")
        self.shuffle, self.seed, self.epoch = shuffle, seed, 1
        source_sizes = np.asarray(sources.sizes, dtype=np.int64)
        target_sizes = np.zeros_like(source_sizes)
        target_sizes[: len(targets)] = np.asarray(targets.sizes, dtype=np.int64)
        self.cut = {"source": int((source_sizes > self.limit).sum()), "target": int((target_sizes > self.limit).sum())}
        extra = SPECIAL_TOKENS + len(prefix)
        self.sizes = np.minimum(np.maximum(source_sizes, target_sizes), self.limit) + extra

    @property
    def pairs(self) -> int:
        return len(self.targets)

    def __len__(self) -> int:
        return len(self.sources)

    def _wrap(self, pieces: torch.Tensor) -> torch.Tensor:
        pieces = pieces[: self.limit].long()
        return torch.cat([pieces.new_tensor([self.bos]), self.prefix, pieces, pieces.new_tensor([self.eos])])

    def __getitem__(self, index: int) -> dict:
        target = self._wrap(self.targets[index]) if index < len(self.targets) else None
        return {"id": index, "source": self._wrap(self.sources[index]), "target": target}

    def collater(self, samples: list[dict]) -> dict:
        if not samples:
            return {}
        sources = [s["source"] for s in samples]
        targets = [s["target"] for s in samples if s["target"] is not None]
        batch = {
            "id": torch.tensor([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": sum(len(t) for t in sources + targets),
            "net_input": {
                "src_tokens": data_utils.collate_tokens(sources, self.pad),
                "src_lengths": torch.tensor([len(t) for t in sources]),
            },
            "target_rows": torch.tensor([s["target"] is not None for s in samples]),
        }
        if targets:
            batch["target_tokens"] = data_utils.collate_tokens(targets, self.pad)
        return batch

    def num_tokens(self, index: int) -> int:
        return int(self.sizes[index])

    def size(self, index: int) -> int:
        return int(self.sizes[index])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def ordered_indices(self) -> np.ndarray:
        """By length (batches of similar length); among equal lengths at random per epoch when shuffling."""
        if not self.shuffle:
            return np.argsort(self.sizes, kind="stable")
        with data_utils.numpy_seed(self.seed, self.epoch):
            order = np.random.permutation(len(self))
        return order[np.argsort(self.sizes[order], kind="stable")]

    @property
    def supports_prefetch(self) -> bool:
        return False

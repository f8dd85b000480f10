"""The fairseq dataset protocol shared by our training datasets whose views are drawn per epoch.

Subclasses set ``self._sizes`` (tokens per item) and read the current epoch with ``self.epoch``. The
epoch lives in shared memory: fairseq keeps data-loader workers alive across epochs, and a plain
attribute set by ``set_epoch`` would never reach them. Batches stay the same across epochs (only the
views change), so fairseq may reuse its epoch iterator.
"""

from __future__ import annotations

import numpy as np
import torch
from fairseq.data import FairseqDataset

from .complete_batches import CompleteBatchesMixin


class EpochViewsDataset(CompleteBatchesMixin, FairseqDataset):
    _sizes: np.ndarray

    def __init__(self):
        self._epoch = torch.ones(1, dtype=torch.long).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch):
        self._epoch[0] = epoch

    def __len__(self):
        return len(self._sizes)

    @property
    def sizes(self):
        return self._sizes

    def num_tokens(self, index):
        return self._sizes[index]

    def size(self, index):
        return self._sizes[index]

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return True

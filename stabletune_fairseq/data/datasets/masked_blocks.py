"""What a ``stabletune_mlm`` batch holds, composed from fairseq's own datasets (``MaskTokensDataset`` and its
wrappers, as fairseq's ``masked_lm`` task composes them).

Masking (RoBERTa's, by fairseq's ``MaskTokensDataset``): ``mask_prob`` (15%) of a block's pieces are chosen (the
count rounded at random: ``int(0.15 * n + U(0, 1))``); of those, ``leave_unmasked_prob`` (10%) stay as they are,
``random_token_prob`` (10%) become a random non-special token, the rest (80%) ``<mask>``. Only the stored pieces are
masked: ``<s>`` and ``</s>`` are added afterwards, so they are never predicted. The target is the original piece at
the chosen positions and ``<pad>`` elsewhere.

The masks of an item depend on (seed, epoch, index) only. Training draws new masks every epoch; evaluation
(``fixed=True``) keeps epoch 0 for ever, so every evaluation of any checkpoint sees the same masked tokens.
"""

from __future__ import annotations

import numpy as np
from fairseq.data import (
    AppendTokenDataset,
    IdDataset,
    MaskTokensDataset,
    NumelDataset,
    NumSamplesDataset,
    PrependTokenDataset,
    RightPadDataset,
    SortDataset,
    data_utils,
)

from .complete_batches import CompleteBatchesDataset


class FixedMaskTokensDataset(MaskTokensDataset):
    """``MaskTokensDataset`` whose masks never change with the epoch (evaluation)."""

    def set_epoch(self, epoch, **unused):
        pass


def masked_block_dataset(
    blocks,
    dictionary,
    seed: int,
    mask_prob: float = 0.15,
    leave_unmasked_prob: float = 0.1,
    random_token_prob: float = 0.1,
    fixed: bool = False,
    shuffle: bool = False,
):
    """The batches of masked-LM training or evaluation over stored ``blocks`` (pieces without ``<s>``/``</s>``)."""
    kind = FixedMaskTokensDataset if fixed else MaskTokensDataset
    source, target = kind.apply_mask(
        blocks,
        dictionary,
        pad_idx=dictionary.pad(),
        mask_idx=dictionary.index("<mask>"),
        seed=seed,
        mask_prob=mask_prob,
        leave_unmasked_prob=leave_unmasked_prob,
        random_token_prob=random_token_prob,
    )
    source = PrependTokenDataset(AppendTokenDataset(source, dictionary.eos()), dictionary.bos())
    target = PrependTokenDataset(AppendTokenDataset(target, dictionary.pad()), dictionary.pad())
    dataset = CompleteBatchesDataset(  # fairseq's batching alone drops a remainder of blocks (complete_batches.py)
        {
            "id": IdDataset(),
            "net_input": {
                "src_tokens": RightPadDataset(source, pad_idx=dictionary.pad()),
                "src_lengths": NumelDataset(source, reduce=False),
            },
            "target": RightPadDataset(target, pad_idx=dictionary.pad()),
            "nsentences": NumSamplesDataset(),
            "ntokens": NumelDataset(source, reduce=True),
        },
        sizes=[source.sizes],
    )
    if not shuffle:
        return dataset
    with data_utils.numpy_seed(seed):  # batches of similar length, random among equal lengths
        order = np.random.permutation(len(dataset))
    return SortDataset(dataset, sort_order=[order, source.sizes])

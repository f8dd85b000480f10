"""Training examples of a sentence-pair task with their augmented views, built when the batch is.

Each item is one training row and, when an R1 augmentation is set, its second view; a collated batch
holds the rows first and their views after them, so one forward pass serves both. In stage 2
(``row_augmenter`` set) the dataset is D ∪ D_aug: items ``N..2N-1`` are augmented copies of items
``0..N-1``, re-drawn every epoch, and marked for the teacher (R2). A copy's view is drawn from the
original example, independently of the copy (so copy and view differ where either changed a word).

Single-sentence tasks (GLUE's CoLA, SST-2) pass no ``second`` text: items are ``<s> a </s>``. Labels are class
indices, or float scores for a regression task (STS-B).

Random draws are seeded by (seed, epoch, item, slot), so a resumed or multi-process run draws the same
views (the epoch is shared with data-loader workers, see ``epoch_views.py``).
"""

from __future__ import annotations

import numpy as np
import torch
from fairseq.data import data_utils

from ..augment.views import ROW_SLOT, VIEW_SLOT, view_rng
from ..binarize.token_files import PAIR_SPECIAL_TOKENS, SINGLE_SPECIAL_TOKENS, truncate_pair
from .epoch_views import EpochViewsDataset


class PairViewsDataset(EpochViewsDataset):
    def __init__(
        self,
        first,
        second,
        labels,
        languages,
        dictionary,
        max_positions: int,
        seed: int,
        view_augmenter=None,
        row_augmenter=None,
    ):
        super().__init__()
        self.first, self.second = first, second
        self.labels, self.languages = np.asarray(labels), np.asarray(languages)
        self.bos, self.eos, self.pad = dictionary.bos(), dictionary.eos(), dictionary.pad()
        self.specials = SINGLE_SPECIAL_TOKENS if second is None else PAIR_SPECIAL_TOKENS
        self.budget = max_positions - self.specials
        self.seed = seed
        self.view_augmenter, self.row_augmenter = view_augmenter, row_augmenter
        self.base_size = len(first)
        copies = 2 if row_augmenter is not None else 1
        second_sizes = 0 if second is None else np.asarray(second.sizes)
        self._sizes = np.tile(np.asarray(first.sizes) + second_sizes + self.specials, copies)
        self._label = float if np.issubdtype(self.labels.dtype, np.floating) else int

    def ordered_indices(self):
        return np.arange(len(self))

    # --- items ------------------------------------------------------------------------------
    def _assemble(self, a, b) -> tuple[torch.Tensor, bool]:
        a, b, cut = truncate_pair(a, b, self.budget)
        middle = [self.eos] if self.second is None else [self.eos, self.eos, *b, self.eos]
        tokens = np.concatenate([[self.bos], a, middle])
        return torch.from_numpy(tokens.astype(np.int64)), cut

    def _text_views(self, augmenter, a, b, rng):
        return augmenter(a, rng), (b if self.second is None else augmenter(b, rng))

    def __getitem__(self, index):
        epoch = self.epoch
        base = index % self.base_size
        a = self.first[base].numpy()
        b = np.zeros(0, dtype=np.int64) if self.second is None else self.second[base].numpy()
        is_copy = index >= self.base_size
        by_example = getattr(self.view_augmenter, "by_example", False)  # translation views
        row, choice = (a, b), None
        if is_copy:
            rng = view_rng(self.seed, epoch, base, ROW_SLOT)
            if getattr(self.row_augmenter, "by_example", False):
                choice = self.row_augmenter.choose(base, rng)
                row = self.row_augmenter.texts(base, choice) if choice is not None else (a, b)
            else:
                row = self._text_views(self.row_augmenter, a, b, rng)
        tokens, row_cut = self._assemble(*row)
        item = {
            "id": index,
            "tokens": tokens,
            "target": self._label(self.labels[base]),
            "lang": int(self.languages[base]),
            "teacher": is_copy,
            "truncated": int(row_cut and is_copy),
        }
        if self.view_augmenter is not None:
            # The view is drawn from the example itself, independently of its copy (as the reference does);
            # a translated copy's view is another translation of the example, or its English original.
            rng = view_rng(self.seed, epoch, index, VIEW_SLOT)
            if not by_example:
                view = self._text_views(self.view_augmenter, a, b, rng)
            elif choice is not None:
                view = self.view_augmenter.other_than(base, choice, rng) or (a, b)
            else:
                view = self.view_augmenter.pair(base, rng) or (a, b)
            item["view"], view_cut = self._assemble(*view)
            item["truncated"] += int(view_cut)
        return item

    def collater(self, samples):
        if not samples:
            return {}
        rows = [s["tokens"] for s in samples]
        views = [s["view"] for s in samples if "view" in s]
        tokens = data_utils.collate_tokens(rows + views, self.pad, left_pad=False)
        return {
            "id": torch.tensor([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": sum(len(t) for t in rows + views),
            "net_input": {"src_tokens": tokens},
            "target": torch.tensor([s["target"] for s in samples]),
            "lang": torch.tensor([s["lang"] for s in samples]),
            "has_views": bool(views),
            "teacher_rows": torch.tensor([s["teacher"] for s in samples]),
            "views_truncated": sum(s["truncated"] for s in samples),
        }

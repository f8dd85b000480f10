"""Tagging examples (chunks of sentences) with word-aligned views, built when the batch is.

Parts: each part is a set of stored sentences (``tokens``, ``word_pieces``, flat ``tags``) with a
language and a role: ``rows`` (trained on as they are) or ``copies`` (stage 2's D_aug: the same sentences
re-augmented every epoch, labels kept, teacher on). Every such item is one chunk of one sentence
(``word_chunks.py``). Translate-train-all's stage 2 instead adds one copy per English sentence
(``TranslationPool``): every epoch one of that sentence's translations, drawn at random (the English
sentence itself, unlabelled, when it has none, as the reference does), unlabelled, teacher on; a
translation longer than the model keeps its first words that fit (the rest counted as cut).

A batch holds the rows first and, when a view augmenter is set, their views after them. Alongside the
tokens it carries ``word_index`` (batch x time): the word each token is pooled into, or the dump
column ``W`` (the batch's widest word count) for special tokens, padding and, with ``first`` pooling,
every piece after a word's first. Views have the same words as their rows, one to one, so word k of a
view is compared with word k of its row; a copy's view is drawn from the stored sentence, not from the
copy (as the reference draws it). Random draws are seeded by (seed, epoch, item, slot), with the
epoch shared with data-loader workers (see ``epoch_views.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from fairseq.data import data_utils

from ..augment.views import ROW_SLOT, VIEW_SLOT, view_rng
from .epoch_views import EpochViewsDataset
from .word_chunks import plan_chunks

SPECIAL_TOKENS = 2  # <s> words </s>
POOLING = ("first", "sum")


@dataclass
class TaggedPart:
    tokens: object  # fairseq dataset: pieces of each sentence
    word_pieces: object  # fairseq dataset: piece count of each word
    tags: np.ndarray  # flat, one per word of the part; -1 unlabelled
    language: int
    role: str = "rows"  # rows | copies | translations

    def __post_init__(self):
        counts = np.asarray(self.word_pieces.sizes, dtype=np.int64)
        self.tag_offsets = np.concatenate([[0], np.cumsum(counts)])
        if self.tag_offsets[-1] != len(self.tags):
            raise ValueError(f"{self.tag_offsets[-1]} words stored but {len(self.tags)} tags")


@dataclass
class TranslationPool:
    """Translations of the English training sentences: ``parts`` (one per language) and, per English
    sentence, its translations as (part, sentence) pairs."""

    parts: list[TaggedPart]
    options: list[list[tuple[int, int]]]

    @classmethod
    def from_sources(cls, parts: list[TaggedPart], sources: list[np.ndarray], canonical: np.ndarray):
        """``sources[p][i]``: the English sentence translation i of part p translates; ``canonical``: for
        every English sentence, the first one with the same words (whose translations it shares)."""
        by_canonical: dict[int, list] = {}
        for number, source in enumerate(sources):
            for i, english in enumerate(np.asarray(source).tolist()):
                by_canonical.setdefault(english, []).append((number, i))
        return cls(parts, [by_canonical.get(int(c), []) for c in canonical])

    @property
    def without_translation(self) -> int:
        return sum(1 for o in self.options if not o)


class TaggingDataset(EpochViewsDataset):
    def __init__(
        self,
        parts: list[TaggedPart],
        dictionary,
        max_positions: int,
        seed: int,
        pooling: str = "first",
        view_augmenter=None,
        copy_augmenter=None,
        translations: TranslationPool | None = None,
    ):
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"unknown pooling {pooling!r} (known: {', '.join(POOLING)})")
        self.parts, self.pooling, self.seed = parts, pooling, seed
        self.bos, self.eos, self.pad = dictionary.bos(), dictionary.eos(), dictionary.pad()
        self.budget = max_positions - SPECIAL_TOKENS
        self.view_augmenter, self.copy_augmenter = view_augmenter, copy_augmenter
        if any(p.role == "copies" for p in parts) and copy_augmenter is None:
            raise ValueError("a part of augmented copies needs a copy augmenter")
        plans, sizes, self.cut_words = [], [], 0
        for number, part in enumerate(parts):
            lengths = [part.word_pieces[i].numpy() for i in range(len(part.word_pieces))]
            chunks, cut = plan_chunks(lengths, self.budget)
            self.cut_words += cut
            plans.append(np.column_stack([np.full(len(chunks), number), chunks]))
            sizes += [min(int(lengths[s][first : first + count].sum()), self.budget) for s, first, count in chunks]
        self.translations = translations
        if translations is not None:  # one copy slot per English sentence: part -1
            if len(translations.options) != len(parts[0].word_pieces):
                raise ValueError(
                    f"{len(translations.options)} English sentences have translation options, "
                    f"but the training part holds {len(parts[0].word_pieces)}"
                )
            slots = np.arange(len(translations.options))
            plans.append(np.column_stack([np.full(len(slots), -1), slots, np.zeros_like(slots), np.zeros_like(slots)]))
            # Batched by the longest of its translations (the one drawn changes every epoch).
            pieces = lambda part, i: min(int(part.word_pieces[i].numpy().sum()), self.budget)  # noqa: E731
            sizes += [
                max([pieces(translations.parts[p], i) for p, i in options] or [pieces(parts[0], english)])
                for english, options in enumerate(translations.options)
            ]
        self.chunks = np.concatenate(plans)  # part, sentence, first word, word count (part -1: a translation slot)
        self._sizes = np.asarray(sizes, dtype=np.int64) + SPECIAL_TOKENS

    def ordered_indices(self):
        return np.argsort(self._sizes, kind="stable")  # shortest first: little padding

    # --- items ------------------------------------------------------------------------------
    def word_groups(self, index) -> list[np.ndarray]:
        part, sentence, first, count = self.chunks[index]
        stored = self.parts[part]
        pieces = stored.tokens[sentence].numpy()
        lengths = stored.word_pieces[sentence].numpy()
        ends = np.cumsum(lengths)
        groups = np.split(pieces, ends[:-1])[first : first + count]
        if count == 1 and len(groups[0]) > self.budget:
            groups = [groups[0][: self.budget]]  # a single word longer than the model (counted in cut_words)
        return groups

    def _encode(self, groups) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``<s> words </s>`` and the word of each token (-1: no word, filled in by the collater)."""
        tokens = np.concatenate([[self.bos], *groups, [self.eos]]).astype(np.int64)
        word_of = np.full(len(tokens), -1, dtype=np.int64)
        position = 1
        for k, group in enumerate(groups):
            if self.pooling == "sum":
                word_of[position : position + len(group)] = k
            else:
                word_of[position] = k
            position += len(group)
        return torch.from_numpy(tokens), torch.from_numpy(word_of)

    def _translated_copy(self, english: int, rng) -> tuple[list[list[int]], int, int]:
        """(word groups, language, words cut) of the translation drawn for English sentence ``english``."""
        options = self.translations.options[english]
        if options:
            number, sentence = options[int(rng.integers(len(options)))]
            part = self.translations.parts[number]
        else:
            part, sentence = self.parts[0], english
        groups = [
            g.tolist()
            for g in np.split(part.tokens[sentence].numpy(), np.cumsum(part.word_pieces[sentence].numpy())[:-1])
        ]
        kept, used = 0, 0
        while kept < len(groups) and used + len(groups[kept]) <= self.budget:
            used, kept = used + len(groups[kept]), kept + 1
        kept = max(kept, 1)
        if len(groups[0]) > self.budget:
            groups[0] = groups[0][: self.budget]
        return groups[:kept], part.language, len(groups) - kept

    def __getitem__(self, index):
        epoch = self.epoch
        part_number, sentence, first, count = (int(v) for v in self.chunks[index])
        if part_number < 0:
            groups, language, cut = self._translated_copy(sentence, view_rng(self.seed, epoch, index, ROW_SLOT))
            item = {
                "id": index,
                "sentence": sentence,
                "first_word": 0,
                "lang": language,
                "teacher": True,
                "target": torch.full((len(groups),), -1, dtype=torch.long),
            }
            return self._with_view(item, groups, groups, epoch, index, cut)
        part = self.parts[part_number]
        groups = stored = [g.tolist() for g in self.word_groups(index)]
        refused = 0
        if part.role == "copies":
            groups, refused = self.copy_augmenter.augment_groups(
                groups, view_rng(self.seed, epoch, index, ROW_SLOT), self.budget
            )
        start = part.tag_offsets[sentence] + first
        item = {
            "id": index,
            "sentence": sentence,
            "first_word": first,
            "lang": part.language,
            "teacher": part.role != "rows",
            "target": torch.from_numpy(part.tags[start : start + count].astype(np.int64)),
        }
        return self._with_view(item, groups, stored, epoch, index, refused)

    def _with_view(self, item, groups, stored, epoch, index, refused):
        item["tokens"], item["word_of"] = self._encode(groups)
        if self.view_augmenter is not None:
            # Drawn from the stored sentence, independently of its copy (the reference's choice); a translated
            # copy's view from the translation itself (not word-aligned with the English sentence).
            view, view_refused = self.view_augmenter.augment_groups(
                stored, view_rng(self.seed, epoch, index, VIEW_SLOT), self.budget
            )
            item["view"], item["view_word_of"] = self._encode(view)
            refused += view_refused
        item["refused"] = refused
        return item

    def collater(self, samples):
        if not samples:
            return {}
        views = [s["view"] for s in samples if "view" in s]
        tokens = data_utils.collate_tokens([s["tokens"] for s in samples] + views, self.pad, left_pad=False)
        width = max(len(s["target"]) for s in samples)  # W: the dump column of word_index
        word_of = [s["word_of"] for s in samples] + [s["view_word_of"] for s in samples if "view" in s]
        word_index = data_utils.collate_tokens(word_of, -1, left_pad=False)
        word_index[word_index < 0] = width
        target = data_utils.collate_tokens([s["target"] for s in samples], -1, left_pad=False)
        word_mask = data_utils.collate_tokens(
            [torch.ones(len(s["target"]), dtype=torch.bool) for s in samples], False, left_pad=False
        )
        return {
            "id": torch.tensor([s["id"] for s in samples]),
            "sentence": torch.tensor([s["sentence"] for s in samples]),
            "first_word": torch.tensor([s["first_word"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": int(tokens.ne(self.pad).sum()),
            "net_input": {"src_tokens": tokens},
            "head_input": {"word_index": word_index},
            "target": target,
            "word_mask": word_mask,
            "lang": torch.tensor([s["lang"] for s in samples]),
            "has_views": bool(views),
            "teacher_rows": torch.tensor([s["teacher"] for s in samples]),
            "views_truncated": sum(s["refused"] for s in samples),
        }

"""Extractive-QA examples: one item per window of a question's context, with word-aligned views.

Parts: each part is a set of stored questions (``question``/``context`` pieces and their word piece
counts, the context pieces' character spans, the answer's pieces) with a language and a role: ``rows``
(trained on as they are), ``copies`` (stage 2's D_aug: the same questions re-augmented every epoch,
labels kept, teacher on) or ``translations`` (translated questions with their own answers, teacher on).

A window reads ``<s> question </s> </s> context part </s>``. Its target is the answer's first and last
positions, or the null position 0 (``<s>``) when the answer is not inside the window or the question has
none. ``span_mask`` marks the positions a span may use: 0 and the context. A view re-augments the
question's and the window's words one to one, drawn from the stored window (a copy's view too), leaving
the answer's first and last words as they are; a copy augments the window's words only (its question is
kept), the answer's first and last words left alone (code-switched copies: the whole answer), as the
reference does; ``support`` lists the positions where row and view hold
the same thing (the null position and every context piece of a word left as it was in both), which is
where the span consistency compares the two distributions (the rest of the mass is folded into one
bucket, see ``criterions/span_terms.py``).

Evaluation batches keep all windows of a question together, and every row carries what decoding needs
(the window's characters and max-context positions, the question's context and gold answers), so a
validation step scores whole questions (EM/F1 summed over the subset, exact).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
from fairseq.data import data_utils

from ..augment.views import ROW_SLOT, VIEW_SLOT, view_rng
from ..binarize.xtreme_qa import NO_ANSWER
from ..qa_windows import QA_SPECIAL_TOKENS, context_budget, plan_windows
from ..span_decoding import max_context_mask
from .epoch_views import EpochViewsDataset


@dataclass
class QAPart:
    question: object  # fairseq datasets of pieces / piece counts per word
    question_words: object
    context: object
    context_words: object
    char_spans: np.ndarray  # (all context pieces of the part, 2)
    answers: np.ndarray  # (questions, 2): first, last context piece; NO_ANSWER / UNANSWERABLE
    language: int
    role: str = "rows"  # rows | copies | translations
    records: Optional[list] = None  # per question {"id", "context", "answers"}: needed to score
    span_offsets: np.ndarray = field(init=False)

    def __post_init__(self):
        self.span_offsets = np.concatenate([[0], np.cumsum(np.asarray(self.context.sizes, dtype=np.int64))])
        if self.span_offsets[-1] != len(self.char_spans):
            raise ValueError(f"{self.span_offsets[-1]} context pieces stored but {len(self.char_spans)} spans")


@dataclass
class WindowInfo:
    """What decoding needs of one row (picklable: it travels from data-loader workers)."""

    question: tuple  # (part, question index): the key of the question
    char_spans: np.ndarray  # (tokens, 2) context characters of each position, -1 elsewhere
    max_context: np.ndarray  # (tokens,) bool
    record: Optional[dict] = None


def _groups(pieces: np.ndarray, counts: np.ndarray) -> list[list[int]]:
    return [g.tolist() for g in np.split(pieces, np.cumsum(counts)[:-1])] if len(pieces) else []


@dataclass
class QATranslationPool:
    """Translate-train-all's stage-2 copies: the translated questions (``parts``, one per language) and, per
    English training question, the translated questions that carry its id (XTREME keeps SQuAD's ids).
    Every epoch each English question gets one copy: one of its translations drawn at random, or, when it
    has none, a translated question drawn at random from all of them (the reference's fallback)."""

    parts: list[QAPart]
    options: list[list[tuple[int, int]]]  # per English question: (part, question) of its translations
    everything: list[tuple[int, int]]  # every trainable translated question

    @classmethod
    def by_id(cls, parts: list[QAPart], part_ids: list[list[str]], english_ids: list[str]):
        """Translated questions paired with the English ones by id; those without a trainable answer (not
        found in the translated context) are left out, as training leaves them out."""
        by_id: dict[str, list] = {}
        everything = []
        for number, (part, ids) in enumerate(zip(parts, part_ids)):
            for q, qid in enumerate(ids):
                if part.answers[q, 0] != NO_ANSWER:
                    by_id.setdefault(qid, []).append((number, q))
                    everything.append((number, q))
        if not everything:
            raise ValueError("no translated question with an answer to train on")
        return cls(parts, [by_id.get(qid, []) for qid in english_ids], everything)

    @property
    def without_translation(self) -> int:
        return sum(1 for o in self.options if not o)

    def draw(self, english: int, rng: np.random.Generator) -> tuple[int, int]:
        options = self.options[english] or self.everything
        return options[int(rng.integers(len(options)))]


class QADataset(EpochViewsDataset):
    def __init__(
        self,
        parts: list[QAPart],
        dictionary,
        max_positions: int,
        stride: int,
        seed: int,
        training: bool,
        view_augmenter=None,
        copy_augmenter=None,
        keep_answer_boundaries: bool = True,
        augment_copy_question: bool = False,
        translations: Optional[QATranslationPool] = None,
    ):
        super().__init__()
        self.keep_answer_boundaries, self.augment_copy_question = keep_answer_boundaries, augment_copy_question
        self.parts, self.max_positions, self.seed, self.training = parts, max_positions, seed, training
        self.bos, self.eos, self.pad = dictionary.bos(), dictionary.eos(), dictionary.pad()
        self.view_augmenter, self.copy_augmenter = view_augmenter, copy_augmenter
        if any(p.role == "copies" for p in parts) and copy_augmenter is None:
            raise ValueError("a part of augmented copies needs a copy augmenter")
        self.stride, self.untrainable = stride, 0
        questions = []
        for number, part in enumerate(parts):
            for q in range(len(part.question.sizes)):
                if training and part.answers[q, 0] == NO_ANSWER:
                    self.untrainable += 1  # unlabelled or answer not found: nothing to learn from
                else:
                    questions.append((number, q))
        self._fixed = self._plan(questions)  # part, question, start, length, size
        self.translations, self._planned_epoch = translations, None
        if translations is not None:
            self._first_translation_part = len(self.parts)
            self.parts = self.parts + translations.parts
        self._set_windows(self._fixed)
        self._plan_epoch(self.epoch)

    def _plan(self, questions) -> np.ndarray:
        """The windows of the given (part, question) pairs, in order."""
        rows = []
        for number, q in questions:
            part = self.parts[number]
            q_size, c_size = int(part.question.sizes[q]), int(part.context.sizes[q])
            for start, length in plan_windows(c_size, context_budget(self.max_positions, q_size), self.stride):
                rows.append((number, q, start, length, q_size + length + QA_SPECIAL_TOKENS))
        return np.asarray(rows, dtype=np.int64).reshape(-1, 5)

    def _set_windows(self, windows: np.ndarray):
        self.windows = windows
        self._sizes = self.windows[:, 4].copy()
        self._question_keys = (self.windows[:, 0] << 32) | self.windows[:, 1]  # ascending: windows come in order

    def _plan_epoch(self, epoch: int):
        """Translate-train-all: this epoch's copies, one translated question per English question, and their
        windows (so the number of training windows changes from epoch to epoch)."""
        if self.translations is None or self._planned_epoch == epoch:
            return
        chosen = []  # per English question: (part, question) of its copy this epoch
        for english in range(len(self.translations.options)):
            number, q = self.translations.draw(english, view_rng(self.seed, epoch, english, ROW_SLOT))
            chosen.append((self._first_translation_part + number, q))
        self.copies_of_epoch = chosen
        self._set_windows(np.concatenate([self._fixed, self._plan(sorted(chosen))]))
        self._planned_epoch = epoch

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        self._plan_epoch(epoch)

    @property
    def can_reuse_epoch_itr_across_epochs(self):
        return self.translations is None  # drawn copies change the windows, so the batches, every epoch

    def ordered_indices(self):
        if self.training:
            if self.translations is not None:  # by length, ties in a random order of this epoch
                ties = np.random.default_rng([self.seed, self.epoch]).permutation(len(self))
                return np.lexsort((ties, self._sizes))
            return np.argsort(self._sizes, kind="stable")
        return np.arange(len(self))  # question by question: a batch holds whole questions

    def batch_by_size(self, indices, max_tokens=None, max_sentences=None, required_batch_size_multiple=1):
        if self.training:
            return super().batch_by_size(indices, max_tokens, max_sentences, required_batch_size_multiple)
        return self._whole_question_batches(indices, max_tokens, max_sentences)

    def _whole_question_batches(self, indices, max_tokens, max_sentences):
        """Consecutive windows of a question stay in one batch (a question with more windows than a batch
        holds gets a batch of its own)."""
        batches, current, widest = [], [], 0
        keys = self._question_keys[indices]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        for begin, end in zip(starts, np.r_[starts[1:], len(indices)]):
            group = indices[begin:end]
            group_wide = int(self._sizes[group].max())
            wide, n = max(widest, group_wide), len(current) + len(group)
            if current and ((max_sentences and n > max_sentences) or (max_tokens and n * wide > max_tokens)):
                batches.append(np.asarray(current, dtype=np.int64))
                current, wide = [], group_wide
            current.extend(group.tolist())
            widest = wide
        if current:
            batches.append(np.asarray(current, dtype=np.int64))
        return batches

    # --- items ------------------------------------------------------------------------------
    def _stored_groups(self, part: QAPart, q: int, start: int, length: int):
        question = _groups(part.question[q].numpy(), part.question_words[q].numpy())
        pieces, counts = part.context[q].numpy(), part.context_words[q].numpy()
        ends = np.cumsum(counts)
        groups = []  # the window's words, cut at its edges
        for k in range(int(np.searchsorted(ends, start, side="right")), len(counts)):
            begin = ends[k] - counts[k]
            if begin >= start + length:
                break
            groups.append(pieces[max(begin, start) : min(ends[k], start + length)].tolist())
        return question, groups

    def _encode(self, question, context):
        tokens = [self.bos, *(i for g in question for i in g), self.eos, self.eos]
        offset = len(tokens)
        tokens += [i for g in context for i in g] + [self.eos]
        mask = np.zeros(len(tokens), dtype=bool)
        mask[0] = True
        mask[offset : len(tokens) - 1] = True
        return torch.tensor(tokens, dtype=torch.long), torch.from_numpy(mask), offset

    def _target(self, part, q, start, length, offset, before, after) -> torch.Tensor:
        """Answer positions in a window whose context words went from ``before`` to ``after``."""
        first, last = (int(v) for v in part.answers[q])
        if first < 0 or first < start or last >= start + length:
            return torch.zeros(2, dtype=torch.long)  # the null position
        positions, old, new = [], 0, 0
        for target, at_end in ((first - start, False), (last - start, True)):
            old = new = 0
            for b, a in zip(before, after):
                if target < old + len(b):
                    inside = target - old
                    moved = inside if a == b else (len(a) - 1 if at_end else 0)
                    positions.append(offset + new + moved)
                    break
                old, new = old + len(b), new + len(a)
        return torch.tensor(positions, dtype=torch.long)

    def __getitem__(self, index):
        number, q, start, length, _ = (int(v) for v in self.windows[index])
        part = self.parts[number]
        question, context = self._stored_groups(part, q, start, length)
        stored_question, stored_context, refused = question, context, 0
        budget = self.max_positions - QA_SPECIAL_TOKENS
        if part.role == "copies":
            rng = view_rng(self.seed, self.epoch, index, ROW_SLOT)
            whole = getattr(getattr(self.copy_augmenter, "settings", None), "kind", None) == "code_switch"
            keep = self._kept_words(part, q, start, length, 0, whole_answer=whole)
            if self.augment_copy_question:
                both, refused = self.copy_augmenter.augment_groups(
                    question + context, rng, budget, frozenset(len(question) + k for k in keep)
                )
                question, context = both[: len(question)], both[len(question) :]
            else:  # the reference trains on copies whose question is as it is
                context, refused = self.copy_augmenter.augment_groups(
                    context, rng, budget - sum(len(g) for g in question), keep
                )
        tokens, mask, offset = self._encode(question, context)
        item = {
            "id": index,
            "lang": part.language,
            "teacher": part.role != "rows",
            "tokens": tokens,
            "span_mask": mask,
            "target": self._target(part, q, start, length, offset, stored_context, context),
        }
        if self.view_augmenter is not None:
            # Drawn from the stored window, independently of its copy (the reference's choice).
            both, view_refused = self.view_augmenter.augment_groups(
                stored_question + stored_context,
                view_rng(self.seed, self.epoch, index, VIEW_SLOT),
                budget,
                self._kept_words(part, q, start, length, len(stored_question)),
            )
            view_question, view_context = both[: len(question)], both[len(question) :]
            item["view"], item["view_span_mask"], view_offset = self._encode(view_question, view_context)
            item["support"] = self._support(context, view_context, offset, view_offset)
            refused += view_refused
        if not self.training:
            item["info"] = self._window_info(part, number, q, start, length, offset, len(tokens))
        item["refused"] = refused
        return item

    def _kept_words(self, part, q: int, start: int, length: int, shift: int, whole_answer: bool = False) -> frozenset:
        """Numbers (plus ``shift``) of the window's words that augmentation must leave alone: the answer's
        first and last words (``keep_answer_boundaries``, the reference's ``--keep_boundary_unchanged``),
        or every word of the answer (``whole_answer``: the reference's code-switched copies)."""
        first, last = (int(v) for v in part.answers[q])
        if not self.keep_answer_boundaries or first < 0 or first < start or last >= start + length:
            return frozenset()
        ends = np.cumsum(part.context_words[q].numpy())
        window_first = int(np.searchsorted(ends, start, side="right"))
        words = [int(np.searchsorted(ends, first, side="right")), int(np.searchsorted(ends, last, side="right"))]
        if whole_answer:
            words = list(range(words[0], words[1] + 1))
        return frozenset(shift + w - window_first for w in words)

    @staticmethod
    def _support(context, view_context, offset: int, view_offset: int) -> torch.Tensor:
        """(2, K): positions in the row and in the view of the null token and of every piece of the context
        words that are the same in both."""
        rows, views = [0], [0]
        at, view_at = offset, view_offset
        for a, b in zip(context, view_context):
            if a == b:
                rows.extend(range(at, at + len(a)))
                views.extend(range(view_at, view_at + len(b)))
            at, view_at = at + len(a), view_at + len(b)
        return torch.tensor([rows, views], dtype=torch.long)

    def _window_info(self, part, number, q, start, length, offset, n_tokens) -> WindowInfo:
        spans = np.full((n_tokens, 2), -1, dtype=np.int64)
        first = part.span_offsets[q] + start
        spans[offset : offset + length] = part.char_spans[first : first + length]
        key = (number << 32) | q
        first, last = np.searchsorted(self._question_keys, [key, key + 1])
        starts, lengths = self.windows[first:last, 2].tolist(), self.windows[first:last, 3].tolist()
        masks = max_context_mask(starts, lengths, int(part.context.sizes[q]))
        max_context = np.zeros(n_tokens, dtype=bool)
        max_context[offset : offset + length] = masks[starts.index(start)]
        return WindowInfo((number, q), spans, max_context, part.records[q] if part.records is not None else None)

    def collater(self, samples):
        if not samples:
            return {}
        views = [s["view"] for s in samples if "view" in s]
        tokens = data_utils.collate_tokens([s["tokens"] for s in samples] + views, self.pad, left_pad=False)
        masks = [s["span_mask"] for s in samples] + [s["view_span_mask"] for s in samples if "view" in s]
        batch = {
            "id": torch.tensor([s["id"] for s in samples]),
            "nsentences": len(samples),
            "ntokens": int(tokens.ne(self.pad).sum()),
            "net_input": {"src_tokens": tokens},
            "head_input": {"span_mask": data_utils.collate_tokens(masks, False, left_pad=False)},
            "target": torch.stack([s["target"] for s in samples]),
            "lang": torch.tensor([s["lang"] for s in samples]),
            "has_views": bool(views),
            "teacher_rows": torch.tensor([s["teacher"] for s in samples]),
            "views_truncated": sum(s["refused"] for s in samples),
        }
        if views:
            width = max(s["support"].size(1) for s in samples)
            batch["support"] = torch.stack(
                [torch.nn.functional.pad(s["support"], (0, width - s["support"].size(1)), value=-1) for s in samples]
            )
        if "info" in samples[0]:
            batch["windows"] = [s["info"] for s in samples]
        return batch

"""Build an augmented view of one encoded text, reproducibly.

Each word is augmented independently with probability ``prob`` and the random draws come from a
generator seeded by (seed, epoch, example index, text slot), so a resumed or multi-process run draws
exactly the same views. The result keeps one word group per original word (word alignment for tagging).
"""

from __future__ import annotations

import numpy as np

from ..words import WORD_START, word_groups, word_text

ROW_SLOT, VIEW_SLOT = 0, 1  # the random streams of an item: its (stage-2 copy) row, and its view


def view_rng(seed: int, epoch: int, index: int, slot: int = 0) -> np.random.Generator:
    """The generator of one item's augmentation in one epoch: the same in every process and every run."""
    return np.random.default_rng([seed, epoch, index, slot])


def augment_words(ids, dictionary, prob: float, rng: np.random.Generator, replace_word) -> list[list[int]]:
    """Word groups of ``ids``; each word starting with ``▁`` is passed with probability ``prob`` to
    ``replace_word(word_text, rng) -> list[int] | None`` (None keeps the word as it was)."""
    return augment_word_groups(word_groups(ids, dictionary), dictionary, prob, rng, replace_word)[0]


def augment_word_groups(
    groups: list[list[int]],
    dictionary,
    prob: float,
    rng: np.random.Generator,
    replace_word,
    budget: int | None = None,
    keep=frozenset(),
) -> tuple[list[list[int]], int]:
    """Augment given word groups one to one (word k of the result is word k of the input).

    With a ``budget`` (pieces), a replacement is refused when it would leave too little room for the
    remaining words as they are, so the result always fits and no word is lost; returns the groups and
    the number of refused replacements. Words whose index is in ``keep`` stay as they are (QA: the
    answer's first and last words).
    """
    remaining = sum(len(g) for g in groups)  # pieces of the words not yet decided, as they are
    used, refused, out = 0, 0, []
    for k, group in enumerate(groups):
        remaining -= len(group)
        new = None
        if rng.random() < prob and k not in keep and dictionary[group[0]].startswith(WORD_START):
            new = replace_word(word_text(group, dictionary), rng)
        if new and budget is not None and used + len(new) + remaining > budget:
            new, refused = None, refused + 1
        chosen = list(new) if new else group
        used += len(chosen)
        out.append(chosen)
    return out, refused

"""Build an augmented view of one encoded text, reproducibly.

Each word is augmented independently with probability ``prob`` and the random draws come from a
generator seeded by (seed, epoch, example index, text slot), so a resumed or multi-process run draws
exactly the same views. The result keeps one word group per original word (word alignment for tagging).
"""
from __future__ import annotations

import numpy as np

from .words import WORD_START, word_groups, word_text


def view_rng(seed: int, epoch: int, index: int, slot: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index, slot])


def augment_words(ids, dictionary, prob: float, rng: np.random.Generator, replace_word) -> list[list[int]]:
    """Word groups of ``ids``; each word starting with ``▁`` is passed with probability ``prob`` to
    ``replace_word(word_text, rng) -> list[int] | None`` (None keeps the word as it was)."""
    groups = word_groups(ids, dictionary)
    out = []
    for group in groups:
        if rng.random() < prob and dictionary[group[0]].startswith(WORD_START):
            new = replace_word(word_text(group, dictionary), rng)
            out.append(list(new) if new else group)
        else:
            out.append(group)
    return out

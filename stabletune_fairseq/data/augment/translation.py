"""Machine-translation views (translate-train-all): an English row paired with one of its translations, and a
translated copy (stage 2) with another translation of the same example or its English original."""

from __future__ import annotations

import numpy as np


class TranslationViews:
    """For each English training row, the translated pairs that belong to it (any language)."""

    by_example = True  # the view comes from the example's index, not from its words

    def __init__(self, languages: list[tuple[str, object, object, np.ndarray]], n_english: int):
        """``languages``: (language, first texts, second texts, English row of each translation)."""
        self.parts = [(first, second) for _, first, second, _ in languages]
        self.options: list[list[tuple[int, int]]] = [[] for _ in range(n_english)]
        for part, (_, _, _, sources) in enumerate(languages):
            for row, english in enumerate(sources):
                self.options[int(english)].append((part, row))
        self.without_translation = sum(1 for o in self.options if not o)

    def choose(self, english_row: int, rng: np.random.Generator):
        """The index of a random translation of ``english_row`` among its own, or None when it has none."""
        options = self.options[english_row]
        return int(rng.integers(len(options))) if options else None

    def texts(self, english_row: int, choice: int):
        part, row = self.options[english_row][choice]
        first, second = self.parts[part]
        return first[row].numpy(), second[row].numpy()

    def pair(self, english_row: int, rng: np.random.Generator):
        """A random translation (first, second) of ``english_row``, or None when it has none."""
        choice = self.choose(english_row, rng)
        return None if choice is None else self.texts(english_row, choice)

    def other_than(self, english_row: int, choice: int, rng: np.random.Generator):
        """The view of translation ``choice``, as the reference draws it: a language drawn at random among
        the example's translations; the same one as ``choice`` means English (None), so English comes with
        probability 1/L and each other translation with 1/L."""
        drawn = self.choose(english_row, rng)
        return None if drawn == choice else self.texts(english_row, drawn)

"""Machine-translation views (translate-train-all): an English row paired with one of its translations."""
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

    def pair(self, english_row: int, rng: np.random.Generator):
        """A random translation (first, second) of ``english_row``, or None when it has none."""
        options = self.options[english_row]
        if not options:
            return None
        part, row = options[rng.integers(len(options))]
        first, second = self.parts[part]
        return first[row].numpy(), second[row].numpy()

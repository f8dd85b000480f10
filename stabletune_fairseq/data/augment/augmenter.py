"""One configured augmentation applied to an encoded text: the single entry point tasks use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .code_switch import CodeSwitcher
from .subword_sampling import UnigramWordSampler
from .views import augment_word_groups, augment_words

TEXT_KINDS = ("none", "subword_sampling", "code_switch", "noise", "dropout")
KINDS = TEXT_KINDS + ("translation",)  # translation views come from augment/translation.py
# Views whose text is the row's own: they differ from it only inside the model (noise on the embeddings, or
# independent dropout: R-Drop), so they are no augmentation of the data (no stage-2 copies of these kinds).
SAME_TEXT_KINDS = ("noise", "dropout")


@dataclass
class AugmentationSettings:
    kind: str = "none"
    prob: float = 0.0
    alpha: float = 0.3
    nbest: int = -1
    dict_dir: Optional[str] = None
    dict_langs: tuple = ()


class TextAugmenter:
    """``augmenter(ids, rng) -> ids``. ``noise`` and ``dropout`` leave the text as it is: the model adds noise to
    the view's embeddings, or the view differs from its row only by the dropout of its own forward pass."""

    def __init__(self, settings: AugmentationSettings, encoder):
        if settings.kind not in TEXT_KINDS:
            raise ValueError(f"unknown text augmentation {settings.kind!r} (known: {', '.join(TEXT_KINDS)})")
        self.settings, self.encoder, self.dictionary = settings, encoder, encoder.dictionary
        self.sampler = self.switcher = None
        if settings.kind == "subword_sampling":
            if settings.nbest == 0 or settings.nbest < -1:
                raise ValueError("--subword-sampling-nbest must be -1 (every segmentation) or a positive n")
            self.sampler = UnigramWordSampler(encoder.sentencepiece_model, self.dictionary)
        elif settings.kind == "code_switch":
            if not settings.dict_dir:
                raise ValueError("code-switching needs --dict-dir (the folder of MUSE en-<lang>.txt files)")
            self.switcher = CodeSwitcher(settings.dict_dir, list(settings.dict_langs))

    def replace_word(self, word: str, rng: np.random.Generator) -> Optional[list]:
        """New dictionary ids for ``word``, or None to keep it."""
        if self.sampler is not None:
            return self.sampler.sample(word, self.settings.alpha, rng, self.settings.nbest)
        translated = self.switcher.translate(word, rng)
        return None if translated is None else self.encoder.encode([translated])[0].tolist()

    @property
    def changes_text(self) -> bool:
        return self.sampler is not None or self.switcher is not None

    def __call__(self, ids, rng: np.random.Generator) -> np.ndarray:
        if not self.changes_text:
            return np.asarray(ids, dtype=np.int64)
        groups = augment_words(ids, self.dictionary, self.settings.prob, rng, self.replace_word)
        return np.fromiter((i for g in groups for i in g), dtype=np.int64)

    def augment_groups(
        self, groups: list[list[int]], rng: np.random.Generator, budget: Optional[int] = None, keep=frozenset()
    ) -> tuple[list[list[int]], int]:
        """Word-aligned augmentation of given word groups (tagging, QA), within ``budget`` pieces, the words
        numbered in ``keep`` left as they are; returns the new groups and how many replacements the budget
        refused."""
        if not self.changes_text:
            return groups, 0
        return augment_word_groups(groups, self.dictionary, self.settings.prob, rng, self.replace_word, budget, keep)

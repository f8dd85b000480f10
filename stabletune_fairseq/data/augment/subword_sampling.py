"""Subword sampling (Kudo 2018) of single words, with our own seeded sampler.

sentencepiece's sampling draws from one generator per thread that is seeded once, so a view could not
be re-drawn for a given (seed, epoch, example). We sample the same distribution ourselves from the
unigram model's pieces and scores: over all segmentations of ``▁word`` into vocabulary pieces,
P(segmentation) ∝ exp(alpha · Σ score), by forward filtering and backward sampling on the lattice
(sentencepiece's ``nbest_size=-1``), or, with ``nbest`` > 0, among the n best segmentations with
the same weights. The sampled pieces always spell the same word.
"""

from __future__ import annotations

import math

import numpy as np
import sentencepiece as spm

from ..words import WORD_START


class UnigramWordSampler:
    def __init__(self, sentencepiece_model: str, dictionary):
        self.sp = sp = spm.SentencePieceProcessor(model_file=sentencepiece_model)
        self.pieces: dict[str, tuple[int, float]] = {}
        for i in range(sp.get_piece_size()):
            if sp.is_unknown(i) or sp.is_control(i):
                continue
            piece = sp.id_to_piece(i)
            index = dictionary.index(piece)
            if index != dictionary.unk():
                self.pieces[piece] = (index, sp.get_score(i))
        self.max_piece_chars = max(len(p) for p in self.pieces)

    def sample(self, word: str, alpha: float, rng: np.random.Generator, nbest: int = -1) -> list[int] | None:
        """Dictionary ids of a sampled segmentation of ``word``, or None if no segmentation exists."""
        if nbest > 0:
            return self._sample_nbest(word, alpha, rng, nbest)
        text = WORD_START + word
        n = len(text)
        incoming: list[list[tuple[int, int, float]]] = [[] for _ in range(n + 1)]  # end -> (start, id, score)
        forward = [-math.inf] * (n + 1)
        forward[0] = 0.0
        for end in range(1, n + 1):
            for start in range(max(0, end - self.max_piece_chars), end):
                if forward[start] == -math.inf:
                    continue
                hit = self.pieces.get(text[start:end])
                if hit is not None:
                    incoming[end].append((start, hit[0], alpha * hit[1]))
            if incoming[end]:
                forward[end] = _logsumexp([forward[s] + w for s, _, w in incoming[end]])
        if forward[n] == -math.inf:
            return None
        ids, end = [], n
        while end > 0:
            weights = np.array([forward[s] + w for s, _, w in incoming[end]])
            probs = np.exp(weights - weights.max())
            choice = rng.choice(len(probs), p=probs / probs.sum())
            start, index, _ = incoming[end][choice]
            ids.append(index)
            end = start
        return ids[::-1]

    def _sample_nbest(self, word: str, alpha: float, rng: np.random.Generator, nbest: int) -> list[int] | None:
        candidates = [
            c for c in self.sp.nbest_encode(word, out_type=str, nbest_size=nbest) if all(p in self.pieces for p in c)
        ]
        if not candidates:
            return None
        weights = np.array([alpha * sum(self.pieces[p][1] for p in c) for c in candidates])
        probs = np.exp(weights - weights.max())
        chosen = candidates[rng.choice(len(candidates), p=probs / probs.sum())]
        return [self.pieces[p][0] for p in chosen]


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))

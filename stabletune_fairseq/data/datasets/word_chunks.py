"""Split sentences longer than the model into chunks of whole words, and put predictions back.

A chunk is (sentence, first word, number of words); chunks of a sentence are consecutive and cover
every word exactly once, so merging chunk predictions by (sentence, first word) gives one prediction
per word read. A single word longer than the budget becomes a chunk of its own whose pieces are cut
(its prediction still comes from its first piece); such words are counted.
"""

from __future__ import annotations

import numpy as np


def plan_chunks(word_lengths: list, budget: int) -> tuple[np.ndarray, int]:
    """Chunks (n x 3 int array: sentence, first word, word count) and the number of cut words."""
    chunks, cut_words = [], 0
    for sentence, lengths in enumerate(word_lengths):
        lengths = np.asarray(lengths)
        if lengths.sum() <= budget:
            chunks.append((sentence, 0, len(lengths)))
            continue
        first, used = 0, 0
        for k, length in enumerate(lengths.tolist()):
            if used + length > budget and k > first:
                chunks.append((sentence, first, k - first))
                first, used = k, 0
            used += length
            cut_words += int(length > budget)
        chunks.append((sentence, first, len(lengths) - first))
    return np.asarray(chunks, dtype=np.int64).reshape(-1, 3), cut_words


def merge_chunk_predictions(word_counts: list[int], chunk_predictions: dict[tuple[int, int], list]) -> list[list]:
    """Per sentence, the predictions of its words from ``{(sentence, first word): predictions}``;
    an error if any word is missing or predicted twice."""
    merged = [[None] * n for n in word_counts]
    for (sentence, first), predictions in chunk_predictions.items():
        row = merged[sentence]
        if any(p is not None for p in row[first : first + len(predictions)]) or first + len(predictions) > len(row):
            raise ValueError(f"sentence {sentence}: chunk at word {first} overlaps another or runs past the end")
        row[first : first + len(predictions)] = predictions
    missing = [(s, k) for s, row in enumerate(merged) for k, p in enumerate(row) if p is None]
    if missing:
        raise ValueError(
            f"{len(missing)} words got no prediction, first: sentence {missing[0][0]}, word {missing[0][1]}"
        )
    return merged

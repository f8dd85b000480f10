"""Long sentences are split into chunks of whole words and their predictions merged back."""

import numpy as np
import pytest

from stabletune_fairseq.data.datasets.word_chunks import merge_chunk_predictions, plan_chunks


def test_chunks_cover_every_word_once_within_the_budget():
    rng = np.random.default_rng(0)
    sentences = [rng.integers(1, 6, size=rng.integers(1, 40)) for _ in range(300)]
    chunks, cut = plan_chunks(sentences, budget=16)
    assert cut == 0
    seen = [np.zeros(len(s), dtype=int) for s in sentences]
    for sentence, first, count in chunks:
        assert count >= 1 and sentences[sentence][first : first + count].sum() <= 16
        seen[sentence][first : first + count] += 1
    assert all((s == 1).all() for s in seen)
    assert len(chunks) > len(sentences)  # some sentences did need several chunks


def test_a_word_longer_than_the_budget_is_a_chunk_of_its_own_and_counted():
    chunks, cut = plan_chunks([np.array([2, 30, 3, 3])], budget=8)
    assert chunks.tolist() == [[0, 0, 1], [0, 1, 1], [0, 2, 2]] and cut == 1


def test_merge_puts_chunks_back_in_order():
    merged = merge_chunk_predictions([3, 2], {(0, 2): ["c"], (0, 0): ["a", "b"], (1, 0): ["d", "e"]})
    assert merged == [["a", "b", "c"], ["d", "e"]]


def test_merge_refuses_missing_or_overlapping_words():
    with pytest.raises(ValueError, match="1 words got no prediction"):
        merge_chunk_predictions([3], {(0, 0): ["a", "b"]})
    with pytest.raises(ValueError, match="overlaps"):
        merge_chunk_predictions([3], {(0, 0): ["a", "b"], (0, 1): ["x", "c"]})

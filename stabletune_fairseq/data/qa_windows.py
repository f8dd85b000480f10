"""Overlapping windows over a long context (BERT's doc-stride scheme).

A window holds ``<s> question </s> </s> context part </s>``: with a question of q pieces, up to
``max_positions - q - 4`` context pieces. Windows start every ``stride`` pieces until one reaches the
end, so every context piece is in at least one window; the decoder picks an answer's start only in
the window where that piece has the most context on both sides.
"""

from __future__ import annotations

QA_SPECIAL_TOKENS = 4  # <s> question </s> </s> context </s>


def context_budget(max_positions: int, question_pieces: int) -> int:
    budget = max_positions - question_pieces - QA_SPECIAL_TOKENS
    if budget < 1:
        raise ValueError(f"a question of {question_pieces} pieces leaves no room for context in {max_positions} tokens")
    return budget


def plan_windows(context_pieces: int, budget: int, stride: int) -> list[tuple[int, int]]:
    """``(first piece, piece count)`` of every window; one (empty) window for an empty context."""
    if stride < 1:
        raise ValueError("the doc stride must be at least one piece")
    windows, start = [], 0
    while True:
        length = min(context_pieces - start, budget)
        windows.append((start, length))
        if start + length >= context_pieces:
            return windows
        start += min(length, stride)

"""Decode the answer span of an extractive QA question from per-window start/end logits.

A long context is read in overlapping windows. In each window we take the ``n_best`` highest start and
end positions, pair them, and keep the pairs that lie inside the context, run forwards, are at most
``max_answer_tokens`` long and start where the window has the start token's maximum context (BERT's rule,
so that a token seen near a window edge is judged by the window that sees most around it). The best pair
over all windows (score = start logit + end logit) gives the answer, cut from the original context by the
tokens' character offsets. Position 0 of every window is ``<s>``, the null (no answer) position; the null
score is the smallest ``<s>`` score over the windows. SQuAD 2.0 (``allow_null``) answers "" when the null
score beats the best span by more than ``null_margin`` (``null_odds > null_margin``); the other tasks always have
an answer (when no n-best pair is valid, every pair is searched). A span made only of empty pieces (a lone ``▁``)
is no answer. Every answer carries BERT's null odds, null score - best span score (the span of that every-pair
search when the n-best has none; +inf when the context has no span at all): SQuAD 2.0's ``na_prob``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

NULL_POSITION = 0


@dataclass
class WindowScores:
    """The model's scores over one window's T token positions and where those tokens are in the context."""

    start_logits: np.ndarray  # (T,) float
    end_logits: np.ndarray  # (T,) float
    char_spans: np.ndarray  # (T, 2) int: [begin, end) in the context; -1, -1 outside it (question, specials, padding)
    max_context: np.ndarray  # (T,) bool: this window is the token's window with the most context around it

    def __post_init__(self) -> None:
        # float64: half-precision logits would round the sums that rank the candidates
        self.start_logits = np.asarray(self.start_logits, dtype=np.float64)
        self.end_logits = np.asarray(self.end_logits, dtype=np.float64)
        self.char_spans = np.asarray(self.char_spans, dtype=np.int64).reshape(-1, 2)
        self.max_context = np.asarray(self.max_context, dtype=bool)
        length = len(self.start_logits)
        shapes = (self.start_logits.shape, self.end_logits.shape, self.char_spans.shape, self.max_context.shape)
        if shapes != ((length,), (length,), (length, 2), (length,)):
            raise ValueError(f"inconsistent window shapes (start, end, char_spans, max_context): {shapes}")


@dataclass
class Answer:
    """The decoded answer; the null answer has text "", window/start/end/char_begin/char_end -1."""

    text: str
    score: float  # start_logit + end_logit of the span; for the null answer the null score
    window: int
    start: int  # inclusive token positions in the window
    end: int
    char_begin: int  # [begin, end) in the context
    char_end: int
    # null score - best span score (BERT's null odds; SQuAD 2.0's na_prob); not part of the answer's identity
    null_odds: float = field(default=math.nan, compare=False)


def best_answer(
    windows: list[WindowScores],
    context: str,
    n_best: int = 20,
    max_answer_tokens: int = 30,
    allow_null: bool = False,
    null_margin: float = 0.0,
) -> Answer:
    """The best answer span of one question over its windows (see the module docstring for the rules)."""
    if not windows:
        raise ValueError("a question needs at least one window")
    null = null_answer(min(_null_score(window) for window in windows))
    best = searched = _best_over_windows(windows, context, n_best, max_answer_tokens)
    if best is None:
        # SQuAD v1.1-style data always has an answer: when no n-best pair is valid (e.g. every top end lies
        # before every top start, as with an untrained model), every pair is considered before giving up.
        # SQuAD 2.0 answers "" then, and the span found only sets the null odds.
        searched = _best_over_windows(windows, context, max(len(w.start_logits) for w in windows), max_answer_tokens)
        best = None if allow_null else searched
    null.null_odds = null.score - searched.score if searched is not None else math.inf
    if best is None or (allow_null and null.null_odds > null_margin):
        return null
    best.null_odds = null.null_odds
    return best


def _best_over_windows(windows, context: str, n_best: int, max_answer_tokens: int) -> Answer | None:
    best: Answer | None = None
    for index, window in enumerate(windows):
        candidate = _best_in_window(window, index, context, n_best, max_answer_tokens)
        # strict: on equal scores the earlier window wins
        if candidate is not None and (best is None or candidate.score > best.score):
            best = candidate
    return best


def null_answer(score: float) -> Answer:
    """The empty answer with the given null score."""
    return Answer(text="", score=score, window=-1, start=-1, end=-1, char_begin=-1, char_end=-1)


def _null_score(window: WindowScores) -> float:
    return float(window.start_logits[NULL_POSITION] + window.end_logits[NULL_POSITION])


def _top_positions(logits: np.ndarray, n_best: int) -> np.ndarray:
    # a stable sort of the negated logits keeps equal logits in position order: ties go to the lower position
    return np.argsort(-logits, kind="stable")[:n_best]


def _best_in_window(
    window: WindowScores, index: int, context: str, n_best: int, max_answer_tokens: int
) -> Answer | None:
    """The best valid (start, end) pair among the window's top starts and ends, or None."""
    starts = _top_positions(window.start_logits, n_best)[:, None]
    ends = _top_positions(window.end_logits, n_best)[None, :]
    in_context = (window.char_spans >= 0).all(axis=1)
    valid = (
        in_context[starts]
        & in_context[ends]
        & window.max_context[starts]
        & (ends >= starts)
        & (ends - starts + 1 <= max_answer_tokens)
        # a span of empty pieces only (a lone "▁" before a word) would answer with no text at all
        & (window.char_spans[ends, 1] > window.char_spans[starts, 0])
    )
    if not valid.any():
        return None
    starts, ends = np.broadcast_arrays(starts, ends)
    starts, ends = starts[valid], ends[valid]
    scores = window.start_logits[starts] + window.end_logits[ends]
    # lexsort sorts by its last key first: highest score, then earliest start, then earliest end
    first = np.lexsort((ends, starts, -scores))[0]
    start, end = int(starts[first]), int(ends[first])
    char_begin, char_end = int(window.char_spans[start, 0]), int(window.char_spans[end, 1])
    return Answer(
        text=context[char_begin:char_end],
        score=float(scores[first]),
        window=index,
        start=start,
        end=end,
        char_begin=char_begin,
        char_end=char_end,
    )


def max_context_mask(window_starts: list[int], window_lengths: list[int], n_context_tokens: int) -> list[np.ndarray]:
    """For each window, which of its context tokens (indexed within the window) have their max context there.

    A token at context index i of a window covering [s, s + L) scores min(i - s, s + L - 1 - i) + 0.01 * L;
    its max-context window is the one with the highest score, the first on ties.
    """
    starts = np.asarray(window_starts, dtype=np.int64)
    lengths = np.asarray(window_lengths, dtype=np.int64)
    if starts.shape != lengths.shape or starts.ndim != 1:
        raise ValueError("window_starts and window_lengths must be two lists of the same length")
    if (starts < 0).any() or (lengths < 0).any() or (starts + lengths > n_context_tokens).any():
        raise ValueError(f"windows must lie within the {n_context_tokens} context tokens")
    tokens = np.arange(n_context_tokens)[None, :]
    ends = (starts + lengths)[:, None]
    covered = (tokens >= starts[:, None]) & (tokens < ends)
    # 100 * score in integers: exact, so equal scores really tie and the first window wins
    scores = 100 * np.minimum(tokens - starts[:, None], ends - 1 - tokens) + lengths[:, None]
    scores = np.where(covered, scores, -1)  # any covered score is >= 0
    owner = scores.argmax(axis=0) if len(starts) else np.zeros(n_context_tokens, dtype=np.int64)
    return [owner[s : s + length] == w for w, (s, length) in enumerate(zip(starts.tolist(), lengths.tolist()))]

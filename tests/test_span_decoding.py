"""Span decoding over windows with hand-built logits: validity rules, max context, n-best, null, text mapping."""

from __future__ import annotations

import numpy as np
import pytest

from stabletune_fairseq.data.span_decoding import Answer, WindowScores, best_answer, max_context_mask

QUESTION_TOKENS = 2
OFFSET = 1 + QUESTION_TOKENS + 2  # <s> question </s> </s>: the first context token's position in a window
OUTSIDE = (-1, -1)


def word_spans(context: str) -> list[tuple[int, int]]:
    """[begin, end) of every space-separated word of the context."""
    spans, begin = [], 0
    for word in context.split(" "):
        spans.append((begin, begin + len(word)))
        begin += len(word) + 1
    return spans


def window(
    context_spans: list[tuple[int, int]],
    starts: dict[int, float],
    ends: dict[int, float],
    max_context: list[bool] | None = None,
    default: float = 0.0,
    padding: int = 0,
) -> WindowScores:
    """A window <s> q q </s> </s> context... </s> [pad...]; logits keyed by window position, others ``default``."""
    spans = [OUTSIDE] * OFFSET + list(context_spans) + [OUTSIDE] * (1 + padding)
    length = len(spans)
    start_logits, end_logits = np.full(length, default), np.full(length, default)
    for position, value in starts.items():
        start_logits[position] = value
    for position, value in ends.items():
        end_logits[position] = value
    mask = np.zeros(length, dtype=bool)
    mask[OFFSET : OFFSET + len(context_spans)] = True if max_context is None else max_context
    return WindowScores(start_logits, end_logits, np.array(spans), mask)


def at(context_index: int) -> int:
    """The window position of a context token."""
    return OFFSET + context_index


CONTEXT = "The cat sat on the mat today"
SPANS = word_spans(CONTEXT)  # The cat sat on the mat today -> context indices 0..6


# --- one window ----------------------------------------------------------------------------------------------


def test_best_span_inside_one_window():
    w = window(SPANS, {at(1): 3.0, at(4): 1.0}, {at(2): 2.0, at(5): 2.5})
    answer = best_answer([w], CONTEXT)
    # (cat, mat) = 5.5 beats (cat, sat) = 5.0 and (the, mat) = 3.5
    assert answer == Answer("cat sat on the mat", 5.5, 0, at(1), at(5), 4, 22)


def test_end_before_start_is_rejected():
    # the highest start is "mat", the highest end "cat": the pair runs backwards
    w = window(SPANS, {at(5): 5.0}, {at(1): 5.0, at(6): 0.5})
    answer = best_answer([w], CONTEXT)
    # (mat, cat) would score 10; (mat, today) = 5.5 beats the spans ending at "cat" (0 + 5)
    assert (answer.text, answer.score) == ("mat today", 5.5)


def test_a_span_may_be_one_token():
    w = window(SPANS, {at(2): 4.0}, {at(2): 4.0})
    assert best_answer([w], CONTEXT).text == "sat"


def test_span_longer_than_max_answer_tokens_is_rejected():
    w = window(SPANS, {at(0): 5.0, at(3): 1.0}, {at(6): 5.0})
    assert best_answer([w], CONTEXT, max_answer_tokens=7).text == CONTEXT
    # 7 tokens > 6: the next start, "on", gives 4 tokens
    answer = best_answer([w], CONTEXT, max_answer_tokens=6)
    assert (answer.text, answer.start, answer.end) == ("on the mat today", at(3), at(6))
    assert best_answer([w], CONTEXT, max_answer_tokens=4).text == "on the mat today"
    # 4 tokens > 3: five spans score 5.0 ("The".."The cat sat", "the mat today".."today"); the earliest wins
    assert best_answer([w], CONTEXT, max_answer_tokens=3).text == "The"


def test_span_reaching_into_the_question_is_rejected():
    # the question's tokens and the separators have the highest logits
    w = window(SPANS, {1: 9.0, 2: 9.0, at(2): 1.0}, {at(3): 2.0, 3: 9.0, 4: 9.0, at(7): 9.0})
    answer = best_answer([w], CONTEXT)
    assert (answer.text, answer.score, answer.start, answer.end) == ("sat on", 3.0, at(2), at(3))


def test_question_start_is_rejected_even_where_max_context_is_set():
    # max_context says nothing outside the context: the character offsets alone rule the question out
    w = window(SPANS, {1: 9.0, at(2): 1.0}, {at(3): 2.0})
    w.max_context[:] = True
    assert best_answer([w], CONTEXT).text == "sat on"


def test_padding_is_never_part_of_an_answer():
    w = window(SPANS, {at(6): 1.0}, {at(9): 9.0, at(6): 0.5}, padding=3)
    assert best_answer([w], CONTEXT).text == "today"


def test_ties_go_to_the_earlier_start_then_the_earlier_end():
    w = window(SPANS, {at(1): 2.0, at(3): 2.0}, {at(4): 1.0})
    answer = best_answer([w], CONTEXT)
    assert (answer.start, answer.end) == (at(1), at(4))
    w = window(SPANS, {at(1): 2.0}, {at(2): 1.0, at(4): 1.0})
    answer = best_answer([w], CONTEXT)
    assert (answer.start, answer.end) == (at(1), at(2))


def test_n_best_ties_keep_the_lower_position():
    # equal start logits: with n_best=1 only the lower position is a start
    w = window(SPANS, {at(4): 2.0, at(1): 2.0}, {at(5): 1.0})
    assert best_answer([w], CONTEXT, n_best=1).text == "cat sat on the mat"


def test_n_best_ties_in_a_long_window():
    # every third of 40 context tokens has the top start logit; a window this long leaves numpy's insertion
    # sort, so only a stable sort keeps the lowest of them first
    context = " ".join(f"w{i}" for i in range(40))
    starts = {at(i): float(i % 3 == 0) for i in range(40)}
    w = window(word_spans(context), starts, {at(39): 1.0}, default=-5.0)
    for n_best in (1, 2):
        answer = best_answer([w], context, n_best=n_best, max_answer_tokens=40)
        assert (answer.start, answer.end, answer.text) == (at(0), at(39), context)
    assert best_answer([w], context, n_best=1, max_answer_tokens=39, allow_null=True).text == ""
    assert best_answer([w], context, n_best=2, max_answer_tokens=39).text == context[len("w0 w1 w2 ") :]


def test_n_best_limits_the_starts():
    # context indices: 0 = p3 (start 3), 1 = e3 (end 20), 2 = p1 (start 5), 3 = p2 (start 4), 4 = e4 (end 1)
    starts = {at(0): 3.0, at(2): 5.0, at(3): 4.0}
    ends = {at(1): 20.0, at(4): 1.0}
    w = window(SPANS, starts, ends, default=-10.0)
    # (p3, e3) = 23 is the best pair, but p3 is only the third start: the top two starts lie after e3
    answer = best_answer([w], CONTEXT, n_best=2)
    assert (answer.start, answer.end, answer.score, answer.text) == (at(2), at(4), 6.0, "sat on the")
    answer = best_answer([w], CONTEXT, n_best=3)
    assert (answer.start, answer.end, answer.score, answer.text) == (at(0), at(1), 23.0, "The cat")


def test_n_best_limits_the_ends():
    w = window(SPANS, {at(0): 1.0}, {at(6): 3.0, at(5): 2.0, at(2): 1.5}, default=-10.0)
    # the ends ranked 3.0, 2.0, 1.5: with n_best=1 only "today" ends a span
    # 7 tokens: no n-best candidate left (with null answers allowed, no fallback search)
    assert best_answer([w], CONTEXT, n_best=1, max_answer_tokens=6, allow_null=True).text == ""
    assert best_answer([w], CONTEXT, n_best=2, max_answer_tokens=6).text == "The cat sat on the mat"
    assert best_answer([w], CONTEXT, n_best=3, max_answer_tokens=3).text == "The cat sat"


# --- several windows -----------------------------------------------------------------------------------------

LONG = "one two three four five six seven eight"
LONG_SPANS = word_spans(LONG)  # 8 tokens; windows cover [0, 5) and [3, 8)


def two_windows(first: tuple[dict, dict], second: tuple[dict, dict], masks=None) -> list[WindowScores]:
    masks = masks or max_context_mask([0, 3], [5, 5], 8)
    return [
        window(LONG_SPANS[0:5], *first, max_context=masks[0]),
        window(LONG_SPANS[3:8], *second, max_context=masks[1]),
    ]


def test_answer_found_in_the_second_window():
    # "seven eight" = context 6..7 = second window's indices 3..4
    windows = two_windows(({at(1): 1.0}, {at(2): 1.0}), ({at(3): 4.0}, {at(4): 4.0}))
    answer = best_answer(windows, LONG)
    assert answer == Answer("seven eight", 8.0, 1, at(3), at(4), 28, 39)


def test_equal_scores_in_two_windows_go_to_the_earlier_window():
    # "four" (context 3) is in both windows, with its max context in the first; "five" (4) ends in both
    windows = two_windows(({at(3): 2.0}, {at(4): 2.0}), ({at(0): 2.0}, {at(1): 2.0}), masks=[[True] * 5] * 2)
    answer = best_answer(windows, LONG)
    assert (answer.window, answer.start, answer.text) == (0, at(3), "four five")


def test_start_only_where_the_token_has_its_max_context():
    # "five" (context 4) is the last token of the first window (score 0 + 0.05) and the second of the second
    # (score 1 + 0.05): a start there is only accepted in the second window, even with a lower logit
    windows = two_windows(({at(4): 6.0}, {at(4): 1.0}), ({at(1): 3.0}, {at(1): 1.0}))
    answer = best_answer(windows, LONG)
    assert (answer.window, answer.start, answer.score, answer.text) == (1, at(1), 4.0, "five")
    # without the max-context rule the first window's higher score would win
    unmasked = two_windows(({at(4): 6.0}, {at(4): 1.0}), ({at(1): 3.0}, {at(1): 1.0}), masks=[[True] * 5] * 2)
    assert best_answer(unmasked, LONG).window == 0


def test_the_end_need_not_be_at_a_max_context_position():
    # start "three" (index 2, max context in window 0), end "five" (index 4, max context in window 1)
    windows = two_windows(({at(2): 2.0}, {at(4): 2.0}), ({}, {}))
    assert best_answer(windows, LONG).text == "three four five"


def test_max_context_mask_three_windows():
    # windows [0, 5), [3, 8), [6, 10) of 10 tokens; score = min(left, right) + 0.01 * L
    # token 3: 1.05 (w0) vs 0.05 (w1) -> w0; token 4: 0.05 vs 1.05 -> w1; token 6: 1.05 (w1) vs 0.04 (w2) -> w1;
    # token 7: 0.05 (w1) vs 1.04 (w2) -> w2
    masks = max_context_mask([0, 3, 6], [5, 5, 4], 10)
    expected = [[1, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1]]
    assert [m.tolist() for m in masks] == [[bool(x) for x in e] for e in expected]
    assert all(m.dtype == bool for m in masks)


def test_max_context_mask_prefers_the_longer_window_then_the_first():
    # token 2: min 1 in both windows, 0.04 < 0.05 -> the longer second window
    masks = max_context_mask([0, 1], [4, 5], 6)
    assert [m.tolist() for m in masks] == [[True, True, False, False], [False, True, True, True, True]]
    # identical windows tie: the first one keeps every token
    masks = max_context_mask([0, 0], [3, 3], 3)
    assert [m.tolist() for m in masks] == [[True] * 3, [False] * 3]


def test_max_context_mask_one_window_and_bad_windows():
    assert [m.tolist() for m in max_context_mask([0], [3], 3)] == [[True] * 3]
    assert max_context_mask([], [], 0) == []
    with pytest.raises(ValueError):
        max_context_mask([2], [3], 4)
    with pytest.raises(ValueError):
        max_context_mask([0, 1], [3], 4)


# --- text --------------------------------------------------------------------------------------------------


def test_text_of_cjk_characters():
    context = "東京は日本の首都です"
    spans = [(i, i + 1) for i in range(len(context))]
    w = window(spans, {at(3): 2.0}, {at(4): 2.0, at(7): 1.0})
    answer = best_answer([w], context)
    assert (answer.text, answer.char_begin, answer.char_end) == ("日本", 3, 5)


def test_text_keeps_combining_characters_as_they_are():
    context = "Cafe\u0301 noir"
    spans = [(0, 3), (3, 5), (6, 10)]  # "Caf", "e\u0301", "noir"
    w = window(spans, {at(0): 2.0}, {at(1): 2.0})
    answer = best_answer([w], context)
    assert answer.text == "Cafe\u0301" and len(answer.text) == 5  # not the composed "Café"
    w = window(spans, {at(1): 2.0}, {at(2): 2.0})
    assert best_answer([w], context).text == "e\u0301 noir"


# --- null ----------------------------------------------------------------------------------------------------


def null_windows(null_scores: tuple[float, float]) -> list[WindowScores]:
    """Two windows whose <s> scores are split evenly between start and end; best span "two" = 2.0."""
    (a, b) = null_scores
    return two_windows(({0: a / 2, at(1): 1.0}, {0: a / 2, at(1): 1.0}), ({0: b / 2}, {0: b / 2}))


def test_null_score_is_the_minimum_over_windows():
    answer = best_answer(null_windows((6.0, 5.0)), LONG, allow_null=True)
    assert answer == Answer("", 5.0, -1, -1, -1, -1, -1)


def test_null_only_when_it_beats_the_best_span_by_the_margin():
    assert best_answer(null_windows((9.0, 1.0)), LONG, allow_null=True).text == "two"  # null 1 < 2
    assert best_answer(null_windows((5.0, 5.0)), LONG, allow_null=True, null_margin=3.0).text == "two"  # 5 = 2 + 3
    assert best_answer(null_windows((5.5, 5.5)), LONG, allow_null=True, null_margin=3.0).text == ""
    assert best_answer(null_windows((2.0, 2.0)), LONG, allow_null=True).text == "two"  # equal: the span


def test_without_allow_null_the_span_is_always_returned():
    answer = best_answer(null_windows((50.0, 50.0)), LONG)
    assert (answer.text, answer.score, answer.window) == ("two", 2.0, 0)


@pytest.mark.parametrize("allow_null", [False, True])
def test_no_candidate_gives_the_null_answer(allow_null):
    # a context without tokens: only <s>, the question and separators
    w = window([], {0: 1.0, 1: 5.0}, {0: 0.5, 2: 5.0})
    assert best_answer([w], "", allow_null=allow_null) == Answer("", 1.5, -1, -1, -1, -1, -1)
    # context tokens, but every start lies outside the window's max context
    w = window(SPANS, {0: 1.0, at(1): 3.0}, {0: 1.0, at(2): 3.0}, max_context=[False] * len(SPANS))
    assert best_answer([w], CONTEXT, allow_null=allow_null) == Answer("", 2.0, -1, -1, -1, -1, -1)


def test_windows_are_checked():
    with pytest.raises(ValueError):
        best_answer([], CONTEXT)
    with pytest.raises(ValueError, match="shapes"):
        WindowScores(np.zeros(3), np.zeros(4), np.full((3, 2), -1), np.zeros(3, dtype=bool))


def test_half_precision_logits_are_summed_in_double():
    w = window(SPANS, {at(1): 3.0}, {at(2): 2.0})
    w = WindowScores(w.start_logits.astype(np.float16), w.end_logits.astype(np.float16), w.char_spans, w.max_context)
    answer = best_answer([w], CONTEXT)
    assert isinstance(answer.score, float) and answer.score == 5.0 and answer.text == "cat sat"


def test_without_a_valid_n_best_pair_every_pair_is_searched():
    # the two best starts lie after the two best ends: no n-best pair is valid, but an answer exists
    start = np.array([0.0, -5.0, -4.0, 3.0, 2.0])
    end = np.array([0.0, 3.0, 2.0, -5.0, -4.0])
    spans = np.array([[-1, -1], [0, 1], [2, 3], [4, 5], [6, 7]])
    window = WindowScores(start, end, spans, np.ones(5, dtype=bool))
    answer = best_answer([window], "abcdefgh", n_best=2)
    assert (answer.start, answer.end) == (3, 4) and answer.text == "efg"  # 3 - 4, the best forward pair
    assert best_answer([window], "abcdefgh", n_best=2, allow_null=True).text == ""


def test_a_span_of_empty_pieces_only_is_no_answer():
    spans = np.array([[-1, -1], [0, 0], [0, 2]])  # a lone "▁" (no characters), then its word
    window = WindowScores(np.array([0.0, 9.0, 1.0]), np.array([0.0, 9.0, 1.0]), spans, np.ones(3, dtype=bool))
    assert best_answer([window], "北京").text == "北京"
